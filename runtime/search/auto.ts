/**
 * The default search: exact when the objective allows it, else the evolutionary search followed by
 * a sweep of the resolutions (`sweepSearch`).
 *
 * An accuracy predictor that is linear in the one-hot encoding (whatever its ONNX graph looks like)
 * is found by probing: one batch of the zero row and every basis row gives the bias and the weights;
 * random valid subnets then check that the reconstruction agrees with the predictor. Such a predictor
 * with one additive limit goes to the exact optimiser (as a LinearPredictor does); the answer's
 * accuracy is the predictor's own.
 */
import { mulberry32 } from '../random.js';
import type { ArchEncoder } from '../space.js';
import { exactApplies, exactSearch } from './exact.js';
import { sweepSearch, type SweepOptions } from './islands.js';
import { LinearPredictor, type AccuracyPredictor } from './predictors.js';
import { validateBudget, type Budget, type SearchProblem, type SearchResult } from './problem.js';

export interface LinearProbe {
  /** the reconstruction, when the predictor is linear within `tolerance` on every checked subnet */
  linear: LinearPredictor | undefined;
  /** largest |predictor − reconstruction| over the checked subnets */
  maxError: number;
  /** predictor rows spent (basis + checks) */
  rows: number;
}

export interface ProbeOptions {
  /** random valid subnets the reconstruction is checked on */
  samples?: number;
  /** absolute accuracy tolerance (float32 outputs summed over ~40 features round to ~1e-6) */
  tolerance?: number;
  seed?: number;
}

/** Default tolerance: 5e-5 accuracy (0.005 points), far below any search gap that matters and far above float32 rounding. */
export const LINEAR_TOLERANCE = 5e-5;

export async function probeLinear(predictor: AccuracyPredictor, encoder: ArchEncoder, options: ProbeOptions = {}): Promise<LinearProbe> {
  if (predictor instanceof LinearPredictor) return { linear: predictor, maxError: 0, rows: 0 };
  const n = encoder.nDim;
  const samples = options.samples ?? 64;
  const tol = options.tolerance ?? LINEAR_TOLERANCE;
  // row 0: zeros (the bias); row 1 + j: basis vector j
  const basis = new Float32Array((n + 1) * n);
  for (let j = 0; j < n; j++) basis[(1 + j) * n + j] = 1;
  const out = await predictor.predictBatch(basis, n + 1);
  const bias = out[0]!;
  const w = Float64Array.from({ length: n }, (_, j) => out[1 + j]! - bias);
  const linear = new LinearPredictor(w, bias);
  if (![bias, ...w].every(Number.isFinite)) return { linear: undefined, maxError: Infinity, rows: n + 1 };
  const rng = mulberry32(options.seed ?? 7);
  const { space } = encoder;
  const configs = Array.from({ length: samples }, (_, i) => {
    const r = encoder.imageSizeList[i % encoder.imageSizeList.length]!;
    return space.parse({ ...space.sample(rng), image_size: r });
  });
  const feats = encoder.encodeBatch(configs);
  const got = await predictor.predictBatch(feats, samples);
  const want = linear.predictSync(feats, samples);
  let maxError = 0;
  for (let i = 0; i < samples; i++) maxError = Math.max(maxError, Math.abs(got[i]! - want[i]!));
  return { linear: maxError <= tol ? linear : undefined, maxError, rows: n + 1 + samples };
}

export type SearchMethod = 'exact' | 'sweep';

export interface AutoResult extends SearchResult {
  /** which search answered */
  method: SearchMethod;
}

export interface AutoOptions extends SweepOptions {
  probe?: ProbeOptions;
}

// probing costs one predictor batch of n_dim + 1 rows plus the checks: once per predictor and encoding
const probes = new WeakMap<AccuracyPredictor, Map<ArchEncoder, Promise<LinearProbe>>>();

function cachedProbe(predictor: AccuracyPredictor, encoder: ArchEncoder, options?: ProbeOptions): Promise<LinearProbe> {
  let perEncoder = probes.get(predictor);
  if (!perEncoder) probes.set(predictor, (perEncoder = new Map()));
  let p = perEncoder.get(encoder);
  if (!p) {
    p = probeLinear(predictor, encoder, options);
    perEncoder.set(encoder, p);
    // a failed probe (a predictor that throws) is not kept
    p.catch(() => perEncoder.delete(encoder));
  }
  return p;
}

/** The default method: exact for a linear predictor and one additive limit, the resolution sweep otherwise. */
export async function autoSearch(problem: SearchProblem, budget: Budget, options: AutoOptions = {}): Promise<AutoResult> {
  const t0 = performance.now();
  validateBudget(budget);
  if (exactApplies(problem, budget)) {
    const { linear } = await cachedProbe(problem.predictor, problem.encoder, options.probe);
    if (linear) {
      const r = await exactSearch({ ...problem, predictor: linear }, budget);
      const [acc] = await problem.predictor.predictBatch(problem.encoder.encode(r.subnet), 1);
      return { ...r, predicted: { ...r.predicted, accuracy: acc! }, evaluations: r.evaluations + 1, searchMs: performance.now() - t0, method: 'exact' };
    }
  }
  const { probe: _probe, ...sweep } = options;
  const r = await sweepSearch(problem, budget, sweep);
  return { ...r, searchMs: performance.now() - t0, method: 'sweep' };
}
