import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { countMacs } from '../runtime/cost.js';
import { isNestswapError } from '../runtime/errors.js';
import { lookupLatencyMs } from '../runtime/latency-table.js';
import { GraphBuilder } from '../runtime/onnx/graph.js';
import { mulberry32 } from '../runtime/random.js';
import {
  CompiledProblem,
  evaluateFlat,
  evolutionSearch,
  exactSearch,
  flatMemoryPredictor,
  FAST_EVOLUTION,
  LinearPredictor,
  encoderForPredictor,
  onnxAccuracyPredictor,
  paretoSearch,
  staticMemoryModel,
  type Budget,
  type ParetoPoint,
} from '../runtime/search/index.js';
import { ArchEncoder, Space, type SubnetConfig } from '../runtime/space.js';
import { loadOnnxAccuracyPredictor } from '../agent/search-inputs.js';
import { fixture, latency, note10, note10Resolutions, predictorPath, randomLinearPredictor, readJson, w12, w12Space } from './search-fixtures.js';

const space = w12Space();
const onnx = await loadOnnxAccuracyPredictor(predictorPath, space, [note10Resolutions]);
const encoder = onnx.encoder;
const linear = randomLinearPredictor(encoder, 1);
const memoryModel = staticMemoryModel(w12, note10Resolutions);
const memory = flatMemoryPredictor(memoryModel);
const linearProblem = { arch: w12, encoder, predictor: linear, latency };
const minLatency = lookupLatencyMs(note10, w12, space.uniform(3, 3, 2, 160));
const code = (c: string) => (e: unknown) => isNestswapError(e, c as never);
const fast = { ...FAST_EVOLUTION, seed: 1 };

test('the OFA w1.2 predictor reproduces its test vectors within 1e-5 through ArchEncoder', async () => {
  const tv = readJson(fixture('acc_predictor_test_vectors.json')) as { image_size_list: number[]; n_dim: number; vectors: { arch: SubnetConfig; accuracy: number }[] };
  assert.deepEqual([...encoder.imageSizeList], tv.image_size_list);
  assert.equal(encoder.nDim, tv.n_dim);
  const feats = encoder.encodeBatch(tv.vectors.map((v) => space.parse(v.arch)));
  const got = await onnx.predictor.predictBatch(feats, tv.vectors.length);
  tv.vectors.forEach((v, i) => assert.ok(Math.abs(got[i]! - v.accuracy) < 1e-5, `vector ${i}: ${got[i]} vs ${v.accuracy}`));
});

test('the predictor input width 125 selects the latency tables resolutions 160..224', () => {
  assert.deepEqual([...encoder.imageSizeList], [160, 176, 192, 208, 224]);
});

test('evolutionary search is deterministic under a seed', async () => {
  const a = await evolutionSearch(linearProblem, { latencyMs: 25 }, fast);
  const b = await evolutionSearch(linearProblem, { latencyMs: 25 }, fast);
  assert.deepEqual(a.subnet, b.subnet);
  assert.equal(a.predicted.accuracy, b.predicted.accuracy);
  assert.equal(a.evaluations, b.evaluations);
});

test('with the OFA predictor, the returned subnet meets the latency budget by the LUT key sum', async () => {
  for (const budget of [15, 20, 25, 35]) {
    const r = await evolutionSearch({ arch: w12, encoder, predictor: onnx.predictor, latency }, { latencyMs: budget }, fast);
    assert.ok(lookupLatencyMs(note10, w12, r.subnet) <= budget, `${budget} ms: ${lookupLatencyMs(note10, w12, r.subnet)}`);
  }
});

test('latency, memory and MACs budgets together are all met when recomputed independently', async () => {
  const budget = { latencyMs: 22, memoryMB: 24, macs: 300e6 };
  for (const seed of [1, 2, 3]) {
    const r = await evolutionSearch({ ...linearProblem, memory }, budget, { ...fast, seed });
    assert.ok(lookupLatencyMs(note10, w12, r.subnet) <= budget.latencyMs);
    assert.ok(evaluateFlat(memoryModel, r.subnet) <= budget.memoryMB);
    assert.ok(countMacs(w12, r.subnet) <= budget.macs);
  }
});

test('a budget just above the minimum still yields a feasible subnet (bounded repair)', async () => {
  const r = await evolutionSearch(linearProblem, { latencyMs: minLatency * 1.01 }, fast);
  assert.ok(lookupLatencyMs(note10, w12, r.subnet) <= minLatency * 1.01);
});

