/**
 * Resolution-aware evolutionary search: one island per resolution of the space's list, each evolving
 * its block choices at that resolution with OFA EvolutionFinder's operators (the resolution never
 * mutates inside an island, so no island settles for another's resolution). Every few generations
 * each island receives the best of its neighbouring resolutions (exchange); every round the weaker
 * half of the islands is retired, so the evaluations go where the optimum is. The survivors' bests
 * are polished with single and paired choice changes (resolution included). All islands' children
 * are scored in one batched predictor call per generation; deterministic for a seed unless the
 * wall-clock cap is reached.
 */
import { mulberry32, type Rng } from '../random.js';
import { evolutionSearch, FAST_EVOLUTION, polish, topUnique, type EvolutionOptions, type EvolutionTrace, type Scored } from './evolution.js';
import { exactApplies, exactSearch } from './exact.js';
import { fitLinearPredictor, type LinearPredictor } from './predictors.js';
import { CompiledProblem, type Budget, type Genome, type SearchProblem, type SearchResult } from './problem.js';

export interface IslandOptions {
  seed?: number;
  /** individuals per generation over all islands, shared equally (so retiring islands grows the survivors) */
  rowsPerGeneration?: number;
  /** smallest island population */
  minIslandSize?: number;
  /** largest island population */
  maxIslandSize?: number;
  /** generations per round; after each round the weaker half of the islands is retired */
  roundGenerations?: number;
  /** islands that run to the end */
  finalIslands?: number;
  /** cap on generations in all */
  generations?: number;
  /** once down to the final islands: stop after this many generations without improvement */
  patience?: number;
  /** generations between exchanges of bests with the neighbouring resolutions */
  exchangeEvery?: number;
  parentRatio?: number;
  mutationRatio?: number;
  archMutateProb?: number;
  maxTries?: number;
  /** polish rounds per start */
  polishRounds?: number;
  /** how many of the best distinct starts (surviving islands' bests, surrogate proposals) are polished */
  polishStarts?: number;
  /** wall-clock cap in ms (0: none); reaching it ends evolution early and makes the result depend on speed */
  timeBudgetMs?: number;
  /**
   * rows of the least-squares linear surrogate fitted to the scored subnets, whose exact optimum
   * (all resolutions, and each surviving island's) is proposed before the polish (0: off; needs one additive limit)
   */
  surrogateRows?: number;
}

export const ISLAND_SEARCH: Required<IslandOptions> = Object.freeze({
  seed: 0,
  rowsPerGeneration: 256,
  minIslandSize: 16,
  maxIslandSize: 200,
  roundGenerations: 8,
  finalIslands: 2,
  generations: 120,
  patience: 15,
  exchangeEvery: 4,
  parentRatio: 0.25,
  mutationRatio: 0.5,
  archMutateProb: 0.1,
  maxTries: 10,
  polishRounds: 10,
  polishStarts: 2,
  timeBudgetMs: 2000,
  surrogateRows: 1500,
});

interface Island {
  ri: number;
  population: Scored[];
  best: Scored;
}

/** A feasible genome at the island's resolution: bounded tries, then repair that keeps the resolution, else `fallback`. */
function child(cp: CompiledProblem, rng: Rng, tries: number, make: () => Genome, fallback: Genome): Genome {
  let last: Genome | undefined;
  for (let t = 0; t < tries; t++) {
    last = make();
    if (cp.feasible(last)) return last;
  }
  return (last && cp.repair(last, rng, true)) ?? fallback.slice();
}

/** A feasible genome at resolution index `ri` (the smallest choices, else the anchor moved there), or undefined. */
function seedAt(cp: CompiledProblem, ri: number, anchor: Genome, rng: Rng): Genome | undefined {
  const small = cp.canonicalize(new Uint8Array(cp.length));
  small[0] = ri;
  if (cp.feasible(small)) return small;
  const moved = anchor.slice();
  moved[0] = ri;
  return cp.feasible(moved) ? moved : cp.repair(moved, rng, true);
}

