/**
 * On-device latency profiling: times every distinct part of the space as it will run (same ORT, EP,
 * graph optimisation 'all', threads), calibrates the part sums against whole subnets
 * (`measured ≈ a·Σparts + b`) and validates on held-out random subnets. Profiles are cached in a
 * data directory and reused while device, ORT version, EP, threads and weights match.
 *
 * Timing is done from outside (`performance.now()` around `run()`), never with ORT's profiler,
 * which inflates times. Each isolated part pays the fixed JS↔native cost of one `run()`, which a
 * whole subnet pays once: that cost (an almost empty graph's median) is subtracted from every part
 * but 'pre', which carries it for the whole network.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { writeDurableAsync } from '../runtime/node/durable.js';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NestswapError } from '../runtime/errors.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import type { SupernetPackage } from '../runtime/package.js';
import { parseProfileText, profileMismatch, serializeProfile, type Profile, type ProfileKey } from '../runtime/profile.js';
import { measureSubnetsLatency as measureCore, profileDevice as profileCore, type InterleavedTimingOptions, type MemoryMeter, type ProfileOptions, type Timing } from './core/profiler.js';
import { fitMemory, measureSubnetMemory } from './memory.js';
import { SubnetWeights } from '../runtime/materialize.js';
import type { Backend } from '../runtime/session.js';
import type { SubnetConfig } from '../runtime/space.js';

export * from './core/profiler.js';

/** Session memory measured in child processes. */
export const nodeMemoryMeter: MemoryMeter = { measure: measureSubnetMemory, fit: fitMemory };

/** Profiles this device on onnxruntime-node unless another backend is given (memory measured in child processes). */
export async function profileDevice(pkg: SupernetPackage, opts: ProfileOptions): Promise<Profile> {
  return profileCore(pkg, { memory: nodeMemoryMeter, ...opts, backend: opts.backend ?? nodeBackend });
}

/** See core/profiler.ts; onnxruntime-node by default. */
export async function measureSubnetsLatency(pkg: SupernetPackage, cfgs: readonly SubnetConfig[], o: InterleavedTimingOptions, backend: Backend = nodeBackend, weights = new SubnetWeights(pkg)): Promise<Timing[]> {
  return measureCore(pkg, cfgs, o, backend, weights);
}

// ---------------------------------------------------------------------------------------------
// Cache

export function defaultDataDir(): string {
  return process.env.NESTSWAP_DATA ?? join(homedir(), '.nestswap');
}

/**
 * Revision of the measuring method: profiles measured by an older method are not reused (2: parts
 * timed against an interleaved baseline; 3: parts and whole subnets timed in interleaved rounds).
 */
export const PROFILER_REVISION = 3;

/** One file per (supernet weights, EP, threads, profiler revision); device and ORT version are checked inside. */
export function profileCachePath(dataDir: string, pkg: SupernetPackage, ep: string, threads: number): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');
  return join(dataDir, 'profiles', `${safe(pkg.name)}-${pkg.weightsDigest.slice(0, 12)}-${safe(ep)}-t${threads}-p${PROFILER_REVISION}.json`);
}

export interface CachedProfile {
  profile: Profile;
  path: string;
  /** true when reused from the data directory */
  cached: boolean;
  /** why a cached file was not reused (absent, unreadable, or what changed) */
  reasons: string[];
}

/** Reads a profile file; corrupt or foreign content is ERR_PROFILE_INVALID. */
export async function readProfileFile(path: string): Promise<Profile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new NestswapError('ERR_PROFILE_INVALID', `Cannot read profile '${path}': ${(cause as Error).message}`, { cause });
  }
  return parseProfileText(text, `profile '${path}'`);
}

export async function writeProfileFile(path: string, p: Profile): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeDurableAsync(path, serializeProfile(p), { crashPoint: 'profile-write' });
}

/** The cached profile when it still matches this device, ORT, EP, threads and weights; else a fresh one (then cached). */
export async function loadOrProfile(pkg: SupernetPackage, opts: ProfileOptions & { dataDir?: string; force?: boolean }): Promise<CachedProfile> {
  const backend = opts.backend ?? nodeBackend;
  const ep = opts.ep ?? backend.defaultEp;
  const threads = opts.threads ?? 1;
  const path = profileCachePath(opts.dataDir ?? defaultDataDir(), pkg, ep, threads);
  const key: ProfileKey = { fingerprint: opts.device.fingerprint, ortVersion: backend.version, ep, threads, weightsDigest: pkg.weightsDigest };
  let reasons: string[] = [];
  if (opts.force) reasons = ['forced'];
  else {
    try {
      const p = await readProfileFile(path);
      reasons = profileMismatch(p, key);
      if (reasons.length === 0) return { profile: p, path, cached: true, reasons };
    } catch (e) {
      reasons = [e instanceof Error && 'code' in e && (e as { code?: string }).code === 'ERR_PROFILE_INVALID' && /ENOENT/.test(e.message) ? 'no cached profile' : (e as Error).message];
    }
  }
  const profile = await profileDevice(pkg, { ...opts, ep, threads, backend });
  await writeProfileFile(path, profile);
  return { profile, path, cached: false, reasons };
}
