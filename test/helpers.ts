/** Shared test helpers: repository paths and numeric comparison. */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

/** Absolute path inside the repository (tests run from dist/test/). */
export function repoPath(...parts: string[]): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', ...parts);
}

/** The tiny untrained fixture package (fast to materialize, calibrate and run). */
export const TINY = repoPath('test', 'fixtures', 'tiny', 'package');

/** Materializer options that calibrate BN on 64 images instead of all: enough for tests of behaviour. */
export const FAST = { calibration: { images: 64 } };

/**
 * The version directories in an agent's `packages/<name>/` cache: what is neither a pointer file
 * (current.json, served.json) nor hidden (.staging). Empty when the directory does not exist.
 */
export function cachedVersionDirs(nameDir: string): string[] {
  if (!existsSync(nameDir)) return [];
  return readdirSync(nameDir, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
}

export function tempDir(prefix = 'nestswap-test-'): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

/** Largest absolute difference between two arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
