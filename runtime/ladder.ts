/**
 * The Pareto ladder: search-free switching between subnets. For one device profile and accuracy
 * predictor, K rungs on the Pareto front of predicted accuracy against predicted latency, sorted by
 * latency (accuracy rises with it), each with its predicted memory. A budget maps to a rung by binary
 * search (microseconds); no search runs on a decision. Built once, in the background, by the existing
 * searches (NSGA-II for the front, the default search at evenly spaced budgets to pull it up), and
 * rebuilt when its key (profile, predictor, slowdown class) changes. Platform-neutral.
 */
import { NestswapError } from './errors.js';
import { autoSearch, paretoSearch, type Budget, type SearchProblem } from './search/index.js';
import type { Space, SubnetConfig } from './space.js';

export interface Rung {
  subnet: SubnetConfig;
  id: string;
  latencyMs: number;
  accuracy: number;
  memoryMB: number | null;
}

/** What a ladder was built for: a change in any part makes it stale. */
export interface LadderKey {
  /** digest of the device profile (latency / memory predictors) */
  profile: string;
  /** digest of the accuracy predictor */
  predictor: string;
  /** the live slowdown in half-octaves (`slowdownClass`); the rungs are densest around user budget / slowdown */
  slowdownClass: number;
}

export const sameKey = (a: LadderKey, b: LadderKey): boolean => a.profile === b.profile && a.predictor === b.predictor && a.slowdownClass === b.slowdownClass;

/** Half-octaves of slowdown: 1 → 0, 1.41 → 0.5, 2 → 1, 4 → 2. */
export function slowdownClass(slowdown: number): number {
  return Math.round(Math.log2(Math.max(1, Number.isFinite(slowdown) ? slowdown : 1)) * 2) / 2;
}

export class Ladder {
  /** rungs by latency, ascending; accuracy strictly rises along them */
  readonly rungs: readonly Rung[];
  private readonly lat: Float64Array;

  constructor(
    rungs: readonly Rung[],
    readonly key: LadderKey,
    readonly builtMs = 0,
  ) {
    if (rungs.length === 0) throw new NestswapError('ERR_CONFIG_INVALID', 'A ladder needs at least one rung.');
    this.rungs = [...rungs].sort((a, b) => a.latencyMs - b.latencyMs);
    this.lat = Float64Array.from(this.rungs, (r) => r.latencyMs);
  }

  /**
   * Index of the best rung within the budget: the highest whose latency fits (binary search), then down
   * to the first whose memory fits too; -1 when no rung fits.
   */
  rungFor(budget: { latencyMs?: number | undefined; memoryMB?: number | undefined }): number {
    let i = this.rungs.length - 1;
    if (budget.latencyMs !== undefined) {
      let lo = 0;
      let hi = this.lat.length; // first index with latency > budget
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.lat[mid]! <= budget.latencyMs) lo = mid + 1;
        else hi = mid;
      }
      i = lo - 1;
    }
    if (budget.memoryMB !== undefined) while (i >= 0 && (this.rungs[i]!.memoryMB ?? 0) > budget.memoryMB) i--;
    return i;
  }

  /** Indices nearest first around `i` (at equal distance the lower first: downgrades are the urgent swaps). */
  around(i: number): number[] {
    const n = this.rungs.length;
    const c = Math.min(n - 1, Math.max(0, i));
    const out = [c];
    for (let d = 1; out.length < n; d++) {
      if (c - d >= 0) out.push(c - d);
      if (c + d < n) out.push(c + d);
    }
    return out;
  }

  indexOf(id: string): number {
    return this.rungs.findIndex((r) => r.id === id);
  }
}

export interface LadderOptions {
  /** rungs (default 64) */
  rungs?: number;
  /** memory limit every rung must meet (the device's, not the live one) */
  memoryMB?: number;
  /** latency the rungs crowd around (user budget / slowdown); half the rungs lie within ×0.5..×1.5 of it */
  focusMs?: number;
  /** budgets at which the default search adds a point to the front (default 12) */
  refineBudgets?: number;
  seed?: number;
  /** NSGA-II population and generations (defaults 100 and 60) */
  populationSize?: number;
  generations?: number;
}