export async function islandSearch(problem: SearchProblem, budget: Budget, options: IslandOptions = {}): Promise<SearchResult> {
  const t0 = performance.now();
  const o = { ...ISLAND_SEARCH, ...options };
  const cp = new CompiledProblem(problem, budget);
  const anchor = cp.feasibleAnchor();
  const rng = mulberry32(o.seed);
  const sizeFor = (alive: number) => Math.min(o.maxIslandSize, Math.max(o.minIslandSize, Math.floor(o.rowsPerGeneration / alive)));
  const seen: Scored[] = [];
  const scoreAll = async (gs: Genome[]): Promise<Scored[]> => {
    const keys = gs.map((g) => cp.key(g));
    const accs = await cp.score(gs, keys);
    const out = gs.map((g, i) => ({ g, key: keys[i]!, acc: accs[i]! }));
    seen.push(...out);
    return out;
  };

  // every island receives the surrogate's exact optimum at its resolution (scored by the real predictor)
  const useSurrogate = o.surrogateRows > 0 && exactApplies(problem, budget);
  const surrogateStep = async () => {
    const surrogate = useSurrogate ? fitSurrogate(cp, problem.encoder.nDim, seen, o.surrogateRows, rng) : undefined;
    if (!surrogate) return;
    const optima = await surrogateOptima(cp, problem, budget, surrogate, islands.map((isl) => isl.ri));
    const targets = islands.filter((_, x) => optima[x]);
    const scored = await scoreAll(optima.filter((g): g is Genome => g !== undefined));
    targets.forEach((isl, x) => adopt(isl, scored[x]!));
  };

  // initial populations, scored in one call
  const seeds = Array.from({ length: cp.nR }, (_, ri) => ({ ri, seed: seedAt(cp, ri, anchor, rng) })).filter((x) => x.seed !== undefined);
  const init: Genome[] = [];
  const size0 = sizeFor(seeds.length);
  for (const { ri, seed } of seeds)
    for (let j = 0; j < size0; j++) {
      const make = () => {
        const g = cp.random(rng);
        g[0] = ri;
        return g;
      };
      init.push(j === 0 ? seed! : child(cp, rng, o.maxTries, make, seed!));
    }
  const scored = await scoreAll(init);
  let islands: Island[] = seeds.map(({ ri }, x) => {
    const population = scored.slice(x * size0, (x + 1) * size0);
    return { ri, population, best: topUnique(population, 1)[0]! };
  });

  const globalBest = () => islands.reduce((b, isl) => (isl.best.acc > b.acc ? isl.best : b), islands[0]!.best);
  let best = globalBest();
  let stale = 0;
  let generations = 0;
  for (let gen = 1; gen <= o.generations; gen++) {
    if (o.timeBudgetMs > 0 && performance.now() - t0 > o.timeBudgetMs) break;
    generations = gen;
    const size = sizeFor(islands.length);
    const nPar = Math.max(1, Math.round(o.parentRatio * size));
    const nMut = Math.round(o.mutationRatio * size);
    const parentsOf = islands.map((isl) => topUnique(isl.population, nPar));
    const children: Genome[] = [];
    islands.forEach((isl, x) => {
      const parents = parentsOf[x]!;
      for (let j = 0; j < size - parents.length; j++) {
        const a = parents[Math.floor(rng() * parents.length)]!.g;
        if (j < nMut) children.push(child(cp, rng, o.maxTries, () => cp.mutate(a, rng, o.archMutateProb, 0), a));
        else {
          const b = parents[Math.floor(rng() * parents.length)]!.g;
          children.push(child(cp, rng, o.maxTries, () => cp.crossover(a, b, rng), a));
        }
      }
    });
    const kids = await scoreAll(children);
    let at = 0;
    islands.forEach((isl, x) => {
      const parents = parentsOf[x]!;
      const n = size - parents.length;
      isl.population = [...parents, ...kids.slice(at, at + n)];
      at += n;
      const top = topUnique(isl.population, 1)[0]!;
      if (top.acc > isl.best.acc) isl.best = top;
    });
    if (gen % o.exchangeEvery === 0) await exchange(cp, islands, rng, scoreAll);
    if (gen % o.roundGenerations === 0 && islands.length > o.finalIslands) {
      await surrogateStep();
      const keep = Math.max(o.finalIslands, Math.ceil(islands.length / 2));
      const ranked = [...islands].sort((p, q) => q.best.acc - p.best.acc || p.ri - q.ri);
      const kept = new Set(ranked.slice(0, keep));
      islands = islands.filter((isl) => kept.has(isl));
    }
    const now = globalBest();
    if (now.acc > best.acc) {
      best = now;
      stale = 0;
    } else if (islands.length <= o.finalIslands && ++stale >= o.patience) break;
  }

  await surrogateStep();
  const starts = topUnique(islands.map((isl) => isl.best), o.polishStarts);
  for (const start of starts) {
    if (start.acc > best.acc) best = start;
    let b = start;
    for (let round = 0; round < o.polishRounds; round++) {
      const next = await polish(cp, b, scoreAll);
      if (!next) break;
      b = next;
    }
    if (b.acc > best.acc) best = b;
  }
  return { ...cp.describe(best.g, best.acc), evaluations: cp.evaluations, searchMs: performance.now() - t0, generations };
}

/** Each island receives its neighbours' bests moved to its resolution (repaired where over budget), replacing its worst. */
async function exchange(cp: CompiledProblem, islands: Island[], rng: Rng, scoreAll: (gs: Genome[]) => Promise<Scored[]>): Promise<void> {
  const order = [...islands].sort((a, b) => a.ri - b.ri);
  const migrants: { to: Island; g: Genome }[] = [];
  order.forEach((isl, x) => {
    for (const nb of [order[x - 1], order[x + 1]]) {
      if (!nb) continue;
      const g = nb.best.g.slice();
      g[0] = isl.ri;
      const ok = cp.feasible(g) ? g : cp.repair(g, rng, true);
      if (ok) migrants.push({ to: isl, g: ok });
    }
  });
  if (!migrants.length) return;
  const scored = await scoreAll(migrants.map((m) => m.g));
  migrants.forEach((m, i) => adopt(m.to, scored[i]!));
}

