/** The agent's Unix-socket path (`--socket`): what may be replaced there. */
import { existsSync, lstatSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { NestswapError } from '../runtime/errors.js';

/** Whether something answers on the socket at `path` (a running agent keeps it). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A stale Unix socket file from an earlier run is removed; a live socket or any other file is refused. */
export async function clearSocketPath(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new NestswapError('ERR_USAGE', `--socket ${path} exists and is not a socket; refusing to replace it.`);
  if (await answers(path)) throw new NestswapError('ERR_USAGE', `--socket ${path} is in use by a running process.`);
  rmSync(path);
}
