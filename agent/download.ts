/**
 * Bounded reads of a registry's answers: every body is read as a stream with a hard byte cap and
 * every request has a deadline, so a hostile or broken registry can neither fill the disk, nor the
 * memory, nor hang the agent. Files are written to `.part` and fsynced before they count.
 */
import { open } from 'node:fs/promises';
import { NestswapError } from '../runtime/errors.js';
import { declaredLength, isAbort } from '../runtime/bounded.js';
import { crashPoint } from '../runtime/crash.js';

/**
 * Streams `res`'s body into `part` (appending when `append`), refusing with ERR_PACKAGE_SIZE the
 * moment more than `cap` bytes arrive (the excess is never written); fsyncs before returning.
 * Returns the number of bytes written by this call.
 */
export async function streamToPart(res: Response, part: string, append: boolean, cap: number, what: string, onBytes?: (written: number) => void): Promise<number> {
  const declared = declaredLength(res);
  if (declared !== undefined && declared > cap) {
    await res.body?.cancel().catch(() => undefined);
    throw new NestswapError('ERR_PACKAGE_SIZE', `${what}: the registry declares ${declared} bytes where ${cap} are expected; refused before writing.`);
  }
  const fh = await open(part, append ? 'a' : 'w');
  let total = 0;
  try {
    if (res.body) {
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (total + value.length > cap) {
            await reader.cancel().catch(() => undefined);
            throw new NestswapError('ERR_PACKAGE_SIZE', `${what}: more than the declared ${cap} bytes arrived; refused.`);
          }
          await fh.write(value);
          total += value.length;
          onBytes?.(total);
          crashPoint('download-chunk');
        }
      } catch (err) {
        if (isAbort(err)) throw new NestswapError('ERR_DOWNLOAD_TIMEOUT', `${what}: the download did not finish before its deadline.`, { cause: err });
        throw err;
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return total;
}
