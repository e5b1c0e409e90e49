import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isNestswapError } from '../runtime/errors.js';
import { lookupLatencyMs } from '../runtime/latency-table.js';
import {
  autoSearch,
  evaluateFlat,
  evolutionSearch,
  exactSearch,
  FAST_EVOLUTION,
  flatMemoryPredictor,
  islandSearch,
  LINEAR_TOLERANCE,
  probeLinear,
  staticMemoryModel,
  sweepSearch,
  type SearchProblem,
} from '../runtime/search/index.js';
import { loadOnnxAccuracyPredictor } from '../agent/search-inputs.js';
import { gapCases, latency, linearOnnxPredictor, note10, note10Resolutions, predictorPath, w12, w12Space } from './search-fixtures.js';

const cases = gapCases([1]);
const mlp = await loadOnnxAccuracyPredictor(predictorPath, w12Space(), [note10Resolutions]);
const mlpProblem: SearchProblem = { arch: w12, encoder: mlp.encoder, predictor: mlp.predictor, latency };
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Gap to the exact optimum (of the float64 linear predictor) for every case and budget. */
async function gaps(run: (p: SearchProblem, budgetMs: number) => Promise<{ predicted: { accuracy: number; latencyMs: number | null } }>): Promise<number[]> {
  const out: number[] = [];
  for (const c of cases) {
    const onnx = await linearOnnxPredictor(c.linear);
    for (const b of c.budgets) {
      const exact = await exactSearch({ arch: c.arch, encoder: c.encoder, predictor: c.linear, latency: c.latency }, { latencyMs: b });
      const r = await run({ arch: c.arch, encoder: c.encoder, predictor: onnx, latency: c.latency }, b);
      assert.ok(r.predicted.latencyMs! <= b + 1e-9, `${c.name} ${b} ms: result over budget`);
      out.push(exact.predicted.accuracy - r.predicted.accuracy);
    }
  }
  return out;
}

test('probeLinear recovers a linear ONNX predictor within float32 rounding', async () => {
  const c = cases[0]!;
  const probe = await probeLinear(await linearOnnxPredictor(c.linear), c.encoder);
  assert.ok(probe.linear, `max error ${probe.maxError}`);
  assert.ok(probe.maxError <= LINEAR_TOLERANCE);
  assert.ok(Math.abs(probe.linear.bias - c.linear.bias) < 1e-6);
  c.linear.weights.forEach((w, j) => assert.ok(Math.abs(probe.linear!.weights[j]! - w) < 1e-6, `weight ${j}`));
});

test("probeLinear rejects OFA's MLP predictor", async () => {
  const probe = await probeLinear(mlp.predictor, mlp.encoder);
  assert.equal(probe.linear, undefined);
  assert.ok(probe.maxError > LINEAR_TOLERANCE, `max error ${probe.maxError}`);
});

test('the default search answers a linear ONNX predictor exactly, at every budget and resolution list', async () => {
  const methods: string[] = [];
  const g = await gaps(async (p, b) => {
    const r = await autoSearch(p, { latencyMs: b }, { seed: 1 });
    methods.push(r.method);
    return r;
  });
  assert.deepEqual([...new Set(methods)], ['exact']);
  assert.ok(Math.max(...g) <= 2 * LINEAR_TOLERANCE, `worst gap ${Math.max(...g)}`);
});

test('the resolution sweep (no exact shortcut) stays within 0.0005 mean and 0.002 worst of the optimum', async () => {
  const g = await gaps((p, b) => sweepSearch(p, { latencyMs: b }, { seed: 2 }));
  assert.ok(mean(g) <= 0.0005, `mean gap ${mean(g)}`);
  assert.ok(Math.max(...g) <= 0.002, `worst gap ${Math.max(...g)}`);
});

