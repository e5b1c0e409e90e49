/** /v1/classes/:class/profile: a device class's aggregate profile (admin, or a device of that class). */
import { ApiError } from '../errors.js';
import { param, type RouteModule } from './context.js';

export const classRoutes: RouteModule = ({ store, auth }, { api }) => {
  api.get('/classes/:class/profile', async (req, res) => {
    const who = await auth.principal(req);
    const deviceClass = param(req, 'class');
    if (who.kind === 'device' && who.device.device_class !== deviceClass)
      throw new ApiError(403, 'ERR_FORBIDDEN', `A device token may only read its own class's profile ('${who.device.device_class ?? ''}').`);
    const row = await store.classProfile(deviceClass);
    if (!row) throw new ApiError(404, 'ERR_CLASS_PROFILE_NOT_FOUND', `No device of class '${deviceClass}' has uploaded a profile yet.`);
    res.json({ deviceClass: row.device_class, devices: row.devices, sha256: row.sha256, updatedAt: row.updated_at, profile: JSON.parse(row.json) as unknown });
  });
};
