/**
 * Paths resolved inside a root directory. Every segment is validated (runtime/names.ts), the joined
 * path is resolved and checked to stay under the root, and where a prefix of it exists on disk its
 * real path (symbolic links followed) must stay under the root's real path too, so neither `..` nor
 * a planted link can point a write or a delete outside the data directory.
 */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { NestswapError } from '../errors.js';
import { checkRelativePath } from '../names.js';

function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && rel.split(sep)[0] !== '..');
}

/** The deepest existing ancestor of `p` (or `p`), resolved through links. */
function realExisting(p: string): string {
  let cur = p;
  while (!existsSync(cur)) {
    const up = dirname(cur);
    if (up === cur) return cur;
    cur = up;
  }
  return realpathSync(cur);
}

/**
 * `root/segments...`, each argument a relative path of valid segments; throws ERR_PATH_INVALID for a
 * bad segment and ERR_PATH_ESCAPE when the result (or an existing link on the way) leaves `root`.
 */
export function resolveInside(root: string, ...parts: string[]): string {
  for (const p of parts) {
    const c = checkRelativePath(p);
    if (!c.ok) throw new NestswapError('ERR_PATH_INVALID', `Invalid path ${JSON.stringify(p.slice(0, 80))}: ${c.reason}.`);
  }
  const absRoot = resolve(root);
  const full = resolve(absRoot, ...parts);
  if (full === absRoot || !inside(absRoot, full)) throw new NestswapError('ERR_PATH_ESCAPE', `Path ${JSON.stringify(parts.join('/'))} leaves ${absRoot}.`);
  if (existsSync(absRoot)) {
    const realRoot = realpathSync(absRoot);
    const real = realExisting(full);
    if (!inside(realRoot, real)) throw new NestswapError('ERR_PATH_ESCAPE', `Path ${JSON.stringify(parts.join('/'))} resolves outside ${realRoot} (through a link).`);
  }
  return full;
}

/** Throws ERR_PATH_ESCAPE unless `p` is strictly inside `root` (lexically and through links). */
export function assertInside(root: string, p: string): string {
  const absRoot = resolve(root);
  const full = resolve(p);
  if (full === absRoot || !inside(absRoot, full)) throw new NestswapError('ERR_PATH_ESCAPE', `${full} is not inside ${absRoot}.`);
  if (existsSync(absRoot) && !inside(realpathSync(absRoot), realExisting(full))) throw new NestswapError('ERR_PATH_ESCAPE', `${full} resolves outside ${absRoot} (through a link).`);
  return full;
}
