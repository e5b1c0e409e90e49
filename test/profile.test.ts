import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseLatencyTable, serializeLatencyTable, latencyTableFileName } from '../runtime/latency-table.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import type { SupernetPackage } from '../runtime/package.js';
import { enumerateParts } from '../runtime/parts.js';
import {
  checkProfileFor,
  fitLinear,
  kendallTau,
  median,
  latencyPredictorFromTables,
  parseProfile,
  parseProfileText,
  profileLatencyPredictor,
  profileMemoryPredictor,
  profileToLatencyTables,
  rawLatencySum,
  type Profile,
} from '../runtime/profile.js';
import { evaluateFlat } from '../runtime/search/efficiency.js';
import { mulberry32 } from '../runtime/random.js';
import { loadOrProfile, profileDevice, readProfileFile, sampleSubnets, timeInterleaved, type ProfileOptions, type Sampler } from '../agent/profiler.js';
import { tempDir, TINY } from './helpers.js';

let pkg: SupernetPackage;
let profile: Profile;
const device = { fingerprint: '00112233445566778899aabbccddeeff', deviceClass: 'test-class' };
// few runs: tests check behaviour, not timing quality
const quick: ProfileOptions = { device, runs: 3, warmup: 1, subnetRuns: 3, calibrationSubnets: 4, validationSubnets: 3, memorySubnets: 0 };

before(async () => {
  pkg = await loadPackageDir(TINY);
  profile = await profileDevice(pkg, { ...quick, memorySubnets: 3 });
});

test('parts are deduplicated: identical blocks in different slots share one entry', () => {
  const sp = enumerateParts(pkg.arch, pkg.space.image_size_list);
  const keys = sp.parts.map((p) => p.key);
  assert.equal(new Set(keys).size, keys.length);
  const r = sp.byResolution.get(12)!;
  // slots 1..3 of stage 0 have the same shapes: same keys
  assert.equal(r.blocks[1]![0]![0], r.blocks[2]![0]![0]);
  assert.notEqual(r.blocks[0]![0]![0], r.blocks[4]![0]![0]);
  assert.ok(sp.parts.length < pkg.space.image_size_list.length * (2 + pkg.space.nSlots * 9));
});

test('a profile has the documented shape and survives a JSON round trip', () => {
  assert.equal(profile.format, 'nestswap.profile/1');
  assert.equal(profile.fingerprint, device.fingerprint);
  assert.equal(profile.ep, 'cpu');
  assert.equal(profile.threads, 1);
  assert.equal(profile.supernet.weightsDigest, pkg.weightsDigest);
  assert.equal(profile.validation.subnets, 3);
  assert.ok(profile.latency.model.calibration.a > 0);
  const again = parseProfileText(JSON.stringify(profile));
  assert.deepEqual(again, profile);
});

test('the latency predictor is additive, calibrated and consistent', () => {
  const lp = profileLatencyPredictor(profile);
  assert.ok(lp.flat);
  const { a, b } = profile.latency.model.calibration;
  for (const cfg of sampleSubnets(pkg, 10, 7)) {
    const v = lp.latencyMs(cfg);
    assert.ok(Number.isFinite(v) && v > 0);
    assert.equal(v, lp.latencyMs(cfg), 'deterministic');
    assert.equal(v, evaluateFlat(lp.flat!, cfg), 'flat and function agree');
    assert.ok(Math.abs(v - (a * rawLatencySum(profile, cfg) + b)) < 1e-9);
  }
  // a deeper subnet with every other choice equal costs at least as much before calibration
  const small = pkg.space.uniform(3, 3, 2, 12);
  const deep = pkg.space.uniform(3, 3, 4, 12);
  assert.ok(rawLatencySum(profile, deep) >= rawLatencySum(profile, small));
});

test('the memory predictor grows with the subnet and its flat form agrees', () => {
  const mp = profileMemoryPredictor(profile)!;
  assert.ok(mp.flat);
  const lo = mp.memoryMB(pkg.space.min());
  const hi = mp.memoryMB(pkg.space.max());
  assert.ok(Number.isFinite(lo) && hi >= lo);
  assert.equal(profile.memory!.fitSamples.length, 3);
});

test('OFA LUT export round-trips through YAML to the same predictions', async () => {
  using dir = tempDir();
  const tables = profileToLatencyTables(profile, pkg.arch);
  const back = new Map();
  for (const [r, t] of tables) {
    const path = join(dir.path, latencyTableFileName(r));
    await writeFile(path, serializeLatencyTable(t));
    back.set(r, parseLatencyTable(await readFile(path, 'utf8'), r));
  }
  const fromYaml = latencyPredictorFromTables(back, pkg.arch);
  const ours = profileLatencyPredictor(profile);
  for (const cfg of sampleSubnets(pkg, 20, 11)) {
    const x = ours.latencyMs(cfg);
    assert.ok(Math.abs(fromYaml.latencyMs(cfg) - x) <= 1e-9 * Math.max(1, x), `${pkg.space.id(cfg)}`);
  }
  const meta = back.get(12).meta;
  assert.equal(meta._ep, 'cpu');
  assert.equal(meta._threads, 1);
});

