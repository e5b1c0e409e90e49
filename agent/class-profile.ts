/**
 * Few-shot profiling from a class profile (docs/profiler.md#class-profiles): instead of measuring every
 * part, a device of a known class times at most 10 whole subnets spread over the space (the profiler's
 * interleaved whole-subnet measurement), fits one scale s to the class profile's predictions (least
 * squares in relative error, as the profiler's calibration) and adopts the scaled class profile when the
 * scaled prediction's MAPE on those subnets is within the threshold (default 10%); otherwise the caller
 * measures the full profile.
 */
import { nodeBackend } from '../runtime/node/ort-node.js';
import type { SupernetPackage } from '../runtime/package.js';
import { checkProfileFor, parseProfile, predictionStats, profileLatencyPredictor, type Profile, type ProfileSample, type ProfileStats } from '../runtime/profile.js';
import type { Backend } from '../runtime/session.js';
import type { SubnetConfig } from '../runtime/space.js';
import { median } from '../runtime/profile.js';
import { measureSubnetsLatency, runsForBudget, sampleSubnets, type DeviceIdentity } from './profiler.js';

export const FEW_SHOT_MAX_SUBNETS = 10;

export interface FewShotOptions {
  device: DeviceIdentity;
  ep?: string;
  threads?: number;
  backend?: Backend;
  /** whole subnets timed (default and at most 10) */
  subnets?: number;
  /** adopt the scaled class profile when its MAPE on the timed subnets is at most this (default 0.10) */
  mapeThreshold?: number;
  /** timed runs per subnet (default: ~3 s of runs in all, 20..400 per subnet) */
  subnetRuns?: number;
  warmup?: number;
  seed?: number;
  /** stops the measurement with the signal's reason */
  signal?: AbortSignal;
  /** times the subnets (ms each); default: the profiler's interleaved whole-subnet measurement */
  measure?: (cfgs: SubnetConfig[]) => Promise<number[]>;
}

export interface FewShotResult {
  adopted: boolean;
  /** why it was adopted or refused, one line */
  reason: string;
  scale: number;
  /** the scaled class prediction against the timed subnets */
  stats: ProfileStats;
  threshold: number;
  /** the scaled class profile, as this device's own (when adopted) */
  profile?: Profile;
  wallMs: number;
}

/** The least-squares scale of `predicted` onto `measured` in relative error: Σ(p/m) / Σ(p/m)². */
export function fitScale(predicted: readonly number[], measured: readonly number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < predicted.length; i++) {
    const r = predicted[i]! / Math.max(measured[i]!, 1e-9);
    num += r;
    den += r * r;
  }
  return den > 0 ? num / den : 1;
}

/** min, max and random subnets over every resolution: spread over the space. */
export function fewShotSubnets(pkg: SupernetPackage, n: number, seed: number): SubnetConfig[] {
  const res = pkg.space.image_size_list;
  const ends = [pkg.space.min(), { ...pkg.space.max(), image_size: Math.max(...res) }];
  const seen = new Set(ends.map((c) => pkg.space.id(c)));
  return [...ends, ...sampleSubnets(pkg, Math.max(0, n - 2), seed, res, seen)].slice(0, n);
}

/** Why a class profile cannot be used on this device at all (empty when it can). */
function mismatch(cp: Profile, pkg: SupernetPackage, ep: string, threads: number): string | undefined {
  try {
    checkProfileFor(cp, pkg, 'class profile');
  } catch (e) {
    return (e as Error).message;
  }
  if (cp.ep !== ep) return `class profile measured with EP ${cp.ep}, this device runs ${ep}`;
  if (cp.threads !== threads) return `class profile measured with ${cp.threads} threads, this device runs ${threads}`;
  return undefined;
}

/** `cp` with every latency scaled by `s`, as this device's profile. */
function scaledProfile(cp: Profile, s: number, device: DeviceIdentity, stats: ProfileStats, backend: Backend, wallMs: number, classDevices: number | undefined): Profile {
  const c = structuredClone(cp);
  c.created = new Date().toISOString();
  c.fingerprint = device.fingerprint;
  c.deviceClass = device.deviceClass;
  c.device = { ...(device.facts ?? {}), fewShot: { scale: s, classDevices: classDevices ?? null, classFingerprint: cp.fingerprint } };
  c.ortVersion = backend.version;
  c.latency.model.calibration = { a: cp.latency.model.calibration.a * s, b: cp.latency.model.calibration.b * s };
  c.latency.calibrationSamples = stats.samples;
  c.validation = stats;
  c.method = { ...c.method, wallMs, timing: `few-shot: class profile scaled by ${s.toFixed(4)} on ${stats.subnets} whole subnets timed in interleaved rounds` };
  return parseProfile(c, 'few-shot profile');
}

/** Times a few whole subnets and decides whether the scaled class profile describes this device. */
export async function fewShotFromClass(pkg: SupernetPackage, classProfile: Profile, o: FewShotOptions & { classDevices?: number }): Promise<FewShotResult> {
  const t0 = performance.now();
  const backend = o.backend ?? nodeBackend;
  const ep = o.ep ?? backend.defaultEp;
  const threads = o.threads ?? 1;
  const threshold = o.mapeThreshold ?? 0.1;
  const none = (reason: string): FewShotResult => ({ adopted: false, reason, scale: 1, stats: predictionStats([]), threshold, wallMs: performance.now() - t0 });
  const bad = mismatch(classProfile, pkg, ep, threads);
  if (bad) return none(bad);
  const n = Math.max(2, Math.min(FEW_SHOT_MAX_SUBNETS, o.subnets ?? FEW_SHOT_MAX_SUBNETS));
  const cfgs = fewShotSubnets(pkg, n, o.seed ?? 11);
  const pred = profileLatencyPredictor(classProfile);
  const predicted = cfgs.map((c) => pred.latencyMs(c));
  const runs = o.subnetRuns ?? runsForBudget(3000 / cfgs.length, median(predicted), 20, 400);
  const measured = o.measure
    ? await o.measure(cfgs)
    : (await measureSubnetsLatency(pkg, cfgs, { ep, threads, warmup: o.warmup ?? 3, runs, rounds: 20, seed: o.seed ?? 11, signal: o.signal }, backend)).map((x) => x.ms);
  const s = fitScale(predicted, measured);
  const samples: ProfileSample[] = cfgs.map((c, i) => ({ id: pkg.space.id(c), measured: measured[i]!, predicted: predicted[i]! * s }));
  const stats = predictionStats(samples);
  const wallMs = performance.now() - t0;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  if (stats.mape > threshold) return { adopted: false, reason: `scaled class profile missed: MAPE ${pct(stats.mape)} > ${pct(threshold)} on ${n} subnets (scale ${s.toFixed(3)})`, scale: s, stats, threshold, wallMs };
  return {
    adopted: true,
    reason: `scaled class profile fits: MAPE ${pct(stats.mape)} ≤ ${pct(threshold)} on ${n} subnets (scale ${s.toFixed(3)})`,
    scale: s,
    stats,
    threshold,
    profile: scaledProfile(classProfile, s, o.device, stats, backend, wallMs, o.classDevices),
    wallMs,
  };
}
