/** Liveness (GET /healthz, alias /v1/health), readiness (GET /readyz: the store answers) and the API description. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../../runtime/node/version.js';
import { ApiError } from '../errors.js';
import type { RouteModule } from './context.js';

const OPENAPI_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'registry', 'openapi.yaml');

export const metaRoutes: RouteModule = (ctx, { api, app }) => {
  const live = (_req: unknown, res: { json(v: unknown): void }) => res.json({ ok: true, version: VERSION });
  app.get('/healthz', live);
  api.get('/health', live);
  app.get('/readyz', async (_req, res) => {
    try {
      await ctx.store.setting('schema-check');
      await ctx.blobs.size('0'.repeat(64));
    } catch (cause) {
      throw new ApiError(503, 'ERR_NOT_READY', `The store is not reachable: ${(cause as Error).message}`, undefined, { cause });
    }
    res.json({ ok: true, store: ctx.store.engine });
  });
  api.get('/openapi.yaml', (_req, res) => {
    if (!existsSync(OPENAPI_PATH)) throw new ApiError(404, 'ERR_NOT_FOUND', 'openapi.yaml is not installed.');
    res.type('application/yaml').sendFile(OPENAPI_PATH);
  });
};
