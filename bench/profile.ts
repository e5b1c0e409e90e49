/**
 * Profiler benchmark: full profile wall time, then latency prediction quality on 100 random subnets
 * measured independently of the profiler (their own fresh sessions, BN not recalibrated, median of N
 * runs taken in interleaved rounds), and memory prediction error against the measured resident-memory
 * increase of a fresh child process. The 100 subnets are measured twice, in two passes with new
 * sessions: how well the second pass predicts the first is the ceiling any predictor has on this
 * machine, printed as `repeatability`. Prints JSON.
 *
 *   node dist/bench/profile.js [--families ofa-mbv3-w1.0,fmnist-ofa] [--subnets 100] [--threads 1]
 *                              [--runs 30] [--subnet-runs auto] [--rounds 20] [--memory-subnets 10]
 *                              [--resolutions 128,160,192,224]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { measureSubnetMemory } from '../agent/memory.js';
import { currentDeviceIdentity } from '../agent/device.js';
import { defaultMeasuredResolutions, interleavePlan, measureSubnetsLatency, profileDevice, runsForBudget, sampleSubnets, subnetInputDims } from '../agent/profiler.js';
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
    'subnet-runs': { type: 'string', default: 'auto' },
    'memory-subnets': { type: 'string', default: '10' },
    resolutions: { type: 'string' },
    rounds: { type: 'string', default: '20' },
  },
});
const nSubnets = Number(values.subnets);
const threads = Number(values.threads);
const runs = Number(values.runs);
// 'auto' (0): a timing budget per measured subnet, below
const subnetRuns = values['subnet-runs'] === 'auto' ? 0 : Number(values['subnet-runs']);
const nMem = Number(values['memory-subnets']);
const rounds = Math.max(1, Number(values.rounds));
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
  const profile = await profileDevice(pkg, { device, threads, runs, ...(subnetRuns > 0 ? { subnetRuns } : {}), resolutions: measured, validationSubnets: 10, memorySubnets: 6 });
  const profileWallMs = performance.now() - t0;
  const lp = profileLatencyPredictor(profile);
  const weights = new SubnetWeights(pkg);
  // independent measurement: other seed, whole space (interpolated resolutions included)
  const cfgs = sampleSubnets(pkg, nSubnets, 12345);
  // Timing budget: subnet-runs 'auto' gives each subnet ~500 ms of timed runs (20..200 runs), so a
  // family of sub-millisecond subnets is not measured on a few milliseconds of a noisy machine.
  const typical = median(cfgs.map((c) => lp.latencyMs(c)));
  const runsPer = subnetRuns > 0 ? subnetRuns : runsForBudget(500, typical, 20, 200);
  const timing = { ep: 'cpu', threads, warmup: 5, runs: runsPer, rounds } as const;
  // Level probe: three anchor subnets (not among the measured ones) timed inside the measured pass; the
  // median of their measured / predicted is the machine's speed now relative to profiling time, which is
  // what the agent's monitor applies as its live slowdown factor (observed / predicted on the serving
  // subnet). The raw figures are the prediction's; the corrected ones separate the predictor from the
  // machine's level shifts.
  const anchors = sampleSubnets(pkg, 3, 4242, pkg.space.image_size_list, new Set(cfgs.map((c) => pkg.space.id(c))));
  const t1 = performance.now();
  const passA = await measureSubnetsLatency(pkg, [...cfgs, ...anchors], { ...timing, seed: 21 }, undefined, weights);
  const measureWallMs = performance.now() - t1;
  const passB = await measureSubnetsLatency(pkg, cfgs, { ...timing, seed: 31 }, undefined, weights);
  const factor = median(anchors.map((a, k) => passA[cfgs.length + k]!.medianMs / lp.latencyMs(a)));
  const med: ProfileSample[] = [];
  const p10: ProfileSample[] = [];
  const corrected: ProfileSample[] = [];
  const repeat: ProfileSample[] = [];
  for (const [i, cfg] of cfgs.entries()) {
    const id = pkg.space.id(cfg);
    const predicted = lp.latencyMs(cfg);
    med.push({ id, measured: passA[i]!.medianMs, predicted });
    p10.push({ id, measured: passA[i]!.p10Ms, predicted });
    corrected.push({ id, measured: passA[i]!.medianMs, predicted: predicted * factor });
    repeat.push({ id, measured: passA[i]!.medianMs, predicted: passB[i]!.medianMs });
  }
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
    profileValidation: { ...summary(profile.validation), passes: profile.method.subnetPasses ?? 1 },
    latency: { ...summary(predictionStats(med)), statistic: `median of ${runsPer} runs in ${interleavePlan(runsPer, rounds).rounds} interleaved rounds, fresh session` },
    latencyVsP10: summary(predictionStats(p10)),
    // a second measured pass (new sessions) against the first: the best any predictor can do here
    repeatability: { ...summary(predictionStats(repeat)), levelRatio: round(median(repeat.map((x) => x.predicted / x.measured)), 4) },
    // anchors' measured / predicted in the measured pass: the machine's speed relative to profiling time
    drift: { anchors: anchors.map((a) => pkg.space.id(a)), factor: round(factor, 4) },
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