test('the island search returns feasible subnets within 0.001 mean of the optimum', async () => {
  const g = await gaps((p, b) => islandSearch(p, { latencyMs: b }, { seed: 3 }));
  assert.ok(mean(g) <= 0.001, `mean gap ${mean(g)}`);
});

test("at the tightest budget the default search answers at the optimum's resolution", async () => {
  // the 8% budget's optimum is at a low resolution in every case: the answer must be there too
  for (const c of cases) {
    const b = c.budgets[0]!;
    const exact = await exactSearch({ arch: c.arch, encoder: c.encoder, predictor: c.linear, latency: c.latency }, { latencyMs: b });
    const r = await autoSearch({ arch: c.arch, encoder: c.encoder, predictor: await linearOnnxPredictor(c.linear), latency: c.latency }, { latencyMs: b }, { seed: 4 });
    assert.equal(r.subnet.image_size, exact.subnet.image_size, c.name);
  }
});

test("on OFA's MLP the default search sweeps, is never below the evolutionary search of the same seed, and meets the budget", async () => {
  for (const b of [15, 29.97]) {
    const fast = await evolutionSearch(mlpProblem, { latencyMs: b }, { ...FAST_EVOLUTION, seed: 5 });
    const r = await autoSearch(mlpProblem, { latencyMs: b }, { seed: 5 });
    assert.equal(r.method, 'sweep');
    assert.ok(r.predicted.accuracy >= fast.predicted.accuracy, `${b} ms: ${r.predicted.accuracy} < ${fast.predicted.accuracy}`);
    assert.ok(lookupLatencyMs(note10, w12, r.subnet) <= b);
  }
});

test('two limits (latency and memory) are not exact-solvable: the sweep answers and meets both', async () => {
  const c = cases[2]!;
  const memModel = staticMemoryModel(w12, note10Resolutions);
  const p = { arch: c.arch, encoder: c.encoder, predictor: await linearOnnxPredictor(c.linear), latency: c.latency, memory: flatMemoryPredictor(memModel) };
  const budget = { latencyMs: c.budgets[1]!, memoryMB: 26 };
  const r = await autoSearch(p, budget, { seed: 6 });
  assert.equal(r.method, 'sweep');
  assert.ok(r.predicted.latencyMs! <= budget.latencyMs);
  assert.ok(evaluateFlat(memModel, r.subnet) <= budget.memoryMB);
});

test('the exact optimum with pruning equals the best of the per-resolution optima', async () => {
  for (const c of cases) {
    const p = { arch: c.arch, encoder: c.encoder, predictor: c.linear, latency: c.latency };
    const b = c.budgets[1]!;
    const whole = await exactSearch(p, { latencyMs: b });
    let best = -Infinity;
    for (const r of c.encoder.imageSizeList) {
      try {
        best = Math.max(best, (await exactSearch({ ...p, resolutions: [r] }, { latencyMs: b })).predicted.accuracy);
      } catch (e) {
        if (!isNestswapError(e, 'ERR_BUDGET_INFEASIBLE')) throw e;
      }
    }
    assert.ok(Math.abs(whole.predicted.accuracy - best) < 1e-6, `${c.name}: ${whole.predicted.accuracy} vs ${best}`);
  }
});

test('the default search keeps the budget errors: infeasible and invalid budgets', async () => {
  const c = cases[0]!;
  const p = { arch: c.arch, encoder: c.encoder, predictor: await linearOnnxPredictor(c.linear), latency: c.latency };
  await assert.rejects(autoSearch(p, { latencyMs: 0.5 }), (e: unknown) => isNestswapError(e, 'ERR_BUDGET_INFEASIBLE'));
  await assert.rejects(autoSearch(p, { latencyMs: -1 }), (e: unknown) => isNestswapError(e, 'ERR_BUDGET_INVALID'));
  await assert.rejects(autoSearch(mlpProblem, { latencyMs: 5 }), (e: unknown) => isNestswapError(e, 'ERR_BUDGET_INFEASIBLE'));
});
