/**
 * NSGA-II (Deb et al. 2002; as used by DyNAS-T) over accuracy and efficiency metrics: binary
 * tournaments on (rank, crowding), OFA's crossover and mutation, constraints kept by the same
 * bounded rejection + repair as the evolutionary search, one batched predictor call per generation.
 */
import { mulberry32 } from '../random.js';
import { feasibleChild } from './evolution.js';
import { CompiledProblem, type Budget, type Genome, type MetricName, type Predicted, type SearchProblem } from './problem.js';
import type { SubnetConfig } from '../space.js';

export interface ParetoOptions {
  populationSize?: number;
  generations?: number;
  crossoverProb?: number;
  archMutateProb?: number;
  resolutionMutateProb?: number;
  seed?: number;
  maxTries?: number;
  /** efficiency objectives to minimise (default: latency and memory where predictors exist, else MACs) */
  objectives?: MetricName[];
  /** called after each generation with the generations done and the total (progress of long work) */
  onProgress?: (done: number, total: number) => void;
}

export interface ParetoPoint {
  subnet: SubnetConfig;
  predicted: Predicted;
}

export interface ParetoResult {
  /** non-dominated subnets, sorted by the first efficiency objective */
  front: ParetoPoint[];
  objectives: MetricName[];
  evaluations: number;
  searchMs: number;
}

interface Ind {
  g: Genome;
  key: string;
  /** all minimised: [-accuracy, cost...] */
  f: number[];
  rank: number;
  crowd: number;
}

const dominates = (a: number[], b: number[]): boolean => {
  let strictly = false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]! > b[i]!) return false;
    if (a[i]! < b[i]!) strictly = true;
  }
  return strictly;
};

/** Fast non-dominated sort; sets `rank`, returns the fronts. */
function sortFronts(pop: Ind[]): Ind[][] {
  const n = pop.length;
  const dominated: number[][] = pop.map(() => []);
  const count = new Int32Array(n);
  const fronts: Ind[][] = [[]];
  for (let p = 0; p < n; p++)
    for (let q = p + 1; q < n; q++) {
      if (dominates(pop[p]!.f, pop[q]!.f)) {
        dominated[p]!.push(q);
        count[q] = count[q]! + 1;
      } else if (dominates(pop[q]!.f, pop[p]!.f)) {
        dominated[q]!.push(p);
        count[p] = count[p]! + 1;
      }
    }
  let current: number[] = [];
  for (let p = 0; p < n; p++) if (count[p] === 0) current.push(p);
  let rank = 0;
  while (current.length) {
    const next: number[] = [];
    for (const p of current) {
      pop[p]!.rank = rank;
      fronts[rank]!.push(pop[p]!);
      for (const q of dominated[p]!) if (--count[q]! === 0) next.push(q);
    }
    rank++;
    current = next;
    if (next.length) fronts.push([]);
  }
  return fronts;
}

function crowding(front: Ind[]): void {
  for (const x of front) x.crowd = 0;
  const m = front[0]?.f.length ?? 0;
  for (let k = 0; k < m; k++) {
    const s = [...front].sort((a, b) => a.f[k]! - b.f[k]!);
    const lo = s[0]!.f[k]!;
    const hi = s[s.length - 1]!.f[k]!;
    s[0]!.crowd = s[s.length - 1]!.crowd = Infinity;
    if (hi === lo) continue;
    for (let i = 1; i < s.length - 1; i++) s[i]!.crowd += (s[i + 1]!.f[k]! - s[i - 1]!.f[k]!) / (hi - lo);
  }
}

export async function paretoSearch(problem: SearchProblem, budget: Budget, options: ParetoOptions = {}): Promise<ParetoResult> {
  const t0 = performance.now();
  const o = { populationSize: 100, generations: 100, crossoverProb: 0.9, archMutateProb: 0.1, resolutionMutateProb: 0.5, seed: 0, maxTries: 10, ...options };
  const cp = new CompiledProblem(problem, budget);
  const anchor = cp.feasibleAnchor();
  const rng = mulberry32(o.seed);
  const available = cp.metrics.map((m) => m.name);
  const objectives = o.objectives ?? (available.filter((n) => n !== 'macs').length ? available.filter((n) => n !== 'macs') : ['macs']);
  const metrics = objectives.map((n) => {
    const m = cp.metrics.find((x) => x.name === n);
    if (!m) throw new RangeError(`Objective '${n}' has no predictor; available: ${available.join(', ')}.`);
    return m;
  });

  const evaluate = async (gs: Genome[]): Promise<Ind[]> => {
    const keys = gs.map((g) => cp.key(g));
    const accs = await cp.score(gs, keys);
    return gs.map((g, i) => ({ g, key: keys[i]!, f: [-accs[i]!, ...metrics.map((m) => cp.cost(m, g))], rank: 0, crowd: 0 }));
  };
  /** Fills `fronts` into `n` survivors by rank, then crowding. */
  const select = (pop: Ind[], n: number): Ind[] => {
    const out: Ind[] = [];
    for (const front of sortFronts(pop)) {
      crowding(front);
      if (out.length + front.length <= n) out.push(...front);
      else {
        out.push(...[...front].sort((a, b) => b.crowd - a.crowd).slice(0, n - out.length));
        break;
      }
    }
    return out;
  };
  const tournament = (pop: Ind[]): Ind => {
    const a = pop[Math.floor(rng() * pop.length)]!;
    const b = pop[Math.floor(rng() * pop.length)]!;
    return a.rank < b.rank || (a.rank === b.rank && a.crowd > b.crowd) ? a : b;
  };
  const unique = (gs: Genome[], seen: Set<string>): Genome[] =>
    gs.filter((g) => {
      const k = cp.key(g);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });

  const seen = new Set<string>();
  let pop = select(await evaluate(unique(Array.from({ length: o.populationSize }, () => feasibleChild(cp, rng, o.maxTries, () => cp.random(rng), anchor)), seen)), o.populationSize);
  for (let gen = 0; gen < o.generations; gen++) {
    const kids: Genome[] = [];
    for (let j = 0; j < o.populationSize; j++) {
      const a = tournament(pop).g;
      const b = tournament(pop).g;
      kids.push(
        feasibleChild(
          cp,
          rng,
          o.maxTries,
          () => cp.mutate(rng() < o.crossoverProb ? cp.crossover(a, b, rng) : a, rng, o.archMutateProb, o.resolutionMutateProb),
          a,
        ),
      );
    }
    const fresh = unique(kids, seen);
    if (fresh.length) pop = select([...pop, ...(await evaluate(fresh))], o.populationSize);
    o.onProgress?.(gen + 1, o.generations);
  }
  const front = sortFronts(pop)[0]!.sort((a, b) => a.f[1]! - b.f[1]! || a.f[0]! - b.f[0]!);
  return {
    front: front.map((x) => cp.describe(x.g, -x.f[0]!)),
    objectives,
    evaluations: cp.evaluations,
    searchMs: performance.now() - t0,
  };
}