test('evolutionary search is within 0.001 mean of the exact optimum on an additive objective', async () => {
  const gaps: number[] = [];
  for (const budget of [14, 20, 28])
    for (const seed of [1, 2, 3, 4, 5]) {
      const problem = { ...linearProblem, predictor: randomLinearPredictor(encoder, 100 + seed) };
      const exact = await exactSearch(problem, { latencyMs: budget });
      const evo = await evolutionSearch(problem, { latencyMs: budget }, { ...FAST_EVOLUTION, seed });
      assert.ok(evo.predicted.accuracy <= exact.predicted.accuracy + 1e-6, 'exact is an upper bound');
      gaps.push(exact.predicted.accuracy - evo.predicted.accuracy);
    }
  const mean = gaps.reduce((s, g) => s + g, 0) / gaps.length;
  assert.ok(mean <= 0.001, `mean gap ${mean}`);
});

test('the exact optimiser matches brute force on a small space', async () => {
  const small = { ...w12, space: { ks_list: [3, 5], expand_list: [3, 6], depth_list: [1, 2], image_size_list: [160, 224] }, stages: w12.stages.slice(0, 3) };
  const smallSpace = Space.fromArch(small);
  const enc = new ArchEncoder(smallSpace);
  const pred = randomLinearPredictor(enc, 9);
  const budget = countMacs(small, smallSpace.uniform(5, 3, 2, 160));
  const exact = await exactSearch({ arch: small, encoder: enc, predictor: pred }, { macs: budget });
  // brute force over every subnet
  let best = -Infinity;
  const per = (d: number): [number[], number[]][] => {
    const out: [number[], number[]][] = [];
    const n = 4 ** d;
    for (let x = 0; x < n; x++) {
      const ks: number[] = [];
      const e: number[] = [];
      for (let j = 0; j < d; j++) {
        const c = Math.floor(x / 4 ** j) % 4;
        ks.push([3, 5][c >> 1]!);
        e.push([3, 6][c & 1]!);
      }
      out.push([ks, e]);
    }
    return out;
  };
  const stageChoices = [1, 2].flatMap((d) => per(d).map(([ks, e]) => ({ d, ks: [...ks, 3, 3].slice(0, 2), e: [...e, 3, 3].slice(0, 2) })));
  for (const r of [160, 224])
    for (const a of stageChoices)
      for (const b of stageChoices)
        for (const c of stageChoices) {
          const cfg = { ks: [...a.ks, ...b.ks, ...c.ks], e: [...a.e, ...b.e, ...c.e], d: [a.d, b.d, c.d], image_size: r };
          if (countMacs(small, cfg) > budget) continue;
          best = Math.max(best, pred.predictSync(enc.encode(smallSpace.canonical(cfg)), 1)[0]!);
        }
  assert.ok(Math.abs(exact.predicted.accuracy - best) < 1e-6, `${exact.predicted.accuracy} vs ${best}`);
});

test('an infeasible latency budget is ERR_BUDGET_INFEASIBLE with the smallest achievable latency', async () => {
  await assert.rejects(
    evolutionSearch(linearProblem, { latencyMs: minLatency * 0.99 }, fast),
    (e: unknown) => isNestswapError(e, 'ERR_BUDGET_INFEASIBLE') && Math.abs((e.details!.minimum as number) - minLatency) < 1e-9 && e.message.includes(String(Math.round(minLatency * 1e4) / 1e4)),
  );
});

test('an infeasible MACs budget is ERR_BUDGET_INFEASIBLE for the exact optimiser too', async () => {
  await assert.rejects(exactSearch(linearProblem, { macs: 1e6 }), code('ERR_BUDGET_INFEASIBLE'));
});

test('zero, negative, NaN and infinite budgets are ERR_BUDGET_INVALID', async () => {
  for (const v of [0, -5, NaN, Infinity, -Infinity])
    await assert.rejects(evolutionSearch(linearProblem, { latencyMs: v }, fast), code('ERR_BUDGET_INVALID'), `latencyMs ${v}`);
});

test('a budget with a non-number value is ERR_BUDGET_INVALID', async () => {
  await assert.rejects(evolutionSearch(linearProblem, { latencyMs: '20' } as unknown as Budget, fast), code('ERR_BUDGET_INVALID'));
});

test('an absurdly large budget returns the unconstrained best subnet', async () => {
  const exact = await exactSearch(linearProblem, { latencyMs: 1e12 });
  const unconstrained = await exactSearch({ ...linearProblem }, { latencyMs: lookupLatencyMs(note10, w12, space.uniform(7, 6, 4, 224)) });
  assert.deepEqual(exact.subnet, unconstrained.subnet);
});

