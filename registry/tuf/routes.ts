/**
 * TUF routes (standard layout, so any TUF client reads them; no token needed to read):
 *   GET /v1/tuf/metadata/<N>.root.json | timestamp.json | <N>.snapshot.json | <N>.targets.json
 *   GET /v1/tuf/targets/<name>/<version>/<sha256>.<file>      (Range supported)
 *   PUT /v1/tuf/targets   publisher-signed targets metadata (admin token)
 *   PUT /v1/tuf/root      a new root signed by the old root's threshold (admin token)
 */
import express, { type Request, type Response } from 'express';
import { ApiError } from '../errors.js';
import type { RegistryStore } from '../store.js';
import type { TargetJson } from '../../runtime/tuf-layout.js';
import type { TufRepository } from './repository.js';

export interface TufRouteDeps {
  repo: TufRepository | undefined;
  store: RegistryStore;
  requireAdmin(req: Request): void;
  sendFile(req: Request, res: Response, path: string, etag: string, contentType: string): void;
  /** largest accepted metadata upload */
  maxMetadataBytes: number;
}

/** The stored file a target path names, when its length and sha256 match. */
export function storedTarget(store: RegistryStore, path: string, t: Pick<TargetJson, 'length' | 'hashes'>): boolean {
  const parts = path.split('/');
  if (parts.length < 3) return false;
  const f = store.file(parts[0]!, parts[1]!, parts.slice(2).join('/'));
  return f !== undefined && f.bytes === t.length && f.sha256 === t.hashes.sha256;
}

export function tufRouter(deps: TufRouteDeps): express.Router {
  const r = express.Router();
  const repo = (): TufRepository => {
    if (!deps.repo) throw new ApiError(404, 'ERR_TUF_DISABLED', 'This registry runs without TUF keys: start it with --keys DIR.');
    return deps.repo;
  };
  const text = express.text({ type: ['application/json', 'text/plain'], limit: deps.maxMetadataBytes });

  r.get('/tuf/metadata/:file', async (req, res) => {
    const name = String(req.params.file);
    const body = await repo().file(name);
    if (body === undefined) throw new ApiError(404, 'ERR_NOT_FOUND', `No TUF metadata '${name}'.`);
    // versioned files never change; timestamp.json does
    res.setHeader('Cache-Control', name === 'timestamp.json' ? 'no-cache' : 'public, max-age=31536000, immutable');
    res.type('application/json').send(body);
  });

  r.get('/tuf/targets/*path', (req, res) => {
    repo();
    const segs = (req.params as { path: string[] }).path;
    const m = /^([0-9a-f]{64})\.(.+)$/.exec(segs[segs.length - 1] ?? '');
    if (!m || segs.length < 3) throw new ApiError(404, 'ERR_NOT_FOUND', 'Targets are named <supernet>/<version>/<sha256>.<file>.');
    const [, hash, base] = m as unknown as [string, string, string];
    const f = deps.store.file(segs[0]!, segs[1]!, [...segs.slice(2, -1), base].join('/'));
    if (!f || f.sha256 !== hash) throw new ApiError(404, 'ERR_NOT_FOUND', `No target ${segs.join('/')}.`);
    deps.sendFile(req, res, deps.store.blobPath(f.sha256), f.sha256, 'application/octet-stream');
  });

  const upload = (req: Request): string => {
    if (typeof req.body !== 'string') throw new ApiError(415, 'ERR_UNSUPPORTED_MEDIA', 'TUF metadata uploads are JSON: Content-Type application/json.');
    return req.body;
  };
  const admin = (req: Request, _res: Response, next: (err?: unknown) => void) => {
    try {
      deps.requireAdmin(req);
      repo();
      next();
    } catch (err) {
      next(err);
    }
  };

  r.put('/tuf/targets', admin, text, async (req, res) => {
    const version = await repo().acceptTargets(upload(req), { checkFiles: (path, t) => storedTarget(deps.store, path, t) });
    res.status(201).json({ role: 'targets', version });
  });

  r.put('/tuf/root', admin, text, async (req, res) => {
    const version = await repo().acceptRoot(upload(req));
    res.status(201).json({ role: 'root', version });
  });

  return r;
}
