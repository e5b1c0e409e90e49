/** GET /v1/health and the API description. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError } from '../errors.js';
import type { RouteModule } from './context.js';

const OPENAPI_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'registry', 'openapi.yaml');

export const metaRoutes: RouteModule = (_ctx, { api }) => {
  api.get('/health', (_req, res) => {
    res.json({ ok: true });
  });
  api.get('/openapi.yaml', (_req, res) => {
    if (!existsSync(OPENAPI_PATH)) throw new ApiError(404, 'ERR_NOT_FOUND', 'openapi.yaml is not installed.');
    res.type('application/yaml').sendFile(OPENAPI_PATH);
  });
};
