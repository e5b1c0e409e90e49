/**
 * /v1/devices: enrollment (enrollment token), the paginated device list (admin), one device,
 * its profile and its telemetry (admin or the device itself).
 */
import { ApiError, toApiError } from '../errors.js';
import { recomputeClassProfile } from '../class-profiles.js';
import { profileDigest, summarizeProfile } from '../profiles.js';
import { EnrollBody, type DeviceInfo } from '../protocol.js';
import { hashToken, newId, newToken, type DeviceRow, type Presence } from '../store.js';
import { authFirst, deviceOr404, param, parse, type RouteContext, type RouteModule } from './context.js';

export const DEVICE_PAGE_DEFAULT = 500;
export const DEVICE_PAGE_MAX = 1000;

/** Opaque cursor: the last row's enrollment time and id. */
const encodeCursor = (d: DeviceRow) => Buffer.from(JSON.stringify([d.enrolled_at, d.id])).toString('base64url');
function decodeCursor(s: string): { enrolledAt: string; id: string } {
  try {
    const v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return { enrolledAt: v[0], id: v[1] };
  } catch {
    // fall through
  }
  throw new ApiError(400, 'ERR_VALIDATION', `Invalid 'after' cursor: pass the 'next' value of the previous page.`);
}

function pageLimit(raw: unknown): number {
  if (raw === undefined) return DEVICE_PAGE_DEFAULT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > DEVICE_PAGE_MAX) throw new ApiError(400, 'ERR_VALIDATION', `'limit' must be an integer 1..${DEVICE_PAGE_MAX} (got '${String(raw)}').`);
  return n;
}

async function deviceInfos(ctx: RouteContext, rows: DeviceRow[], recent: boolean): Promise<DeviceInfo[]> {
  const [held, profiles] = await Promise.all([
    ctx.store.presence(rows.filter((d) => !ctx.hub.isOnline(d.id)).map((d) => d.id)),
    ctx.store.profileSummaries(rows.map((d) => d.id)),
  ]);
  const fresh = (p: Presence | undefined) => p !== undefined && Date.now() - Date.parse(p.seenAt) < ctx.presenceTtlMs;
  return Promise.all(
    rows.map(async (d) => ({
      id: d.id,
      name: d.name,
      supernet: d.supernet,
      deviceClass: d.device_class,
      fingerprint: d.fingerprint,
      facts: JSON.parse(d.facts_json) as Record<string, unknown>,
      enrolledAt: d.enrolled_at,
      lastSeen: d.last_seen,
      online: ctx.hub.isOnline(d.id) || fresh(held.get(d.id)),
      subnet: d.subnet_json === null ? null : (JSON.parse(d.subnet_json) as unknown),
      subnetId: d.subnet_id,
      budget: d.budget_json === null ? null : (JSON.parse(d.budget_json) as unknown),
      packageVersion: d.package_version ?? null,
      profile: profiles.get(d.id) ?? null,
      telemetrySeq: Number(d.telemetry_seq),
      ...(recent ? { recentTelemetry: (await ctx.store.recentTelemetry(d.id, 20)) as DeviceInfo['recentTelemetry'] } : {}),
    })),
  );
}

export const deviceRoutes: RouteModule = (ctx, { api }) => {
  const { store, auth, parsers, log } = ctx;

  api.post('/devices/enroll', parsers.json, async (req, res) => {
    auth.requireEnroll(req);
    const body = parse(EnrollBody, req.body, 'enrollment body');
    const id = newId('dev');
    const deviceToken = newToken('nsd');
    await store.insertDevice({ id, name: body.name, tokenHash: hashToken(deviceToken), supernet: body.supernet, deviceClass: body.deviceClass, fingerprint: body.fingerprint, facts: body.facts ?? {} });
    log.info({ device: id, name: body.name }, 'enrolled');
    res.status(201).json({ deviceId: id, token: deviceToken });
  });

  api.get('/devices', async (req, res) => {
    await auth.requireAdmin(req);
    const limit = pageLimit(req.query.limit);
    const after = typeof req.query.after === 'string' && req.query.after !== '' ? decodeCursor(req.query.after) : undefined;
    // one row more than asked tells whether there is a next page
    const rows = await store.devices({ limit: limit + 1, ...(after ? { after } : {}) });
    const page = rows.slice(0, limit);
    res.json({ devices: await deviceInfos(ctx, page, false), next: rows.length > limit ? encodeCursor(page[page.length - 1]!) : null });
  });

  api.get('/devices/:id', async (req, res) => {
    await auth.requireSelf(req, param(req, 'id'));
    res.json((await deviceInfos(ctx, [await deviceOr404(store, param(req, 'id'))], true))[0]);
  });

  api.put('/devices/:id/profile', authFirst((req) => auth.requireSelf(req, param(req, 'id')), parsers.profileJson), async (req, res) => {
    const d = await deviceOr404(store, param(req, 'id'));
    if (!req.is('application/json')) throw new ApiError(415, 'ERR_UNSUPPORTED_MEDIA', 'Profiles are JSON: Content-Type application/json.');
    const text = JSON.stringify(req.body);
    let summary;
    try {
      summary = summarizeProfile(req.body, Buffer.byteLength(text)).summary;
    } catch (err) {
      const e = toApiError(err);
      throw e.code === 'ERR_PROFILE_INVALID' ? new ApiError(400, 'ERR_PROFILE_INVALID', e.message) : e;
    }
    const sha = profileDigest(text);
    const full = { ...summary, sha256: sha, uploadedAt: new Date().toISOString() };
    await store.putProfile(d.id, sha, text, full);
    if (full.deviceClass) await recomputeClassProfile(store, full.deviceClass);
    res.status(200).json(full);
  });

  api.get('/devices/:id/profile', async (req, res) => {
    await auth.requireSelf(req, param(req, 'id'));
    const row = await store.profile((await deviceOr404(store, param(req, 'id'))).id);
    if (!row) throw new ApiError(404, 'ERR_NOT_FOUND', 'This device has not uploaded a profile.');
    res.type('application/json').send(row.json);
  });

  api.get('/devices/:id/telemetry', async (req, res) => {
    await auth.requireSelf(req, param(req, 'id'));
    const d = await deviceOr404(store, param(req, 'id'));
    const limit = Math.min(1000, Math.max(1, Number(req.query.limit ?? 100) || 100));
    res.json({ deviceId: d.id, telemetrySeq: Number(d.telemetry_seq), count: await store.telemetryCount(d.id), events: await store.recentTelemetry(d.id, limit) });
  });
};
