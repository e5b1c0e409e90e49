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
});

/** Shorter setting of equal quality on OFA-MBv3 (bench/search.ts measures both). */
export const FAST_EVOLUTION: Required<EvolutionOptions> = Object.freeze({ ...OFA_EVOLUTION, generations: 120, patience: 25 });

/** A feasible genome from `make` (bounded tries), else the repaired last try, else `fallback`. */
export function feasibleChild(cp: CompiledProblem, rng: Rng, maxTries: number, make: () => Genome, fallback: Genome): Genome {
  let last: Genome | undefined;
  for (let t = 0; t < maxTries; t++) {
    last = make();
    if (cp.feasible(last)) return last;
  }
  return (last && cp.repair(last, rng)) ?? fallback.slice();
}

interface Scored {
  g: Genome;
  key: string;
  acc: number;
}

/** Top `n` distinct genomes by accuracy (ties: earlier first, so the order is deterministic). */
function topUnique(pop: Scored[], n: number): Scored[] {
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

export async function evolutionSearch(problem: SearchProblem, budget: Budget, options: EvolutionOptions = {}): Promise<SearchResult> {
  const t0 = performance.now();
  const o = { ...OFA_EVOLUTION, ...options };
  const cp = new CompiledProblem(problem, budget);
  const anchor = cp.feasibleAnchor();
  const rng = mulberry32(o.seed);
  const { encoder } = problem;
  const nMut = Math.round(o.mutationRatio * o.populationSize);
  const nPar = Math.max(1, Math.round(o.parentRatio * o.populationSize));

  const scoreAll = async (gs: Genome[]): Promise<Scored[]> => {
    const accs = await cp.score(gs, encoder);
    return gs.map((g, i) => ({ g, key: cp.key(g), acc: accs[i]! }));
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
  return { ...cp.describe(best.g, best.acc), evaluations: cp.evaluations, searchMs: performance.now() - t0, generations };
}
