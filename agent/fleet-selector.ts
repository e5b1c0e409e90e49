/**
 * A fleet agent's selector: the Pareto ladder over this device's profile, as the standalone agent
 * decides, when a profile of this device is already cached (an earlier start profiled it). A first
 * start serves at once from the daemon's measured ladder while it profiles in the background, and the
 * ladder takes over when that profile is ready (agent/fleet.ts, AgentCore.useSelector). Undefined (the measured ladder) without an accuracy
 * predictor, without a matching cached profile, or when the ladder cannot be built.
 */
import type { Logger } from 'pino';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { profileMismatch } from '../runtime/profile.js';
import type { SupernetPackage } from '../runtime/package.js';
import type { LadderSelector } from './core/ladder-selector.js';
import { profileCachePath, readProfileFile } from './profiler.js';
import { profileLadderSelector } from './search-selector.js';

export async function cachedProfileLadder(
  pkg: SupernetPackage,
  o: { dataDir: string; fingerprint: string; threads?: number | undefined; rungs?: number; logger?: Logger },
): Promise<LadderSelector | undefined> {
  if (!pkg.fileByRole('accuracy-predictor') || o.rungs === 0) return undefined;
  const threads = o.threads || 1; // as the fleet agent profiles (loadOrProfile's default)
  const path = profileCachePath(o.dataDir, pkg, nodeBackend.defaultEp, threads);
  let profile;
  try {
    profile = await readProfileFile(path);
  } catch {
    o.logger?.info({ selector: 'measured ladder', reason: 'no cached profile yet' }, 'selector');
    return undefined;
  }
  const why = profileMismatch(profile, { fingerprint: o.fingerprint, ortVersion: nodeBackend.version, ep: nodeBackend.defaultEp, threads, weightsDigest: pkg.weightsDigest });
  if (why.length) {
    o.logger?.info({ selector: 'measured ladder', reason: why.join('; ') }, 'selector');
    return undefined;
  }
  try {
    const s = await profileLadderSelector(pkg, profile, { rungs: o.rungs ?? 64, ...(o.logger ? { logger: o.logger } : {}) });
    o.logger?.info({ selector: s.kind, rungs: s.ladder?.rungs.length }, 'selector');
    return s;
  } catch (err) {
    o.logger?.warn({ err: (err as Error).message }, 'Pareto ladder not built: deciding from the measured ladder');
    return undefined;
  }
}
