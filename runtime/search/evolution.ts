/**
 * Evolutionary search with OFA EvolutionFinder's semantics (population, parents = top quarter,
 * half the children by mutation, half by crossover, arch mutation p 0.1, resolution p 0.5), plus:
 * feasibility checked first, bounded rejection then repair instead of OFA's endless rejection
 * loops, one batched predictor call per generation, a score cache, unique parents, and an optional
 * early stop when the best has not improved for `patience` generations.
 */
import { mulberry32, type Rng } from '../random.js';
import { CompiledProblem, type Budget, type Genome, type SearchProblem, type SearchResult } from './problem.js';

export interface EvolutionOptions {
  populationSize?: number;
  /** OFA's max_time_budget */
  generations?: number;
  parentRatio?: number;
  mutationRatio?: number;
  archMutateProb?: number;
  resolutionMutateProb?: number;
  seed?: number;
  /** stop after this many generations without improvement (Infinity: run every generation, as OFA) */
  patience?: number;
  /** rejection-sampling tries for a feasible child before repairing the last one */
  maxTries?: number;
  /** after evolution, hill-climb from the best over feasible single-choice changes (at most this many rounds; 0: off, as OFA) */
  polishRounds?: number;
}

/** What a caller may observe of a run: every scored genome, in order (the resolution sweep fits a surrogate to them). */
export interface EvolutionTrace {
  cp?: CompiledProblem;
  scored: Scored[];
}

/** OFA's defaults. */
export const OFA_EVOLUTION: Required<EvolutionOptions> = Object.freeze({
  populationSize: 100,
  generations: 500,
  parentRatio: 0.25,
  mutationRatio: 0.5,
  archMutateProb: 0.1,
  resolutionMutateProb: 0.5,
  seed: 0,
  patience: Infinity,
  maxTries: 10,
  polishRounds: 0,
});

/**
 * Shorter setting of equal quality on OFA-MBv3 with OFA's predictor and Note10 tables (bench/search.ts
 * measures both): a wider population converges in fewer generations, early stop, then a short
 * hill-climb with budget-neutral pair moves.
 */
export const FAST_EVOLUTION: Required<EvolutionOptions> = Object.freeze({ ...OFA_EVOLUTION, populationSize: 200, generations: 100, patience: 30, polishRounds: 10 });

/** A feasible genome from `make` (bounded tries), else the repaired last try, else `fallback`. */
export function feasibleChild(cp: CompiledProblem, rng: Rng, maxTries: number, make: () => Genome, fallback: Genome): Genome {
  let last: Genome | undefined;
  for (let t = 0; t < maxTries; t++) {
    last = make();
    if (cp.feasible(last)) return last;
  }
  return (last && cp.repair(last, rng)) ?? fallback.slice();
}

export interface Scored {
  g: Genome;
  key: string;
  acc: number;
}

/** Top `n` distinct genomes by accuracy (ties: earlier first, so the order is deterministic). */
export function topUnique(pop: Scored[], n: number): Scored[] {
  const sorted = pop.map((x, i) => ({ x, i })).sort((a, b) => b.x.acc - a.x.acc || a.i - b.i);
  const seen = new Set<string>();
  const out: Scored[] = [];
  for (const { x } of sorted) {
    if (seen.has(x.key)) continue;
    seen.add(x.key);
    out.push(x);
    if (out.length === n) break;
  }
  return out;
}

/**
 * Best feasible neighbour of `from` if it beats it, in one batched predictor call. Neighbours: one
 * choice changed, or, at the budget edge, one choice raised past the budget plus one lowered to
 * pay for it (single changes rarely help once the budget binds).
 */
