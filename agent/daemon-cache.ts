/**
 * What a daemon's data directory keeps per supernet weights, and deleting it for weights no longer
 * cached. The daemon keys three caches by the weights' sha256 (runtime/calibrate.ts statsKey,
 * agent/profiler.ts profileCachePath, the ladder file in agent/daemon.ts):
 *
 *   bn-stats/<sha256[:16]>_<subnet id>_n<images>.bnstats
 *   profiles/<supernet>-<sha256[:12]>-<ep>-t<threads>-p<revision>.json
 *   ladder-<sha256[:16]>.json
 *
 * A fleet agent that moves to a newer package version leaves those of the old weights behind; once
 * the package cache has dropped a version (RegistryClient.markServed), `pruneDaemonCache` drops them
 * too, so an agent that updates for months holds the caches of two versions at most. Only files of
 * exactly these shapes and of the dropped weights are touched: another supernet's caches in the same
 * directory, and anything else there, are left alone.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const HEX = /^[0-9a-f]{64}$/;

/** The daemon's cached Pareto ladder of these weights. */
export function ladderCachePath(dataDir: string, weightsDigest: string): string {
  return join(dataDir, `ladder-${weightsDigest.slice(0, 16)}.json`);
}

export interface PruneResult {
  files: number;
  bytes: number;
}

/**
 * Deletes the BN statistics, profiles and ladders in `dir` of the weights in `dropped` (sha256 hex
 * digests of the weights of package versions just removed from the cache), except those whose
 * weights are also in `keep` (two versions may share weights). Never throws: a file that cannot be
 * deleted stays.
 */
export function pruneDaemonCache(dir: string, supernet: string, dropped: readonly string[], keep: readonly string[]): PruneResult {
  const gone = dropped.filter((d) => HEX.test(d) && !keep.includes(d));
  const out: PruneResult = { files: 0, bytes: 0 };
  if (gone.length === 0 || !existsSync(dir)) return out;
  const safeName = supernet.replace(/[^A-Za-z0-9._-]/g, '_');
  const drop = (f: string) => {
    try {
      const bytes = statSync(f).size;
      rmSync(f, { force: true });
      out.files++;
      out.bytes += bytes;
    } catch {
      // left behind: a cache file of weights no longer served is never read
    }
  };
  const sweep = (sub: string, prefixOf: (file: string) => string | undefined) => {
    const d = join(dir, sub);
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (!e.isFile()) continue;
      const prefix = prefixOf(e.name);
      if (prefix !== undefined && gone.some((g) => g.startsWith(prefix)) && !keep.some((k) => k.startsWith(prefix))) drop(join(d, e.name));
    }
  };
  sweep('bn-stats', (f) => /^([0-9a-f]{16})_.+\.bnstats$/.exec(f)?.[1]);
  sweep('profiles', (f) => (f.startsWith(`${safeName}-`) ? /^([0-9a-f]{12})-.+-t\d+-p\d+\.json$/.exec(f.slice(safeName.length + 1))?.[1] : undefined));
  sweep('.', (f) => /^ladder-([0-9a-f]{16})\.json$/.exec(f)?.[1]);
  return out;
}