test('corrupt, truncated or foreign profiles are rejected with ERR_PROFILE_INVALID', async () => {
  const code = { code: 'ERR_PROFILE_INVALID' };
  assert.throws(() => parseProfileText('{not json'), code);
  assert.throws(() => parseProfile({ format: 'something-else/1' }), code);
  assert.throws(() => parseProfile({ ...profile, format: 'nestswap.profile/2' }), code);
  const short = structuredClone(profile);
  short.latency.model.slot = short.latency.model.slot.slice(1);
  assert.throws(() => parseProfile(short), code);
  const nan = JSON.parse(JSON.stringify(profile)) as Record<string, unknown>;
  (nan.latency as { model: { fixed: unknown[] } }).model.fixed[0] = 'x';
  assert.throws(() => parseProfile(nan), code);
  assert.throws(() => checkProfileFor(profile, { name: 'other', weightsDigest: 'f'.repeat(64) }), code);
  using dir = tempDir();
  const path = join(dir.path, 'p.json');
  await writeFile(path, JSON.stringify(profile).slice(0, 500));
  await assert.rejects(readProfileFile(path), code);
  await assert.rejects(readProfileFile(join(dir.path, 'missing.json')), code);
});

test('profiles are cached: reused when everything matches, redone when threads or the device change', async () => {
  using dir = tempDir();
  const opts = { ...quick, dataDir: dir.path, calibrationSubnets: 3, validationSubnets: 2 };
  const first = await loadOrProfile(pkg, opts);
  assert.equal(first.cached, false);
  const second = await loadOrProfile(pkg, opts);
  assert.equal(second.cached, true);
  assert.equal(second.profile.created, first.profile.created);
  const twoThreads = await loadOrProfile(pkg, { ...opts, threads: 2 });
  assert.equal(twoThreads.cached, false);
  assert.equal(twoThreads.profile.threads, 2);
  assert.notEqual(twoThreads.path, first.path);
  const otherDevice = await loadOrProfile(pkg, { ...opts, device: { fingerprint: 'ffeeddccbbaa99887766554433221100', deviceClass: 'other' } });
  assert.equal(otherDevice.cached, false);
  assert.ok(otherDevice.reasons.some((r) => r.includes('fingerprint')));
  // a corrupt cache file is re-measured, never trusted
  await writeFile(first.path, '{"format":"nestswap.profile/1"');
  const afterCorrupt = await loadOrProfile(pkg, opts);
  assert.equal(afterCorrupt.cached, false);
});

test('a validation that misses its gate measures more whole-subnet passes, up to the limit, and records them', async () => {
  assert.equal(profile.method.subnetPasses !== undefined, true);
  const never = await profileDevice(pkg, { ...quick, validationGate: { mape: 0, within10: 1.01 }, maxSubnetPasses: 2 });
  assert.equal(never.method.subnetPasses, 2);
  const always = await profileDevice(pkg, { ...quick, validationGate: { mape: Infinity, within10: 0 }, maxSubnetPasses: 3 });
  assert.equal(always.method.subnetPasses, 1);
  // the combined passes still give a valid, calibrated profile
  assert.deepEqual(parseProfileText(JSON.stringify(never)), never);
  assert.ok(never.latency.model.calibration.a > 0);
  assert.equal(never.validation.subnets, 3);
});

