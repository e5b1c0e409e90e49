/**
 * Bounded reads of HTTP answers (fetch's Response, so it runs in Node and browsers): the body is read
 * as a stream with a hard byte cap, so a hostile or broken server cannot exhaust memory.
 */
import { NestswapError } from './errors.js';

/** true for the errors fetch raises when its AbortSignal fires */
export function isAbort(err: unknown): boolean {
  const n = (err as { name?: string } | undefined)?.name;
  return n === 'TimeoutError' || n === 'AbortError';
}

export function declaredLength(res: Response): number | undefined {
  const h = res.headers.get('content-length');
  if (h === null || !/^\d+$/.test(h)) return undefined;
  return Number(h);
}

/** The whole body, refused with ERR_METADATA_TOO_LARGE as soon as it passes `max` bytes. */
export async function readCapped(res: Response, max: number, what: string): Promise<Uint8Array> {
  const declared = declaredLength(res);
  if (declared !== undefined && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new NestswapError('ERR_METADATA_TOO_LARGE', `${what}: the registry declares ${declared} bytes; at most ${max} are accepted.`);
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        await reader.cancel().catch(() => undefined);
        throw new NestswapError('ERR_METADATA_TOO_LARGE', `${what}: the answer passed ${max} bytes; refused.`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (isAbort(err)) throw new NestswapError('ERR_DOWNLOAD_TIMEOUT', `${what}: no complete answer before the deadline.`, { cause: err });
    throw err;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** JSON of a capped body; ERR_METADATA_INVALID when it does not parse. */
export async function readCappedJson(res: Response, max: number, what: string): Promise<unknown> {
  const bytes = await readCapped(res, max, what);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new NestswapError('ERR_METADATA_INVALID', `${what}: the registry's answer is not JSON.`);
  }
}

