/**
 * Profiler benchmark: full profile wall time, then latency prediction quality on 100 random subnets
 * measured independently of the profiler (fresh session per subnet, BN not recalibrated, median of
 * N runs), and memory prediction error against the measured resident-memory increase of a fresh
 * child process. Prints JSON.
 *
 *   node dist/bench/profile.js [--families ofa-mbv3-w1.0,fmnist-ofa] [--subnets 100] [--threads 1]
 *                              [--runs 30] [--subnet-runs 20] [--memory-subnets 10] [--resolutions 128,160,192,224]
 *                              [--drift-every 10]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { measureSubnetMemory } from '../agent/memory.js';
import { currentDeviceIdentity } from '../agent/device.js';
import { defaultMeasuredResolutions, measureSubnetLatency, profileDevice, sampleSubnets, subnetInputDims } from '../agent/profiler.js';
import { buildSubnet, SubnetWeights } from '../runtime/materialize.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { median, predictionStats, profileLatencyPredictor, profileMemoryPredictor, type ProfileSample } from '../runtime/profile.js';
import { loadSupernet } from '../agent/packages.js';
import { repoPath } from '../test/helpers.js';

const { values } = parseArgs({
  options: {
    families: { type: 'string', default: 'ofa-mbv3-w1.0,fmnist-ofa' },
    subnets: { type: 'string', default: '100' },
    threads: { type: 'string', default: '1' },
    runs: { type: 'string', default: '30' },
    'subnet-runs': { type: 'string', default: '20' },
    'memory-subnets': { type: 'string', default: '10' },
    resolutions: { type: 'string' },
    'drift-every': { type: 'string', default: '10' },
  },
});
const nSubnets = Number(values.subnets);
const threads = Number(values.threads);
const runs = Number(values.runs);
const subnetRuns = Number(values['subnet-runs']);
const nMem = Number(values['memory-subnets']);
const driftEvery = Math.max(1, Number(values['drift-every']));
const device = await currentDeviceIdentity();
const round = (v: number, d = 4) => Math.round(v * 10 ** d) / 10 ** d;
const summary = (s: ReturnType<typeof predictionStats>) => ({
  subnets: s.subnets,
  mape: round(s.mape),
  within10: round(s.within10),
  kendallTau: s.kendallTau === null ? null : round(s.kendallTau),
  maxAbsPctErr: round(s.maxAbsPctErr, 1),
  // mean signed error: a level shift (the machine running faster or slower than while profiling) vs scatter
  biasPct: round((s.samples.reduce((a, x) => a + (x.predicted - x.measured) / x.measured, 0) / Math.max(1, s.samples.length)) * 100, 2),
});

const results: Record<string, unknown>[] = [];
for (const fam of values.families!.split(',')) {
  let pkg;
  let note: string | undefined;
  if (fam === 'fmnist-ofa' && !existsSync(repoPath('models/fmnist-ofa/package/manifest.json'))) {
    pkg = await loadPackageDir(repoPath('test/fixtures/tiny/package'));
    note = 'models/fmnist-ofa/package absent: measured the tiny test fixture instead';
  } else pkg = await loadSupernet(fam);
  const measured = values.resolutions && fam === 'ofa-mbv3-w1.0' ? values.resolutions.split(',').map(Number) : defaultMeasuredResolutions(pkg.space.image_size_list);
  const t0 = performance.now();
  const profile = await profileDevice(pkg, { device, threads, runs, subnetRuns, resolutions: measured, validationSubnets: 10, memorySubnets: 6 });
  const profileWallMs = performance.now() - t0;
  const lp = profileLatencyPredictor(profile);
  const weights = new SubnetWeights(pkg);
  // independent measurement: other seed, whole space (interpolated resolutions included)
  const cfgs = sampleSubnets(pkg, nSubnets, 12345);
  const med: ProfileSample[] = [];
  const p10: ProfileSample[] = [];
  // Drift probe: three anchor subnets (not among the measured ones) timed right after profiling and again
  // before every block of `driftEvery` subnets; the median ratio now / then is the machine's speed relative
  // to profiling time (what the agent's live slowdown factor measures on a serving device). The raw numbers
  // above are the prediction's; the drift-corrected ones separate the predictor from the machine's level shifts.
  const timing = { ep: 'cpu', threads, warmup: 5, runs: subnetRuns } as const;
  const anchors = sampleSubnets(pkg, 3, 4242, pkg.space.image_size_list, new Set(cfgs.map((c) => pkg.space.id(c))));
  const timeAnchors = async () => {
    const out: number[] = [];
    for (const a of anchors) out.push((await measureSubnetLatency(pkg, a, timing, undefined, weights)).medianMs);
    return out;
  };
  const anchorBase = await timeAnchors();
  const drift: number[] = [];
  const corrected: ProfileSample[] = [];
  const t1 = performance.now();
  let factor = 1;
  for (const [i, cfg] of cfgs.entries()) {
    if (i % driftEvery === 0) {
      const now = await timeAnchors();
      factor = median(now.map((v, k) => v / anchorBase[k]!));
      drift.push(round(factor, 4));
    }
    const t = await measureSubnetLatency(pkg, cfg, timing, undefined, weights);
    const predicted = lp.latencyMs(cfg);
    med.push({ id: pkg.space.id(cfg), measured: t.medianMs, predicted });
    p10.push({ id: pkg.space.id(cfg), measured: t.p10Ms, predicted });
    corrected.push({ id: pkg.space.id(cfg), measured: t.medianMs, predicted: predicted * factor });
  }
  const measureWallMs = performance.now() - t1;
  const mp = profileMemoryPredictor(profile)!;
  const mem: ProfileSample[] = [];
  for (const cfg of sampleSubnets(pkg, nMem, 777)) {
    const built = buildSubnet(weights, cfg, { mode: 'fold', batch: 1 });
    const m = await measureSubnetMemory(built.bytes, subnetInputDims(pkg), { ep: 'cpu', threads });
    mem.push({ id: pkg.space.id(cfg), measured: m.deltaMB, predicted: mp.memoryMB(cfg) });
  }
  const memStats = predictionStats(mem);
  results.push({
    family: pkg.name,
    ...(note ? { note } : {}),
    ep: 'cpu',
    threads,
    measuredResolutions: measured,
    interpolatedResolutions: pkg.space.image_size_list.filter((r) => !measured.includes(r)).length,
    parts: profile.parts.length,
    profileWallS: round(profileWallMs / 1000, 1),
    runsPerPart: runs,
    calibration: profile.latency.model.calibration,
    profileValidation: summary(profile.validation),
    latency: { ...summary(predictionStats(med)), statistic: `median of ${subnetRuns} runs, fresh session` },
    latencyVsP10: summary(predictionStats(p10)),
    // anchors' speed relative to just after profiling, before each block of driftEvery subnets
    drift: { every: driftEvery, anchors: anchors.map((a) => pkg.space.id(a)), factors: drift },
    latencyDriftCorrected: summary(predictionStats(corrected)),
    measureWallS: round(measureWallMs / 1000, 1),
    memory: {
      subnets: mem.length,
      mape: round(memStats.mape),
      within15: round(mem.filter((s) => Math.abs(s.predicted - s.measured) <= 0.15 * s.measured).length / Math.max(mem.length, 1)),
      maxAbsPctErr: round(memStats.maxAbsPctErr, 1),
      coef: profile.memory?.coef,
      samples: mem.map((s) => ({ id: s.id, measuredMB: round(s.measured, 1), predictedMB: round(s.predicted, 1) })),
    },
  });
}
process.stdout.write(`${JSON.stringify({ bench: 'profile', device: device.deviceClass, loadavg: (await import('node:os')).loadavg().map((v) => round(v, 2)), results }, null, 2)}\n`);