test('statistics: linear fit and Kendall tau', () => {
  const rng = mulberry32(3);
  const x = Array.from({ length: 20 }, () => rng() * 10);
  const fit = fitLinear(x, x.map((v) => 2 * v + 1));
  assert.ok(Math.abs(fit.a - 2) < 1e-9 && Math.abs(fit.b - 1) < 1e-9);
  // a slow outlier among tiny subnets: plain least squares (a ≈ 2.97, b ≈ -1.10) would predict -0.21 ms
  // at x = 0.3, measured 0.3; in relative error the smallest point keeps its own level
  const steep = fitLinear([0.3, 1, 2], [0.3, 1.0, 5.2]);
  assert.ok(Math.abs(steep.a * 0.3 + steep.b - 0.3) / 0.3 < 0.1, JSON.stringify(steep));
  // relative weights: a 10 % miss on the smallest costs as much as a 10 % miss on the largest
  const spread = fitLinear([0.1, 1, 10, 11], [0.12, 1.0, 10.0, 11.5]);
  assert.ok(Math.abs(spread.a * 0.1 + spread.b - 0.12) / 0.12 < 0.1, JSON.stringify(spread));
  // with fewer than 3 points: the scale with the least squared relative error, through the origin
  const two = fitLinear([1, 2], [1.1, 2.0]);
  assert.equal(two.b, 0);
  assert.ok(Math.abs(two.a - (1.1 / 1.1 ** 2 + 4 / 4) / (1 / 1.1 ** 2 + 4 / 4)) < 1e-12, `${two.a}`);
  // a line fine at the calibration points can still cross zero below them, where the cheapest subnet
  // of the space lies (a ≈ 2.0, b ≈ -0.37: +0.23 ms at x = 0.3 but -0.17 ms at x = 0.1)
  const x3 = [0.3, 1, 2];
  const y3 = [0.25, 1.6, 3.65];
  assert.ok(fitLinear(x3, y3).b < 0, 'without a floor the fitted line is kept');
  const floored = fitLinear(x3, y3, 0.1);
  assert.equal(floored.b, 0);
  assert.ok(floored.a * 0.1 > 0);
  assert.equal(kendallTau([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(kendallTau([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  assert.equal(kendallTau([1], [1]), null);
});

// A simulated machine for the interleaved timer: each model has a steady cost, the machine's speed
// changes with the number of runs done so far (a level shift half-way, a slow burst), and the first
// runs after switching from another model are slower (cold caches).
function simulatedMachine(costs: readonly number[], speedAt: (call: number) => number, cold = [2, 1.4]) {
  let calls = 0;
  let last = -1;
  let sinceSwitch = 0;
  const samplers: Sampler[] = costs.map((c, i) => async () => {
    if (last !== i) sinceSwitch = 0;
    last = i;
    const t = c * speedAt(calls++) * (cold[sinceSwitch] ?? 1);
    sinceSwitch++;
    return t;
  });
  return { samplers, calls: () => calls };
}

test('interleaved timing: level shifts and cold starts do not distort the ratios between models', async () => {
  const costs = [0.1, 0.11, 0.12, 0.13, 0.14, 0.15, 0.2, 0.3]; // ms: sub-millisecond models, warmed 3 runs a visit
  const total = costs.length * (2 + 12 * (3 + 4));
  const shift = (call: number) => (call < total / 2 ? 1 : 1.6) * (call % 97 < 5 ? 3 : 1);
  // models timed one after another with the same runs: the later half reads 60 % slower
  const seq = simulatedMachine(costs, shift);
  const seqMs: number[] = [];
  for (const s of seq.samplers) {
    const xs: number[] = [];
    for (let k = 0; k < 2 + 48 + 12 * 3; k++) xs.push(await s());
    seqMs.push(median(xs.slice(2 + 12 * 3)));
  }
  assert.ok(Math.abs(seqMs[4]! / seqMs[0]! - costs[4]! / costs[0]!) > 0.5, `the sequential baseline does suffer from the shift: ${seqMs.join(' ')}`);
  const sim = simulatedMachine(costs, shift);
  const { timings, roundFactors } = await timeInterleaved(sim.samplers, { rounds: 12, perVisit: 4, warmup: 2, seed: 5 });
  const est = timings.map((t) => t.medianMs);
  for (const [i, c] of costs.entries()) assert.ok(Math.abs(est[i]! / est[0]! - c / costs[0]!) < 1e-9, `model ${i}: ${est[i]! / est[0]!} vs ${c / costs[0]!}`);
  assert.ok(Math.max(...roundFactors) / Math.min(...roundFactors) > 1.4, `round factors track the machine: ${roundFactors.join(' ')}`);
  // without the per-visit warm-up the cold runs are timed
  const sim2 = simulatedMachine(costs, () => 1);
  const cold = await timeInterleaved(sim2.samplers, { rounds: 4, perVisit: 1, warmup: 0, visitWarmup: 0 });
  assert.ok(cold.timings[0]!.medianMs > 0.15);
  const sim3 = simulatedMachine(costs, () => 1);
  const warm = await timeInterleaved(sim3.samplers, { rounds: 4, perVisit: 1, warmup: 0 });
  assert.deepEqual(warm.timings.map((t) => t.medianMs), costs);
  // a model that takes milliseconds a run is warm after one untimed run: no more are spent on it
  const slow = simulatedMachine([5, 6], () => 1, [1.01]);
  await timeInterleaved(slow.samplers, { rounds: 4, perVisit: 2, warmup: 0 });
  assert.equal(slow.calls(), 2 * 4 * (1 + 2));
});