test('NSGA-II returns a non-dominated front that meets the budget', async () => {
  const r = await paretoSearch({ ...linearProblem, memory }, { latencyMs: 30 }, { seed: 1, generations: 40 });
  assert.ok(r.front.length > 1);
  const dominated = (a: ParetoPoint, b: ParetoPoint) =>
    b.predicted.accuracy >= a.predicted.accuracy &&
    b.predicted.latencyMs! <= a.predicted.latencyMs! &&
    b.predicted.memoryMB! <= a.predicted.memoryMB! &&
    (b.predicted.accuracy > a.predicted.accuracy || b.predicted.latencyMs! < a.predicted.latencyMs! || b.predicted.memoryMB! < a.predicted.memoryMB!);
  for (const a of r.front) {
    assert.ok(lookupLatencyMs(note10, w12, a.subnet) <= 30);
    for (const b of r.front) assert.ok(!dominated(a, b));
  }
});

test('NSGA-II is deterministic under a seed', async () => {
  const a = await paretoSearch(linearProblem, { latencyMs: 30 }, { seed: 4, generations: 10 });
  const b = await paretoSearch(linearProblem, { latencyMs: 30 }, { seed: 4, generations: 10 });
  assert.deepEqual(a.front, b.front);
});

test('a file that is not ONNX is rejected as ERR_PREDICTOR_INVALID', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nestswap-pred-'));
  try {
    await writeFile(join(dir, 'p.onnx'), 'not a model');
    await assert.rejects(loadOnnxAccuracyPredictor(join(dir, 'p.onnx'), space, [note10Resolutions]), code('ERR_PREDICTOR_INVALID'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A real ONNX linear model: x [N, nIn] · W [nIn, nOut]. */
async function linearOnnx(nIn: number, nOut: number): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('linear');
  const x = g.reserve('x');
  const w = g.floatTensor('w', new Float32Array(nIn * nOut).fill(0.001), [nIn, nOut]);
  g.op('MatMul', [x, w], {}, 'accuracy');
  return ort.InferenceSession.create(g.build([{ name: x, dims: ['N', nIn] }], [{ name: 'accuracy', dims: ['N', nOut] }]));
}

test('an ONNX predictor with the wrong input width is rejected as ERR_PREDICTOR_INVALID', async () => {
  await assert.rejects(onnxAccuracyPredictor(await linearOnnx(10, 1), encoder.nDim, ort.Tensor), code('ERR_PREDICTOR_INVALID'));
});

test('an ONNX predictor with two outputs per row is rejected as ERR_PREDICTOR_INVALID', async () => {
  await assert.rejects(onnxAccuracyPredictor(await linearOnnx(encoder.nDim, 2), encoder.nDim, ort.Tensor), code('ERR_PREDICTOR_INVALID'));
});

test('an ONNX predictor whose width matches no resolution list is rejected as ERR_PREDICTOR_INVALID', async () => {
  assert.throws(() => encoderForPredictor(space, 133, [note10Resolutions]), code('ERR_PREDICTOR_INVALID'));
});

test('a linear ONNX predictor scores like the same LinearPredictor', async () => {
  const p = await onnxAccuracyPredictor(await linearOnnx(encoder.nDim, 1), encoder.nDim, ort.Tensor);
  const lin = new LinearPredictor(new Float64Array(encoder.nDim).fill(0.001), 0);
  const rng = mulberry32(5);
  const feats = encoder.encodeBatch(Array.from({ length: 8 }, () => space.parse({ ...space.sample(rng), image_size: 192 })));
  const a = await p.predictBatch(feats, 8);
  const b = await lin.predictBatch(feats, 8);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-6));
});

/** Runs `nestswap search` in a child process (bin/nestswap.js: errors as the CLI reports them). */
function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const bin = fileURLToPath(new URL('../../bin/nestswap.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, 'search', ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const cliBase = ['--space', 'ofa-mbv3-w1.0', '--width-mult', '1.2', '--accuracy-predictor', predictorPath, '--latency-table', fixture('note10')];

test('the search command prints a JSON result within the latency budget', () => {
  const r = cli([...cliBase, '--latency-ms', '22', '--seed', '3', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { subnet: SubnetConfig; predicted: { latencyMs: number } };
  assert.ok(lookupLatencyMs(note10, w12, out.subnet) <= 22);
});

test('the search command exits 1 with the code on stderr for a zero budget (2 is for ERR_USAGE only)', () => {
  const r = cli([...cliBase, '--latency-ms', '0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /ERR_BUDGET_INVALID/);
});

test('the search command exits 1 with ERR_BUDGET_INFEASIBLE for an impossible budget', () => {
  const r = cli([...cliBase, '--latency-ms', '5']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /ERR_BUDGET_INFEASIBLE/);
});

test("the compiled search encodes genomes exactly as ArchEncoder encodes their configs", () => {
  const cp = new CompiledProblem(linearProblem, {});
  const rng = mulberry32(8);
  const a = new Float32Array(encoder.nDim);
  for (let i = 0; i < 50; i++) {
    const g = cp.random(rng);
    cp.encodeInto(g, a, 0);
    assert.deepEqual(a, encoder.encode(cp.toConfig(g)));
  }
});

