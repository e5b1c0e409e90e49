/** Options every admin CLI command shares: --registry and --token (or NESTSWAP_ADMIN_TOKEN). */
import { NestswapError } from '../../runtime/errors.js';
import { AdminClient } from '../admin-client.js';
import { numberOpt } from '../../runtime/node/cli.js';

export const ADMIN_OPTIONS = { registry: { type: 'string' }, token: { type: 'string' }, 'timeout-ms': { type: 'string' }, json: { type: 'boolean' } } as const;

/** The admin client for --registry / --token / --timeout-ms (or their environment variables), each checked. */
export function adminClient(v: { registry?: string | undefined; token?: string | undefined; 'timeout-ms'?: string | undefined }): AdminClient {
  const url = v.registry ?? process.env.NESTSWAP_REGISTRY;
  if (!url) throw new NestswapError('ERR_USAGE', 'Missing required option --registry (or NESTSWAP_REGISTRY).');
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) throw new NestswapError('ERR_USAGE', `--registry must be an http:// or https:// URL (got '${url}').`);
  const timeoutMs = timeoutOpt(v['timeout-ms']);
  const token = v.token ?? process.env.NESTSWAP_ADMIN_TOKEN;
  if (!token) throw new NestswapError('ERR_USAGE', 'Missing required option --token (or NESTSWAP_ADMIN_TOKEN).');
  return new AdminClient(url, token, { timeoutMs });
}

/** --timeout-ms, else NESTSWAP_REGISTRY_TIMEOUT_MS (checked too), else undefined (the client's default). */
export function timeoutOpt(flag: string | undefined): number | undefined {
  const env = process.env.NESTSWAP_REGISTRY_TIMEOUT_MS;
  const [value, name] = flag !== undefined ? [flag, '--timeout-ms'] : env !== undefined && env !== '' ? [env, 'NESTSWAP_REGISTRY_TIMEOUT_MS'] : [undefined, ''];
  const n = numberOpt(value, name);
  if (n !== undefined && !(n > 0 && Number.isFinite(n))) throw new NestswapError('ERR_USAGE', `${name} must be a positive number of milliseconds (got '${value}').`);
  return n;
}
