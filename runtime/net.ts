/**
 * Requests to a registry with a deadline, and the one place that turns a network failure (refused
 * connection, DNS, TLS, timeout, a closed socket) into `ERR_REGISTRY_UNREACHABLE` naming the URL and
 * the cause. Portable: only `fetch` and `AbortSignal`; the causes it reads are undici's (Node) and
 * degrade to the bare message elsewhere.
 */
import { NestswapError } from './errors.js';

/** Default deadline of one registry request, unless the caller or NESTSWAP_REGISTRY_TIMEOUT_MS says otherwise. */
export const DEFAULT_REGISTRY_TIMEOUT_MS = 30_000;

const TLS_CODES = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/;

const CAUSES: Readonly<Record<string, string>> = Object.freeze({
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'DNS lookup failed (no such host)',
  EAI_AGAIN: 'DNS lookup failed (temporary failure)',
  ECONNRESET: 'connection reset by the server',
  EPIPE: 'connection closed by the server while sending',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  ETIMEDOUT: 'connect timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
});

interface Coded {
  name?: string;
  code?: string;
  message?: string;
  cause?: unknown;
  errors?: unknown[];
}

/** The innermost cause that carries a code (undici: TypeError('fetch failed') → cause Error{code}). */
function codedCause(err: unknown): Coded | undefined {
  let e = err as Coded | undefined;
  for (let i = 0; e && i < 5; i++) {
    if (typeof e.code === 'string') return e;
    if (Array.isArray(e.errors) && e.errors.length) {
      const first = e.errors.find((x) => typeof (x as Coded).code === 'string') as Coded | undefined;
      if (first) return first;
    }
    e = e.cause as Coded | undefined;
  }
  return undefined;
}

/** True for what `fetch` throws when no HTTP answer came back (as opposed to our own errors). */
export function isNetworkFailure(err: unknown): boolean {
  const e = err as Coded | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
  return e instanceof TypeError && (e.message === 'fetch failed' || e.cause !== undefined);
}

/** A short human description of why a request got no answer, with the system code when there is one. */
export function describeNetworkCause(err: unknown, timeoutMs?: number): string {
  const e = err as Coded;
  if (e?.name === 'TimeoutError') return `no answer within ${timeoutMs ?? '?'} ms (timeout; --timeout-ms or NESTSWAP_REGISTRY_TIMEOUT_MS)`;
  if (e?.name === 'AbortError') return 'request aborted';
  const c = codedCause(err);
  if (c?.code && TLS_CODES.test(c.code)) {
    // OpenSSL's "<id>:error:<code>:<library>:<function>:<reason>:<file>:<line>:" keeps only its reason
    const m = /error:[0-9A-F]+:[^:]*:[^:]*:([^:]+):/.exec(c.message ?? '');
    return `TLS failure: ${m ? m[1] : (c.message ?? '').split('\n')[0]} (${c.code})`;
  }
  if (c?.code) return `${CAUSES[c.code] ?? (c.message ?? c.code).split('\n')[0]} (${c.code})`;
  const inner = (e?.cause as Coded | undefined)?.message;
  if (inner === 'bad port') return 'the port is one fetch never connects to (bad port)';
  return inner ?? e?.message ?? String(err);
}

export interface DeadlineOptions {
  /** the registry's base URL, named in the error */
  url: string;
  timeoutMs?: number | undefined;
}

/** The deadline to use: the caller's, else NESTSWAP_REGISTRY_TIMEOUT_MS, else the default. */
export function registryTimeoutMs(given?: number): number {
  if (given !== undefined) return given;
  const env = typeof process === 'undefined' ? undefined : process.env?.NESTSWAP_REGISTRY_TIMEOUT_MS;
  const n = env === undefined || env === '' ? NaN : Number(env);
  return Number.isFinite(n) && n > 0 ? n : DEFAULT_REGISTRY_TIMEOUT_MS;
}

/**
 * Runs `fn` (one request and the reading of its body) under a deadline; a network failure or the
 * deadline becomes NestswapError ERR_REGISTRY_UNREACHABLE. Everything else (HTTP refusals) passes through.
 */
export async function withDeadline<T>(opts: DeadlineOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ms = registryTimeoutMs(opts.timeoutMs);
  const signal = AbortSignal.timeout(ms);
  try {
    return await fn(signal);
  } catch (err) {
    if (!isNetworkFailure(err)) throw err;
    const cause = describeNetworkCause(signal.aborted && (err as Coded).name !== 'TimeoutError' ? signal.reason : err, ms);
    throw new NestswapError('ERR_REGISTRY_UNREACHABLE', `Registry ${opts.url} is unreachable: ${cause}.`, { cause: err, details: { url: opts.url } });
  }
}
