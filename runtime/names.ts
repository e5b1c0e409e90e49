/**
 * Validators for every name, version and relative path that crosses a trust boundary (a registry's
 * answer, a manifest, a publish body, a file from disk). One rule for all of them, per path segment:
 * `^[A-Za-z0-9][A-Za-z0-9._-]*$`, at most 128 characters, never `.` or `..` (the first character
 * already excludes both), never absolute. Platform neutral: resolving a path inside a directory on
 * disk is runtime/node/safe-path.ts.
 *
 * Each validator has a safe-parse form (`checkX`: a value, or an error description) and a throwing
 * form (`assertX`: a NestswapError with a stable code).
 */
import { NestswapError, type ErrorCode } from './errors.js';

export const SEGMENT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const MAX_SEGMENT = 128;
/** at most this many segments in a relative path */
export const MAX_DEPTH = 8;

export type Check = { ok: true; value: string } | { ok: false; reason: string };

/** One path segment: a file or directory name. */
export function checkSegment(value: unknown): Check {
  if (typeof value !== 'string') return { ok: false, reason: `expected a string, got ${typeof value}` };
  if (value.length === 0) return { ok: false, reason: 'empty' };
  if (value.length > MAX_SEGMENT) return { ok: false, reason: `longer than ${MAX_SEGMENT} characters` };
  if (value === '.' || value === '..') return { ok: false, reason: `'${value}' is not a name` };
  if (!SEGMENT_RE.test(value)) return { ok: false, reason: `${JSON.stringify(value.slice(0, 80))} does not match ${SEGMENT_RE.source}` };
  return { ok: true, value };
}

/** A relative path of 1..MAX_DEPTH segments separated by '/': never absolute, never '.', '..', '\\' or empty segments. */
export function checkRelativePath(value: unknown): Check {
  if (typeof value !== 'string') return { ok: false, reason: `expected a string, got ${typeof value}` };
  if (value.startsWith('/') || /^[A-Za-z]:/.test(value) || value.includes('\\')) return { ok: false, reason: `${JSON.stringify(value.slice(0, 80))} is absolute or uses '\\'` };
  const segs = value.split('/');
  if (segs.length > MAX_DEPTH) return { ok: false, reason: `more than ${MAX_DEPTH} segments` };
  for (const s of segs) {
    const c = checkSegment(s);
    if (!c.ok) return { ok: false, reason: `segment ${c.reason}` };
  }
  return { ok: true, value };
}

function assertWith(code: ErrorCode, what: string, c: Check, where?: string): string {
  if (c.ok) return c.value;
  throw new NestswapError(code, `Invalid ${what}${where ? ` from ${where}` : ''}: ${c.reason}.`, { details: { what } });
}

/** A package (supernet) name. */
export const assertName = (v: unknown, where?: string): string => assertWith('ERR_NAME_INVALID', 'name', checkSegment(v), where);
/**
 * Names a version may not take, though each is a valid segment: `latest` is the registry's alias
 * for the newest version (a version of that name could never be asked for), and `current.json` /
 * `served.json` are the pointer files beside the versions in an agent's package cache.
 */
export const RESERVED_VERSIONS: ReadonlySet<string> = new Set(['latest', 'current.json', 'served.json']);

/** A package version: one segment, and not a reserved name. */
export function checkVersion(value: unknown): Check {
  const c = checkSegment(value);
  if (c.ok && RESERVED_VERSIONS.has(c.value)) return { ok: false, reason: `'${c.value}' is reserved` };
  return c;
}

/** A package version. */
export const assertVersion = (v: unknown, where?: string): string => assertWith('ERR_VERSION_INVALID', 'version', checkVersion(v), where);
/** A file path inside a package. */
export const assertRelativePath = (v: unknown, where?: string): string => assertWith('ERR_PATH_INVALID', 'path', checkRelativePath(v), where);

/** zod-friendly predicates (`z.string().refine(isSegment, ...)`). */
export const isSegment = (v: string): boolean => checkSegment(v).ok;
export const isRelativePath = (v: string): boolean => checkRelativePath(v).ok;
