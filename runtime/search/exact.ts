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

/**
 * Frontier of A ⊕ B (every sum), capped, without sorting all sums: B is reduced to its own frontier,
 * then the sums are drawn in cost order by a heap over the smaller side (both sides are sorted by
 * cost), keeping a point only when its value beats every cheaper one and `keep` accepts it.
 */
function merge(a: Frontier, bCost: ArrayLike<number>, bValue: ArrayLike<number>, cap: number, keep?: (cost: number, value: number) => boolean): Frontier {
  const nb0 = bCost.length;
  const bf = prune(Float64Array.from(bCost), Float64Array.from(bValue), new Int32Array(nb0), Int32Array.from({ length: nb0 }, (_, j) => j), nb0, Infinity);
  const na = a.cost.length;
  const nb = bf.cost.length;
  const aOuter = na <= nb; // heap over the smaller side
  const nList = aOuter ? na : nb;
  const listCost = aOuter ? a.cost : bf.cost;
  const listValue = aOuter ? a.value : bf.value;
  const runCost = aOuter ? bf.cost : a.cost;
  const runValue = aOuter ? bf.value : a.value;
  const nRun = aOuter ? nb : na;
  const ptr = new Int32Array(nList);
  // binary min-heap of list indices, keyed by listCost[i] + runCost[ptr[i]]
  const heap = Int32Array.from({ length: nList }, (_, i) => i);
  let size = nList;
  const key = (i: number) => listCost[i]! + runCost[ptr[i]!]!;
  const down = (at: number) => {
    for (;;) {
      const l = 2 * at + 1;
      if (l >= size) return;
      const r = l + 1;
      const m = r < size && key(heap[r]!) < key(heap[l]!) ? r : l;
      if (key(heap[m]!) >= key(heap[at]!)) return;
      const t = heap[m]!;
      heap[m] = heap[at]!;
      heap[at] = t;
      at = m;
    }
  };
  for (let i = (size >> 1) - 1; i >= 0; i--) down(i);
  const cost: number[] = [];
  const value: number[] = [];
  const from: number[] = [];
  const pick: number[] = [];
  let best = -Infinity;
  while (size > 0) {
    const i = heap[0]!;
    const j = ptr[i]!;
    const c = listCost[i]! + runCost[j]!;
    if (c > cap) break;
    const v = listValue[i]! + runValue[j]!;
    if (v > best && (!keep || keep(c, v))) {
      const n = cost.length;
      if (n > 0 && cost[n - 1] === c) {
        // same cost, better value: replaces the last point
        cost.pop();
        value.pop();
        from.pop();
        pick.pop();
      }
      best = v;
      cost.push(c);
      value.push(v);
      from.push(aOuter ? i : j);
      pick.push(bf.pick[aOuter ? j : i]!);
    }
    if (j + 1 < nRun) ptr[i] = j + 1;
    else heap[0] = heap[--size]!;
    down(0);
  }
  return { cost: Float64Array.from(cost), value: Float64Array.from(value), from: Int32Array.from(from), pick: Int32Array.from(pick) };
}

const single = (): Frontier => ({ cost: new Float64Array(1), value: new Float64Array(1), from: new Int32Array(1), pick: new Int32Array(1) });

/**
 * The LP relaxation of choosing one point per frontier with Σ cost <= cap (a multiple-choice
 * knapsack): from every frontier's cheapest point, hull segments are taken by falling slope. `upper`
 * takes the last one fractionally (a bound); `lower` stops before it (a point per frontier exists
 * with that value). Both are -Infinity when even the cheapest points exceed the cap.
 */
export class LpBound {
  private readonly cost0: number;
  private readonly value0: number;
  /** cumulative cost and value after taking the first k segments */
  private readonly cumC: Float64Array;
  private readonly cumV: Float64Array;