/** Puts `s` into the island in place of its worst member (unless already there). */
function adopt(isl: Island, s: Scored): void {
  const pop = isl.population;
  if (pop.some((p) => p.key === s.key)) return;
  let worst = 0;
  for (let j = 1; j < pop.length; j++) if (pop[j]!.acc < pop[worst]!.acc) worst = j;
  pop[worst] = s;
  if (s.acc > isl.best.acc) isl.best = s;
}

/** A least-squares linear surrogate over a sample of the scored subnets (undefined when too few or singular). */
function fitSurrogate(cp: CompiledProblem, nDim: number, seen: Scored[], rows: number, rng: Rng): LinearPredictor | undefined {
  if (rows <= 0 || seen.length < 2 * nDim) return undefined;
  const n = Math.min(rows, seen.length);
  const pickRows = seen.length <= rows ? seen : Array.from({ length: n }, () => seen[Math.floor(rng() * seen.length)]!);
  const feats = new Float32Array(n * nDim);
  pickRows.forEach((x, i) => cp.encodeInto(x.g, feats, i * nDim));
  try {
    return fitLinearPredictor(feats, pickRows.map((x) => x.acc), n, nDim, 1e-6);
  } catch {
    return undefined; // a singular fit only means no proposal
  }
}

/** The surrogate's exact optimum at each resolution index of `ris` (undefined where it has none). */
async function surrogateOptima(cp: CompiledProblem, problem: SearchProblem, budget: Budget, surrogate: LinearPredictor, ris: number[]): Promise<(Genome | undefined)[]> {
  const out: (Genome | undefined)[] = [];
  for (const ri of ris) {
    try {
      const r = await exactSearch({ ...problem, predictor: surrogate, resolutions: [cp.space.image_size_list[ri]!] }, budget);
      out.push(cp.fromConfig(r.subnet));
    } catch {
      out.push(undefined); // nothing feasible at this resolution
    }
  }
  return out;
}

export interface SweepOptions extends EvolutionOptions {
  /** surrogate rows (as IslandOptions.surrogateRows) */
  surrogateRows?: number;
  /** polish rounds per swept start */
  sweepPolishRounds?: number;
  /** how many of the best distinct per-resolution starts are polished */
  sweepStarts?: number;
}

/**
 * The evolutionary search (FAST_EVOLUTION), then a sweep of every resolution: the best subnet seen
 * there and the linear surrogate's exact optimum there (fitted to every scored subnet) compete, and
 * the best `sweepStarts` distinct ones are polished. The result is never worse than the evolution's.
 */
export async function sweepSearch(problem: SearchProblem, budget: Budget, options: SweepOptions = {}): Promise<SearchResult> {
  const t0 = performance.now();
  const { surrogateRows = 1500, sweepPolishRounds = 10, sweepStarts = 2, ...evo } = options;
  const trace: EvolutionTrace = { scored: [] };
  const first = await evolutionSearch(problem, budget, { ...FAST_EVOLUTION, ...evo }, trace);
  const cp = trace.cp!;
  const rng = mulberry32((evo.seed ?? 0) + 0x5eed);
  const scoreAll = async (gs: Genome[]): Promise<Scored[]> => {
    const keys = gs.map((g) => cp.key(g));
    const accs = await cp.score(gs, keys);
    const out = gs.map((g, i) => ({ g, key: keys[i]!, acc: accs[i]! }));
    trace.scored.push(...out);
    return out;
  };
  const firstG = cp.fromConfig(first.subnet);
  let best: Scored = { g: firstG, key: cp.key(firstG), acc: first.predicted.accuracy };
  // best seen per resolution
  const perRes = new Map<number, Scored>();
  for (const x of trace.scored) {
    const cur = perRes.get(x.g[0]!);
    if (cp.feasible(x.g) && (!cur || x.acc > cur.acc)) perRes.set(x.g[0]!, x);
  }
  const candidates: Scored[] = [...perRes.values()];
  const surrogate = surrogateRows > 0 && exactApplies(problem, budget) ? fitSurrogate(cp, problem.encoder.nDim, trace.scored, surrogateRows, rng) : undefined;
  if (surrogate) {
    const optima = await surrogateOptima(cp, problem, budget, surrogate, Array.from({ length: cp.nR }, (_, ri) => ri));
    candidates.push(...(await scoreAll(optima.filter((g): g is Genome => g !== undefined))));
  }
  for (const start of topUnique(candidates.filter((c) => c.key !== best.key), sweepStarts)) {
    let b = start;
    for (let round = 0; round < sweepPolishRounds; round++) {
      const next = await polish(cp, b, scoreAll);
      if (!next) break;
      b = next;
    }
    if (b.acc > best.acc) best = b;
  }
  return { ...cp.describe(best.g, best.acc), evaluations: cp.evaluations, searchMs: performance.now() - t0, generations: first.generations ?? 0 };
}
