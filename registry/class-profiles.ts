/**
 * Class profiles: one profile per device class, the aggregate of the uploaded profiles of that class's
 * devices. Every number of the latency tables (fixed and per-slot part times, `pre`, `head`, each part)
 * and of the calibration (`a`, `b`) is the median over the devices; so is the memory model when every
 * device has one of the same shape. Only profiles measured like the newest one (same weights, EP,
 * threads and table shape) are aggregated: a class whose devices run two supernets keeps the newest's.
 * The result is an ordinary `nestswap.profile/1` document: a new device of the class can adopt it
 * (agent/class-profile.ts) and best-model queries for a device class search with it.
 */
import { createHash } from 'node:crypto';
import { median, parseProfile, PROFILE_FORMAT, predictionStats, type Profile } from '../runtime/profile.js';
import type { ClassProfileRow, ProfileRow, RegistryStore } from './store.js';

const medianOf = (xs: readonly number[]): number => median(xs);

/** Element-wise median of equally long arrays. */
function medianArrays(rows: readonly (readonly number[])[]): number[] {
  return rows[0]!.map((_, i) => medianOf(rows.map((r) => r[i]!)));
}

const sameShape = (a: Profile, b: Profile): boolean =>
  a.supernet.weightsDigest === b.supernet.weightsDigest &&
  a.ep === b.ep &&
  a.threads === b.threads &&
  a.latency.model.fixed.length === b.latency.model.fixed.length &&
  a.latency.model.slot.length === b.latency.model.slot.length &&
  a.latency.model.resolutions.join() === b.latency.model.resolutions.join() &&
  a.latency.pre.length === b.latency.pre.length &&
  a.latency.head.length === b.latency.head.length;

function aggregateMemory(ps: readonly Profile[]): Profile['memory'] | undefined {
  const ms = ps.map((p) => p.memory);
  if (ms.some((m) => !m)) return undefined;
  const mems = ms as NonNullable<Profile['memory']>[];
  const m0 = mems[0]!;
  if (mems.some((m) => m.model.fixed.length !== m0.model.fixed.length || m.model.slot.length !== m0.model.slot.length)) return undefined;
  const cal = mems.every((m) => m.model.calibration)
    ? { calibration: { a: medianOf(mems.map((m) => m.model.calibration!.a)), b: medianOf(mems.map((m) => m.model.calibration!.b)) } }
    : {};
  const overheadMB = medianOf(mems.map((m) => m.overheadMB));
  return {
    model: { ...m0.model, fixed: medianArrays(mems.map((m) => m.model.fixed)), slot: medianArrays(mems.map((m) => m.model.slot)), ...cal },
    coef: { weights: medianOf(mems.map((m) => m.coef.weights)), activations: medianOf(mems.map((m) => m.coef.activations)), overheadMB },
    overheadMB,
    fitSamples: [],
    validation: null,
  };
}

/**
 * The class aggregate of several profiles of one class (newest first): the newest and every one
 * measured like it. Returns the profile and how many devices it came from.
 */
export function aggregateProfiles(deviceClass: string, newestFirst: readonly Profile[]): { profile: Profile; devices: number } {
  if (newestFirst.length === 0) throw new Error('aggregateProfiles needs at least one profile');
  const head = newestFirst[0]!;
  const ps = newestFirst.filter((p) => sameShape(p, head));
  const lat = ps.map((p) => p.latency);
  const partKeys = head.parts.filter((part) => ps.every((p) => p.parts.some((q) => q.key === part.key)));
  const parts = partKeys.map((part) => {
    const rows = ps.map((p) => p.parts.find((q) => q.key === part.key)!);
    return { key: part.key, kind: part.kind, ms: medianOf(rows.map((r) => r.ms)), count: rows.reduce((s, r) => s + r.count, 0), var: medianOf(rows.map((r) => r.var)) };
  });
  const fingerprint = createHash('sha256')
    .update(`class:${deviceClass}:${ps.map((p) => p.fingerprint).sort().join(',')}`)
    .digest('hex')
    .slice(0, 32);
  const memory = aggregateMemory(ps);
  const profile: Profile = {
    format: PROFILE_FORMAT,
    created: new Date().toISOString(),
    fingerprint,
    deviceClass,
    device: { classProfile: { devices: ps.length, fingerprints: ps.map((p) => p.fingerprint) } },
    backend: head.backend,
    ortVersion: head.ortVersion,
    ep: head.ep,
    threads: head.threads,
    graphOptimizationLevel: head.graphOptimizationLevel,
    supernet: { ...head.supernet },
    method: {
      ...head.method,
      wallMs: medianOf(ps.map((p) => p.method.wallMs)),
      baselineMs: medianOf(ps.map((p) => p.method.baselineMs)),
      interpolation: head.method.interpolation,
      timing: `median over ${ps.length} device profile(s) of class '${deviceClass}'`,
    },
    parts,
    latency: {
      model: {
        ...head.latency.model,
        fixed: medianArrays(lat.map((l) => l.model.fixed)),
        slot: medianArrays(lat.map((l) => l.model.slot)),
        calibration: { a: medianOf(lat.map((l) => l.model.calibration.a)), b: medianOf(lat.map((l) => l.model.calibration.b)) },
      },
      pre: medianArrays(lat.map((l) => l.pre)),
      head: medianArrays(lat.map((l) => l.head)),
      calibrationSamples: [],
    },
    validation: predictionStats([]),
    ...(memory ? { memory } : {}),
  };
  return { profile: parseProfile(profile, 'class profile'), devices: ps.length };
}

/** Recomputes and stores the class profile of `deviceClass` from every stored profile of the class. */
export async function recomputeClassProfile(store: RegistryStore, deviceClass: string): Promise<ClassProfileRow | undefined> {
  const rows: ProfileRow[] = await store.profilesOfClass(deviceClass);
  const ps: Profile[] = [];
  for (const r of rows) {
    try {
      ps.push(parseProfile(JSON.parse(r.json) as unknown, 'stored profile'));
    } catch {
      // a profile stored by an older format is left out of the aggregate
    }
  }
  if (ps.length === 0) return undefined;
  const { profile, devices } = aggregateProfiles(deviceClass, ps);
  const json = JSON.stringify(profile);
  const row: ClassProfileRow = { device_class: deviceClass, sha256: createHash('sha256').update(json).digest('hex'), json, devices, updated_at: new Date().toISOString() };
  await store.putClassProfile(row);
  return row;
}
