/** Options every admin CLI command shares: --registry and --token (or NESTSWAP_ADMIN_TOKEN). */
import { NestswapError } from '../../runtime/errors.js';
import { AdminClient, RegistryApiError } from '../admin-client.js';

export const ADMIN_OPTIONS = { registry: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' } } as const;

export function adminClient(v: { registry?: string | undefined; token?: string | undefined }): AdminClient {
  const url = v.registry ?? process.env.NESTSWAP_REGISTRY;
  if (!url) throw new NestswapError('ERR_USAGE', 'Missing required option --registry (or NESTSWAP_REGISTRY).');
  const token = v.token ?? process.env.NESTSWAP_ADMIN_TOKEN;
  if (!token) throw new NestswapError('ERR_USAGE', 'Missing required option --token (or NESTSWAP_ADMIN_TOKEN).');
  return new AdminClient(url, token);
}

/** Prints a registry refusal with its code; returns the exit code. */
export async function withApiErrors(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RegistryApiError) {
      process.stderr.write(`nestswap: ${err.message} [${err.code}]\n`);
      return 1;
    }
    throw err;
  }
}
