/**
 * GET /v1/devices/:id/front: the Pareto front of the device's profile (predicted accuracy against
 * predicted latency), with the subnet it serves and its budget, for the dashboard (admin or the device).
 */
import { ApiError } from '../errors.js';
import { deviceOr404, param, versionOr404, type RouteModule } from './context.js';

export const frontRoutes: RouteModule = ({ store, queries, auth }, { api }) => {
  api.get('/devices/:id/front', async (req, res) => {
    await auth.requireSelf(req, param(req, 'id'));
    const d = await deviceOr404(store, param(req, 'id'));
    if (!d.supernet) throw new ApiError(409, 'ERR_NO_PROFILE', `Device '${d.id}' is not enrolled for a supernet.`);
    const prof = await store.profile(d.id);
    if (!prof) throw new ApiError(409, 'ERR_NO_PROFILE', `Device '${d.id}' has not uploaded a profile yet.`);
    const v = await versionOr404(store, d.supernet, 'latest');
    const pkg = await queries.package(v);
    const front = await queries.front(v, prof.sha256, prof.json);
    res.json({
      deviceId: d.id,
      supernet: v.name,
      version: v.version,
      profileSha256: prof.sha256,
      subnetId: d.subnet_id,
      budget: d.budget_json === null ? null : (JSON.parse(d.budget_json) as unknown),
      points: front.map((p) => ({ subnetId: pkg.space.id(p.subnet), subnet: p.subnet, predicted: p.predicted })),
    });
  });
};