export async function polish(cp: CompiledProblem, from: Scored, scoreAll: (gs: Genome[]) => Promise<Scored[]>): Promise<Scored | undefined> {
  const kOff = 1 + cp.nStage;
  const size = (pos: number) => (pos === 0 ? cp.nR : pos < kOff ? cp.nD : pos < kOff + cp.nSlots ? cp.nK : cp.nE);
  const moves: [number, number][] = [];
  for (let pos = 0; pos < cp.length; pos++) {
    if (pos >= kOff && !cp.isActive(from.g, (pos - kOff) % cp.nSlots)) continue;
    for (let v = 0; v < size(pos); v++) if (v !== from.g[pos]) moves.push([pos, v]);
  }
  const seen = new Set<string>([from.key]);
  const out: Genome[] = [];
  const add = (g: Genome) => {
    cp.canonicalize(g);
    const k = cp.key(g);
    if (seen.has(k) || !cp.feasible(g)) return;
    seen.add(k);
    out.push(g);
  };
  const over: [number, number][] = [];
  const under: [number, number][] = [];
  const excess0 = cp.excess(from.g);
  for (const [pos, v] of moves) {
    const g = from.g.slice();
    g[pos] = v;
    if (cp.feasible(g)) add(g);
    else if (cp.excess(g) > excess0) over.push([pos, v]);
    if (v < from.g[pos]!) under.push([pos, v]);
  }
  for (const [p1, v1] of over)
    for (const [p2, v2] of under) {
      if (p1 === p2) continue;
      const g = from.g.slice();
      g[p1] = v1;
      g[p2] = v2;
      add(g);
    }
  if (!out.length) return undefined;
  const best = topUnique(await scoreAll(out), 1)[0]!;
  return best.acc > from.acc ? best : undefined;
}

export async function evolutionSearch(problem: SearchProblem, budget: Budget, options: EvolutionOptions = {}, trace?: EvolutionTrace): Promise<SearchResult> {
  const t0 = performance.now();
  const o = { ...OFA_EVOLUTION, ...options };
  const cp = new CompiledProblem(problem, budget);
  if (trace) trace.cp = cp;
  const anchor = cp.feasibleAnchor();
  const rng = mulberry32(o.seed);
  const nMut = Math.round(o.mutationRatio * o.populationSize);
  const nPar = Math.max(1, Math.round(o.parentRatio * o.populationSize));

  const scoreAll = async (gs: Genome[]): Promise<Scored[]> => {
    const keys = gs.map((g) => cp.key(g));
    const accs = await cp.score(gs, keys);
    const out = gs.map((g, i) => ({ g, key: keys[i]!, acc: accs[i]! }));
    trace?.scored.push(...out);
    return out;
  };

  let population = await scoreAll(Array.from({ length: o.populationSize }, () => feasibleChild(cp, rng, o.maxTries, () => cp.random(rng), anchor)));
  let best = topUnique(population, 1)[0]!;
  let stale = 0;
  let generations = 0;
  for (let gen = 0; gen < o.generations; gen++) {
    generations++;
    const parents = topUnique(population, nPar);
    if (parents[0]!.acc > best.acc) {
      best = parents[0]!;
      stale = 0;
    } else if (++stale >= o.patience) break;
    const children: Genome[] = [];
    for (let j = 0; j < nMut; j++) {
      const p = parents[Math.floor(rng() * parents.length)]!.g;
      children.push(feasibleChild(cp, rng, o.maxTries, () => cp.mutate(p, rng, o.archMutateProb, o.resolutionMutateProb), p));
    }
    for (let j = nMut; j < o.populationSize; j++) {
      const a = parents[Math.floor(rng() * parents.length)]!.g;
      const b = parents[Math.floor(rng() * parents.length)]!.g;
      children.push(feasibleChild(cp, rng, o.maxTries, () => cp.crossover(a, b, rng), a));
    }
    population = [...parents, ...(await scoreAll(children))];
  }
  const top = topUnique(population, 1)[0]!;
  if (top.acc > best.acc) best = top;
  for (let round = 0; round < o.polishRounds; round++) {
    const next = await polish(cp, best, scoreAll);
    if (!next) break;
    best = next;
  }
  return { ...cp.describe(best.g, best.acc), evaluations: cp.evaluations, searchMs: performance.now() - t0, generations };
}
