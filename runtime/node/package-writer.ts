/** Node adapter: writes a package's files as a directory, atomically (temp dir of durable files, then one rename). */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { NestswapError } from '../errors.js';
import type { Manifest } from '../package.js';
import { renameDurable, writeDurable } from './durable.js';

/**
 * Writes `files` and the manifest into `dir`. An existing package there is replaced; any other
 * non-empty directory is refused (nothing of a user's is deleted).
 */
export function writePackageDir(dir: string, manifest: Manifest, files: ReadonlyMap<string, Uint8Array>): string {
  const out = resolve(dir);
  if (existsSync(out) && readdirSync(out).length > 0 && !existsSync(join(out, 'manifest.json')))
    throw new NestswapError('ERR_USAGE', `--out ${out} is a non-empty directory that is not a nestswap package; choose a new or empty one.`);
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  for (const [path, bytes] of files) writeDurable(join(tmp, path), bytes);
  writeDurable(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 1));
  const old = `${out}.old-${process.pid}`;
  if (existsSync(out)) renameSync(out, old);
  renameDurable(tmp, out);
  rmSync(old, { recursive: true, force: true });
  return out;
}