  constructor(frontiers: readonly Frontier[]) {
    let cost = 0;
    let value = 0;
    const segs: { dc: number; dv: number }[] = [];
    for (const f of frontiers) {
      cost += f.cost[0]!;
      value += f.value[0]!;
      // upper concave hull from the cheapest point (costs and values strictly increase along a frontier)
      const hull: number[] = [0];
      for (let i = 1; i < f.cost.length; i++) {
        while (hull.length >= 2) {
          const a = hull[hull.length - 2]!;
          const b = hull[hull.length - 1]!;
          if ((f.value[b]! - f.value[a]!) * (f.cost[i]! - f.cost[a]!) <= (f.value[i]! - f.value[a]!) * (f.cost[b]! - f.cost[a]!)) hull.pop();
          else break;
        }
        hull.push(i);
      }
      for (let h = 1; h < hull.length; h++) segs.push({ dc: f.cost[hull[h]!]! - f.cost[hull[h - 1]!]!, dv: f.value[hull[h]!]! - f.value[hull[h - 1]!]! });
    }
    segs.sort((x, y) => y.dv / y.dc - x.dv / x.dc);
    this.cost0 = cost;
    this.value0 = value;
    this.cumC = new Float64Array(segs.length + 1);
    this.cumV = new Float64Array(segs.length + 1);
    segs.forEach((sg, k) => {
      this.cumC[k + 1] = this.cumC[k]! + sg.dc;
      this.cumV[k + 1] = this.cumV[k]! + sg.dv;
    });
  }

  /** number of whole segments that fit in `rest` */
  private fit(rest: number): number {
    let lo = 0;
    let hi = this.cumC.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.cumC[mid]! <= rest) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  upper(cap: number): number {
    const rest = cap - this.cost0;
    if (rest < 0) return -Infinity;
    const k = this.fit(rest);
    let v = this.value0 + this.cumV[k]!;
    if (k + 1 < this.cumC.length) v += ((this.cumV[k + 1]! - this.cumV[k]!) * (rest - this.cumC[k]!)) / (this.cumC[k + 1]! - this.cumC[k]!);
    return v;
  }

  lower(cap: number): number {
    const rest = cap - this.cost0;
    return rest < 0 ? -Infinity : this.value0 + this.cumV[this.fit(rest)]!;
  }
}

export interface ExactProblem extends SearchProblem {
  predictor: LinearPredictor;
}

/** True when the budget has exactly one limit and that metric is an additive table (what the exact optimiser takes). */
export function exactApplies(problem: SearchProblem, budget: Budget): boolean {
  const limited = Object.entries(budget).filter(([, v]) => v !== undefined);
  if (limited.length !== 1) return false;
  const name = limited[0]![0];
  if (name === 'macs') return true;
  if (name === 'latencyMs') return problem.latency?.flat !== undefined;
  if (name === 'memoryMB') return problem.memory?.flat !== undefined;
  return false;
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

  // Per resolution: the stage frontiers and an LP-relaxation bound (greedy over their concave hulls);
  // resolutions are then solved best bound first and skipped once the bound cannot beat the best.
  const perRes = Array.from({ length: cp.nR }, (_, ri) => {
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
    // suffix[st]: the relaxation over stages st.. (suffix[nStage] is empty)
    const suffix = Array.from({ length: cp.nStage + 1 }, (_, st) => new LpBound(stages.slice(st).map((x) => x.union)));
    return { ri, cap, base, stages, suffix, bound: base + suffix[0]!.upper(cap) };
  }).sort((a, b) => b.bound - a.bound || a.ri - b.ri);
  // an achievable value (the relaxation rounded down) prunes partial choices that cannot reach it
  
  const floor = Math.max(...perRes.map((x) => x.base + x.suffix[0]!.lower(x.cap)));
  const slack = 1e-9;

  for (const { ri, cap, base, stages, suffix, bound } of perRes) {
    if (bound === -Infinity || bound < floor - slack || (best && bound <= best.value)) continue;
    // minimum cost still to come after each stage, for budget pruning
    const restMin = new Float64Array(cp.nStage + 1);
    for (let st = cp.nStage - 1; st >= 0; st--) restMin[st] = restMin[st + 1]! + stages[st]!.union.cost[0]!;
    if (restMin[0]! > cap) continue;
    const levels: Frontier[] = [single()];
    for (let st = 0; st < cp.nStage; st++) {
      const rest = suffix[st + 1]!;
      const need = Math.max(floor, best?.value ?? -Infinity) - base - slack;
      levels.push(merge(levels[st]!, stages[st]!.union.cost, stages[st]!.union.value, cap - restMin[st + 1]!, (c, v) => v + rest.upper(cap - c) >= need));
    }
    
    const last = levels[cp.nStage]!;
    if (last.cost.length === 0) continue;
    const top = last.cost.length - 1; // highest value within the cap
    const value = base + last.value[top]!;
    if (best && (value < best.value || (value === best.value && ri > best.genome[0]!))) continue;
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
