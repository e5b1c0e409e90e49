/** GET /v1/stats (admin): counts from the store; `connected` is this replica's connections. */
import type { StatsResult } from '../protocol.js';
import type { RouteModule } from './context.js';

export const statsRoutes: RouteModule = ({ store, blobs, hub, auth }, { api }) => {
  api.get('/stats', async (req, res) => {
    await auth.requireAdmin(req);
    const c = await store.counts();
    const s: StatsResult = { supernets: c.supernets, versions: c.versions, blobs: await blobs.count(), devices: c.devices, connected: hub.connected, telemetryEvents: c.telemetry, commands: c.commands };
    res.json(s);
  });
};
