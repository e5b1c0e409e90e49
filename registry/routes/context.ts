/**
 * What every route module gets: the store, blob and bus interfaces, the hub, the query service,
 * body parsers with the configured limits, and the auth checks. A route module is a function that
 * adds its routes; registry/routes/index.ts lists them in mount order.
 */
import type express from 'express';
import type { Request, RequestHandler, Router } from 'express';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { BlobStore } from '../blobs.js';
import type { Bus } from '../bus.js';
import { ApiError, validationError } from '../errors.js';
import type { Hub } from '../hub.js';
import type { QueryService } from '../query.js';
import { hashToken, sameDigest, type DeviceRow, type RegistryStore, type VersionRow } from '../store.js';

export interface RegistryLimits {
  /** JSON bodies (enroll, query, commands) */
  jsonBytes: number;
  /** profile uploads */
  profileBytes: number;
  /** publish bodies (a whole package) */
  publishBytes: number;
  /** one WebSocket frame */
  wsFrameBytes: number;
}

export type Principal = { kind: 'admin' } | { kind: 'device'; device: DeviceRow };

export interface Auth {
  /** The caller: admin, or an enrolled device (401 otherwise). */
  principal(req: Request): Promise<Principal>;
  requireAdmin(req: Request): Promise<void>;
  /** Admin, or the device itself. */
  requireSelf(req: Request, deviceId: string): Promise<Principal>;
  /** A device enrolled for another supernet may not read this one. */
  canRead(p: Principal, supernet: string): void;
  /** The enrollment token (401 otherwise). */
  requireEnroll(req: Request): void;
}

export interface RouteContext {
  store: RegistryStore;
  blobs: BlobStore;
  bus: Bus;
  hub: Hub;
  queries: QueryService;
  log: Logger;
  limits: RegistryLimits;
  auth: Auth;
  parsers: { json: RequestHandler; profileJson: RequestHandler; msgpack: RequestHandler };
  /** seconds a best-effort `online` flag trusts a presence row without a heartbeat */
  presenceTtlMs: number;
  /** run after every successful publish (also a repeated one), before the answer: e.g. online TUF targets signing */
  onPublished: ((p: { name: string; version: string }) => Promise<void>)[];
}

/** Adds routes: `api` is mounted at /v1, `app` is the root (for pages outside the API). */
export type RouteModule = (ctx: RouteContext, at: { api: Router; app: express.Express }) => void;

export function bearer(req: Request): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : '';
}

export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(what, r.error);
  return r.data;
}

/** A route parameter as a string. */
export const param = (req: Request, k: string): string => String((req.params as Record<string, string>)[k]);

export function makeAuth(store: RegistryStore, adminHash: string, enrollHash: string): Auth {
  const principal = async (req: Request): Promise<Principal> => {
    const token = bearer(req);
    if (token === undefined) throw new ApiError(401, 'ERR_AUTH_MISSING', 'This endpoint needs Authorization: Bearer <token>.');
    const hash = hashToken(token);
    if (sameDigest(hash, adminHash)) return { kind: 'admin' };
    const device = await store.deviceByTokenHash(hash);
    if (device) return { kind: 'device', device };
    throw new ApiError(401, 'ERR_AUTH_INVALID', 'Unknown token.');
  };
  return {
    principal,
    async requireAdmin(req) {
      if ((await principal(req)).kind !== 'admin') throw new ApiError(403, 'ERR_FORBIDDEN', 'This endpoint needs the admin token.');
    },
    async requireSelf(req, deviceId) {
      const p = await principal(req);
      if (p.kind === 'device' && p.device.id !== deviceId) throw new ApiError(403, 'ERR_FORBIDDEN', 'A device token may only access its own device.');
      return p;
    },
    canRead(p, supernet) {
      if (p.kind === 'device' && p.device.supernet !== null && p.device.supernet !== supernet)
        throw new ApiError(403, 'ERR_FORBIDDEN', `This device is enrolled for supernet '${p.device.supernet}'.`);
    },
    requireEnroll(req) {
      const token = bearer(req);
      if (token === undefined) throw new ApiError(401, 'ERR_AUTH_MISSING', 'Enrollment needs Authorization: Bearer <enrollment token>.');
      if (!sameDigest(hashToken(token), enrollHash)) throw new ApiError(401, 'ERR_AUTH_INVALID', 'Unknown enrollment token.');
    },
  };
}

/** The version row, or 404 naming what is missing. */
export async function versionOr404(store: RegistryStore, name: string, v: string): Promise<VersionRow> {
  const row = await store.version(name, v);
  if (!row) throw new ApiError(404, 'ERR_NOT_FOUND', (await store.versionsOf(name)).length ? `Supernet '${name}' has no version '${v}'.` : `No supernet '${name}'.`);
  return row;
}

export async function deviceOr404(store: RegistryStore, id: string): Promise<DeviceRow> {
  const d = await store.device(id);
  if (!d) throw new ApiError(404, 'ERR_NOT_FOUND', `No device '${id}'.`);
  return d;
}

/** Runs an auth check before a body parser, so a large body from the wrong caller is refused unread. */
export function authFirst(check: (req: Request) => Promise<unknown>, parser?: RequestHandler): RequestHandler {
  return (req, res, next) => {
    check(req).then(
      () => (parser ? parser(req, res, next) : next()),
      (err: unknown) => next(err),
    );
  };
}