/** Builds a ladder: NSGA-II front ∪ the default search at evenly spaced budgets, Pareto-filtered, then K rungs spaced by latency. */
export async function buildLadder(problem: SearchProblem, space: Space, key: LadderKey, opts: LadderOptions = {}): Promise<Ladder> {
  const t0 = performance.now();
  if (!problem.latency) throw new NestswapError('ERR_PROFILE_INVALID', 'A ladder needs a latency predictor (a device profile).');
  const k = Math.max(1, Math.floor(opts.rungs ?? 64));
  const cap: Budget = opts.memoryMB !== undefined ? { memoryMB: opts.memoryMB } : {};
  const seed = opts.seed ?? 0;
  const front = await paretoSearch(problem, cap, { objectives: ['latencyMs'], seed, populationSize: opts.populationSize ?? 100, generations: opts.generations ?? 60 });
  const points: Rung[] = front.front.map((p) => ({ subnet: p.subnet, id: space.id(p.subnet), latencyMs: p.predicted.latencyMs!, accuracy: p.predicted.accuracy, memoryMB: p.predicted.memoryMB }));
  const lo = Math.min(...points.map((p) => p.latencyMs));
  const hi = Math.max(...points.map((p) => p.latencyMs));
  const nRefine = opts.refineBudgets ?? 12;
  for (let j = 1; j <= nRefine; j++) {
    const b = lo + ((hi - lo) * j) / nRefine;
    try {
      const r = await autoSearch(problem, { ...cap, latencyMs: b }, { seed: seed + j });
      points.push({ subnet: r.subnet, id: space.id(r.subnet), latencyMs: r.predicted.latencyMs!, accuracy: r.predicted.accuracy, memoryMB: r.predicted.memoryMB });
    } catch (e) {
      if (!(e instanceof NestswapError && e.code === 'ERR_BUDGET_INFEASIBLE')) throw e;
    }
  }
  const pareto = paretoFilter(points);
  return new Ladder(pickRungs(pareto, k, opts.focusMs), key, performance.now() - t0);
}

/** Points sorted by latency with strictly rising accuracy (dominated and duplicate points dropped). */
export function paretoFilter(points: readonly Rung[]): Rung[] {
  const sorted = [...points].sort((a, b) => a.latencyMs - b.latencyMs || b.accuracy - a.accuracy);
  const out: Rung[] = [];
  for (const p of sorted) if (!out.length || p.accuracy > out[out.length - 1]!.accuracy) out.push(p);
  return out;
}

/**
 * K rungs out of a front: for target latencies (half evenly over the front, half over ×0.5..×1.5 of
 * the focus when given), the highest point at or below each target; the cheapest point always.
 */
export function pickRungs(front: readonly Rung[], k: number, focusMs?: number): Rung[] {
  if (front.length <= k) return [...front];
  const lo = front[0]!.latencyMs;
  const hi = front[front.length - 1]!.latencyMs;
  const targets: number[] = [];
  const nFocus = focusMs !== undefined ? Math.floor(k / 2) : 0;
  for (let j = 0; j < k - nFocus; j++) targets.push(lo + ((hi - lo) * j) / Math.max(1, k - nFocus - 1));
  for (let j = 0; j < nFocus; j++) targets.push(focusMs! * (0.5 + j / Math.max(1, nFocus - 1)));
  const chosen = new Set<number>([0]);
  for (const t of targets) {
    let i = front.length - 1;
    while (i > 0 && front[i]!.latencyMs > t) i--;
    chosen.add(i);
  }
  // fill up to k with the points that close the widest latency gaps
  while (chosen.size < k) {
    const idx = [...chosen].sort((a, b) => a - b);
    let best = -1;
    let gap = -1;
    for (let x = 0; x + 1 < idx.length; x++) {
      const a = idx[x]!;
      const b = idx[x + 1]!;
      if (b - a > 1 && front[b]!.latencyMs - front[a]!.latencyMs > gap) {
        gap = front[b]!.latencyMs - front[a]!.latencyMs;
        best = (a + b) >> 1;
      }
    }
    if (best < 0) {
      const last = idx[idx.length - 1]!;
      if (last + 1 >= front.length) break;
      best = front.length - 1;
    }
    chosen.add(best);
  }
  return [...chosen].sort((a, b) => a - b).map((i) => front[i]!);
}

/**
 * Holds the ladder in use and rebuilds it in the background when its key changes; the old one keeps
 * answering meanwhile. One build at a time: the latest key wins.
 */
export class LadderKeeper {
  private ladder: Ladder | undefined;
  private building: { key: LadderKey; done: Promise<Ladder | undefined> } | undefined;
  private wanted: LadderKey | undefined;
  /** builds finished (for status) */
  builds = 0;
  lastError: Error | undefined;

  constructor(private readonly build: (key: LadderKey) => Promise<Ladder>) {}

  get current(): Ladder | undefined {
    return this.ladder;
  }

  /** Makes `key` the wanted one; starts a build unless the current or the one building has it. Resolves when a ladder for it is ready (or failed: undefined). */
  ensure(key: LadderKey): Promise<Ladder | undefined> {
    this.wanted = key;
    if (this.ladder && sameKey(this.ladder.key, key)) return Promise.resolve(this.ladder);
    if (this.building && sameKey(this.building.key, key)) return this.building.done;
    if (this.building) return this.building.done.then(() => (this.wanted && sameKey(this.wanted, key) ? this.ensure(key) : this.ladder));
    const done = this.build(key).then(
      (l) => {
        this.builds++;
        // a stale build still serves when there is nothing else
        if (!this.ladder || (this.wanted && sameKey(this.wanted, key))) this.ladder = l;
        return l;
      },
      (err: unknown) => {
        this.lastError = err instanceof Error ? err : new Error(String(err));
        return undefined;
      },
    );
    this.building = { key, done: done.finally(() => (this.building = undefined)) };
    return this.building.done;
  }

  /** The build in flight, if any. */
  get pending(): Promise<Ladder | undefined> | undefined {
    return this.building?.done;
  }
}
