/**
 * Exact optimiser for additive objectives: a linear accuracy predictor over the one-hot encoding
 * and one additive (flat) cost limit. Dynamic programming over the budget with exact breakpoints:
 * per slot, per stage (depth = active prefix) and over stages it keeps only the Pareto frontier of
 * (cost, accuracy), pruned by the budget, so the optimum is exact (no discretisation error);
 * resolutions are enumerated.
 */
import { NestswapError } from '../errors.js';
import { CompiledProblem, type Budget, type Genome, type Metric, type SearchProblem, type SearchResult } from './problem.js';
import { LinearPredictor } from './predictors.js';

/** A frontier: points sorted by cost with strictly increasing value; `from`/`pick` rebuild the choice. */
interface Frontier {
  cost: Float64Array;
  value: Float64Array;
  /** index into the previous frontier */
  from: Int32Array;
  /** index of the choice added at this level */
  pick: Int32Array;
}

function prune(cost: Float64Array, value: Float64Array, from: Int32Array, pick: Int32Array, n: number, cap: number): Frontier {
  const order = Array.from({ length: n }, (_, i) => i)
    .filter((i) => cost[i]! <= cap)
    .sort((a, b) => cost[a]! - cost[b]! || value[b]! - value[a]! || a - b);
  const keep: number[] = [];
  let best = -Infinity;
  for (const i of order)
    if (value[i]! > best) {
      best = value[i]!;
      keep.push(i);
    }
  return {
    cost: Float64Array.from(keep, (i) => cost[i]!),
    value: Float64Array.from(keep, (i) => value[i]!),
    from: Int32Array.from(keep, (i) => from[i]!),
    pick: Int32Array.from(keep, (i) => pick[i]!),
  };
}

/** Frontier of A ⊕ B (every sum), capped. */
function merge(a: Frontier, bCost: ArrayLike<number>, bValue: ArrayLike<number>, cap: number): Frontier {
  const n = a.cost.length * bCost.length;
  const cost = new Float64Array(n);
  const value = new Float64Array(n);
  const from = new Int32Array(n);
  const pick = new Int32Array(n);
  let x = 0;
  for (let i = 0; i < a.cost.length; i++)
    for (let j = 0; j < bCost.length; j++, x++) {
      cost[x] = a.cost[i]! + bCost[j]!;
      value[x] = a.value[i]! + bValue[j]!;
      from[x] = i;
      pick[x] = j;
    }
  return prune(cost, value, from, pick, n, cap);
}

const single = (): Frontier => ({ cost: new Float64Array(1), value: new Float64Array(1), from: new Int32Array(1), pick: new Int32Array(1) });

export interface ExactProblem extends SearchProblem {
  predictor: LinearPredictor;
}

export async function exactSearch(problem: ExactProblem, budget: Budget): Promise<SearchResult> {
  const t0 = performance.now();
  if (!(problem.predictor instanceof LinearPredictor))
    throw new NestswapError('ERR_PREDICTOR_INVALID', 'The exact optimiser needs a LinearPredictor (an additive accuracy objective).');
  const cp = new CompiledProblem(problem, budget);
  const limited = cp.metrics.filter((m) => m.limit !== undefined);
  if (limited.length !== 1 || !limited[0]!.slot)
    throw new NestswapError('ERR_BUDGET_INVALID', `The exact optimiser takes exactly one additive limit (got ${limited.map((m) => m.name).join(', ') || 'none'}).`);
  const metric: Metric = limited[0]!;
  cp.feasibleAnchor();
  const { encoder } = problem;
  const w = problem.predictor.weights;
  const s = cp.space;
  const md = cp.maxDepth;
  if (!cp.space.evenStages) throw new NestswapError('ERR_BUDGET_INVALID', 'The exact optimiser needs every stage to hold the largest depth; use the evolutionary search for this space.');
  let best: { value: number; genome: Genome } | undefined;

  for (let ri = 0; ri < cp.nR; ri++) {
    // a·(fixed + S) + b <= limit  ⇔  S <= (limit − b)/a − fixed
    const cap = (metric.limit! - metric.b) / metric.a - metric.fixed![ri]!;
    const base = problem.predictor.bias + w[encoder.rIndex(s.image_size_list[ri]!)]!;
    // per slot: every (k, e) choice; index = ki * nE + ei
    const slotCost = (i: number) => Float64Array.from({ length: cp.nK * cp.nE }, (_, c) => metric.slot![cp.slotIndex(ri, i, Math.floor(c / cp.nE), c % cp.nE)]!);
    const slotValue = (i: number) =>
      Float64Array.from({ length: cp.nK * cp.nE }, (_, c) => w[encoder.kIndex(i, s.ks_list[Math.floor(c / cp.nE)]!)]! + w[encoder.eIndex(i, s.expand_list[c % cp.nE]!)]!);
    // per stage: frontier of each active prefix, then the union over allowed depths
    const stages = Array.from({ length: cp.nStage }, (_, st) => {
      const prefixes: Frontier[] = [single()];
      for (let j = 0; j < md; j++) prefixes.push(merge(prefixes[j]!, slotCost(st * md + j), slotValue(st * md + j), Infinity));
      const cost: number[] = [];
      const value: number[] = [];
      const from: number[] = [];
      const pick: number[] = [];
      s.depth_list.forEach((d, di) =>
        prefixes[d]!.cost.forEach((c, p) => {
          cost.push(c);
          value.push(prefixes[d]!.value[p]!);
          from.push(p);
          pick.push(di);
        }),
      );
      return { prefixes, union: prune(Float64Array.from(cost), Float64Array.from(value), Int32Array.from(from), Int32Array.from(pick), cost.length, Infinity) };
    });
    // minimum cost still to come after each stage, for budget pruning
    const restMin = new Float64Array(cp.nStage + 1);
    for (let st = cp.nStage - 1; st >= 0; st--) restMin[st] = restMin[st + 1]! + stages[st]!.union.cost[0]!;
    if (restMin[0]! > cap) continue;
    const levels: Frontier[] = [single()];
    for (let st = 0; st < cp.nStage; st++) levels.push(merge(levels[st]!, stages[st]!.union.cost, stages[st]!.union.value, cap - restMin[st + 1]!));
    const last = levels[cp.nStage]!;
    if (last.cost.length === 0) continue;
    const top = last.cost.length - 1; // highest value within the cap
    const value = base + last.value[top]!;
    if (best && value <= best.value) continue;
    // rebuild the genome
    const g = new Uint8Array(cp.length);
    g[0] = ri;
    let idx = top;
    for (let st = cp.nStage; st >= 1; st--) {
      const lv = levels[st]!;
      const stageIdx = lv.pick[idx]!;
      idx = lv.from[idx]!;
      const { union, prefixes } = stages[st - 1]!;
      const di = union.pick[stageIdx]!;
      g[1 + st - 1] = di;
      let p = union.from[stageIdx]!;
      for (let j = s.depth_list[di]! - 1; j >= 0; j--) {
        const f = prefixes[j + 1]!;
        const c = f.pick[p]!;
        const i = (st - 1) * md + j;
        g[1 + cp.nStage + i] = Math.floor(c / cp.nE);
        g[1 + cp.nStage + cp.nSlots + i] = c % cp.nE;
        p = f.from[p]!;
      }
    }
    best = { value, genome: g };
  }
  if (!best) throw new NestswapError('ERR_BUDGET_INFEASIBLE', `No subnet meets ${metric.name} <= ${metric.limit}.`);
  const [acc] = await cp.score([best.genome]);
  return { ...cp.describe(best.genome, acc!), evaluations: cp.evaluations, searchMs: performance.now() - t0 };
}
