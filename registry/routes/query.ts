/** POST /v1/query: the best subnet for a device (its own profile) or a device class, under a budget. */
import { ApiError } from '../errors.js';
import { API_PREFIX, QueryBody, type QueryResult } from '../protocol.js';
import { deviceOr404, parse, versionOr404, type RouteModule } from './context.js';

export const queryRoutes: RouteModule = ({ store, queries, auth, parsers }, { api }) => {
  api.post('/query', parsers.json, async (req, res) => {
    const who = await auth.principal(req);
    const q = parse(QueryBody, req.body, 'query');
    auth.canRead(who, q.supernet);
    let prof;
    let deviceId: string | null = null;
    let deviceClass: string | null = null;
    if (q.device !== undefined) {
      if (who.kind === 'device' && who.device.id !== q.device) throw new ApiError(403, 'ERR_FORBIDDEN', 'A device may only query for itself.');
      const d = await deviceOr404(store, q.device);
      deviceId = d.id;
      prof = await store.profile(d.id);
      if (!prof) throw new ApiError(409, 'ERR_NO_PROFILE', `Device '${d.id}' has not uploaded a profile yet.`);
      deviceClass = prof.device_class;
    } else {
      deviceClass = q.deviceClass!;
      // the class profile (the median of the class's device profiles); the newest device profile before any aggregate exists
      prof = (await store.classProfile(deviceClass)) ?? (await store.profileOfClass(deviceClass));
      if (!prof) throw new ApiError(409, 'ERR_NO_PROFILE', `No device of class '${deviceClass}' has uploaded a profile yet.`);
    }
    const v = await versionOr404(store, q.supernet, q.version);
    const budget = { ...(q.budget.latencyMs !== undefined ? { latencyMs: q.budget.latencyMs } : {}), ...(q.budget.memoryMB !== undefined ? { memoryMB: q.budget.memoryMB } : {}) };
    const a = await queries.query({ version: v, profileSha256: prof.sha256, profileJson: prof.json, budget, seed: q.seed ?? 0, ...(q.from ? { from: q.from } : {}) });
    const base = `${req.protocol}://${req.get('host') ?? 'localhost'}`;
    const out: QueryResult = {
      supernet: v.name,
      version: v.version,
      deviceId,
      deviceClass,
      profileSha256: prof.sha256,
      budget,
      subnet: a.result.subnet,
      subnetId: a.subnetId,
      predicted: a.result.predicted,
      onnx: `${base}${API_PREFIX}/supernets/${encodeURIComponent(v.name)}/versions/${encodeURIComponent(v.version)}/subnets/${a.subnetId}.onnx`,
      searchMs: Math.round(a.result.searchMs * 100) / 100,
      cached: a.cached,
      source: a.source ?? 'search',
    };
    res.json(out);
  });
};
