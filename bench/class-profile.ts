/**
 * Class-profile benchmark (docs/profiler.md#class-profiles): on one machine, a full profile measured as
 * a peer of the class becomes the class profile (registry/class-profiles.ts); then a second full profile
 * and the few-shot calibration of the class profile are measured, timed, and both are compared against an
 * independent interleaved measurement of random subnets (other seed, fresh sessions). Prints JSON.
 *
 *   node dist/bench/class-profile.js [--family fmnist-ofa] [--subnets 100] [--threads 1]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fewShotFromClass } from '../agent/class-profile.js';
import { currentDeviceIdentity } from '../agent/device.js';
import { loadSupernet } from '../agent/packages.js';
import { measureSubnetsLatency, profileDevice, runsForBudget, sampleSubnets } from '../agent/profiler.js';
import { aggregateProfiles } from '../registry/class-profiles.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { median, predictionStats, profileLatencyPredictor, type Profile } from '../runtime/profile.js';
import { repoPath } from '../test/helpers.js';

const { values } = parseArgs({ options: { family: { type: 'string', default: 'fmnist-ofa' }, subnets: { type: 'string', default: '100' }, threads: { type: 'string', default: '1' } } });
const threads = Number(values.threads);
const fam = values.family!;
const tinyFallback = fam === 'fmnist-ofa' && !existsSync(repoPath('models/fmnist-ofa/package/manifest.json'));
const pkg = tinyFallback ? await loadPackageDir(repoPath('test/fixtures/tiny/package')) : await loadSupernet(fam);
const device = await currentDeviceIdentity();
const round = (v: number, d = 4) => Math.round(v * 10 ** d) / 10 ** d;

const peer = await profileDevice(pkg, { device: { ...device, fingerprint: 'c1a55c1a55c1a55c' }, threads, memorySubnets: 0, seed: 7 });
const cls = aggregateProfiles(device.deviceClass, [peer]).profile;
let t0 = performance.now();
const full = await profileDevice(pkg, { device, threads, memorySubnets: 0, seed: 1 });
const fullWallMs = performance.now() - t0;
t0 = performance.now();
const few = await fewShotFromClass(pkg, cls, { device, threads });
const fewWallMs = performance.now() - t0;

const cfgs = sampleSubnets(pkg, Number(values.subnets), 12345);
const typical = median(cfgs.map((c) => profileLatencyPredictor(full).latencyMs(c)));
const t = await measureSubnetsLatency(pkg, cfgs, { ep: 'cpu', threads, warmup: 5, runs: runsForBudget(500, typical, 20, 200), rounds: 20, seed: 99 });
const stats = (p: Profile) => {
  const pred = profileLatencyPredictor(p);
  const s = predictionStats(cfgs.map((c, i) => ({ id: pkg.space.id(c), measured: t[i]!.ms, predicted: pred.latencyMs(c) })));
  return { mape: round(s.mape), within10: round(s.within10), kendallTau: s.kendallTau === null ? null : round(s.kendallTau), maxAbsPctErr: round(s.maxAbsPctErr, 1) };
};
console.log(
  JSON.stringify(
    {
      family: tinyFallback ? 'tiny (models/fmnist-ofa/package absent)' : fam,
      subnets: cfgs.length,
      full: { wallMs: Math.round(fullWallMs), ...stats(full) },
      fewShot: { wallMs: Math.round(fewWallMs), adopted: few.adopted, reason: few.reason, scale: round(few.scale), ...(few.profile ? stats(few.profile) : {}) },
      wallRatio: round(fewWallMs / fullWallMs, 3),
      date: new Date().toISOString().slice(0, 10),
    },
    null,
    1,
  ),
);
