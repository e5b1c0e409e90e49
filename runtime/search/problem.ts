/**
 * A search problem compiled for speed: candidates are small integer genomes
 * `[resolution index, depth index × stages, kernel index × slots, expand index × slots]`, costs of
 * additive predictors are array sums, and feasibility / repair are bounded.
 */
import type { Arch } from '../arch.js';
import { NestswapError } from '../errors.js';
import type { Rng } from '../random.js';
import { Space, type ArchEncoder, type SubnetConfig } from '../space.js';
import { evaluateFlat, flatIndex, flatMinimum, macsModel, type EfficiencyModel, type LatencyPredictor, type MemoryPredictor } from './efficiency.js';
import type { AccuracyPredictor } from './predictors.js';

export interface Budget {
  latencyMs?: number;
  memoryMB?: number;
  /** multiply-accumulates (not millions) */
  macs?: number;
}

export interface SearchProblem {
  arch: Arch;
  predictor: AccuracyPredictor;
  /** encoding the predictor expects; its image-size list bounds the searched resolutions */
  encoder: ArchEncoder;
  latency?: LatencyPredictor;
  memory?: MemoryPredictor;
  /** further restriction of the searched resolutions */
  resolutions?: readonly number[];
}

export interface Predicted {
  accuracy: number;
  latencyMs: number | null;
  memoryMB: number | null;
  macs: number;
}

export interface SearchResult {
  subnet: SubnetConfig;
  predicted: Predicted;
  /** accuracy-predictor evaluations (rows) */
  evaluations: number;
  searchMs: number;
  /** generations run (evolutionary searches) */
  generations?: number;
}

export type MetricName = 'latencyMs' | 'memoryMB' | 'macs';
export const METRICS: readonly MetricName[] = ['latencyMs', 'memoryMB', 'macs'];

export type Genome = Uint8Array;

/** One efficiency metric, as a flat table over genome indices when additive. */
export interface Metric {
  name: MetricName;
  limit: number | undefined;
  /** [ri] */
  fixed?: Float64Array;
  /** [ri][slot][ki][ei] */
  slot?: Float64Array;
  a: number;
  b: number;
  fn: (cfg: SubnetConfig) => number;
}

export function validateBudget(budget: Budget): void {
  for (const name of METRICS) {
    const v = (budget as Record<string, unknown>)[name];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw new NestswapError('ERR_BUDGET_INVALID', `Budget '${name}' must be a finite number > 0 (got ${String(v)}).`, {
        details: { field: name, value: String(v) },
      });
  }
  for (const k of Object.keys(budget))
    if (!METRICS.includes(k as MetricName)) throw new NestswapError('ERR_BUDGET_INVALID', `Unknown budget '${k}'; expected one of: ${METRICS.join(', ')}.`);
}

export class CompiledProblem {
  readonly space: Space;
  readonly nStage: number;
  readonly nSlots: number;
  readonly maxDepth: number;
  readonly nK: number;
  readonly nE: number;
  readonly nD: number;
  readonly nR: number;
  readonly length: number;
  readonly metrics: Metric[];
  readonly budget: Budget;
  evaluations = 0;
  private readonly cache = new Map<string, number>();

  constructor(
    readonly problem: SearchProblem,
    budget: Budget,
  ) {
    validateBudget(budget);
    this.budget = budget;
    const { arch, encoder, latency, memory } = problem;
    const base = Space.fromArch(arch);
    if (encoder.space.nSlots !== base.nSlots || encoder.nDim !== problem.predictor.nDim)
      throw new NestswapError(
        'ERR_PREDICTOR_INVALID',
        `Accuracy predictor takes ${problem.predictor.nDim} features but the encoder produces ${encoder.nDim} for ${encoder.space.nSlots} slots.`,
      );
    let res = base.image_size_list.filter((r) => encoder.imageSizeList.includes(r));
    if (problem.resolutions) res = res.filter((r) => problem.resolutions!.includes(r));
    if (latency?.flat) res = res.filter((r) => latency.flat!.resolutions.includes(r));
    if (memory?.flat) res = res.filter((r) => memory.flat!.resolutions.includes(r));
    if (res.length === 0)
      throw new NestswapError(
        'ERR_CONFIG_INVALID',
        `No resolution is known to the space, the accuracy predictor (${encoder.imageSizeList.join(', ')}) and the efficiency tables together.`,
      );
    if (budget.latencyMs !== undefined && !latency) throw new NestswapError('ERR_BUDGET_INVALID', 'A latency budget needs a latency predictor.');
    if (budget.memoryMB !== undefined && !memory) throw new NestswapError('ERR_BUDGET_INVALID', 'A memory budget needs a memory predictor.');
    this.space = new Space({ ...base.toJSON(), image_size_list: res });
    const s = this.space;
    this.nStage = s.n_stage;
    this.nSlots = s.nSlots;
    this.maxDepth = s.maxDepth;
    this.nK = s.ks_list.length;
    this.nE = s.expand_list.length;
    this.nD = s.depth_list.length;
    this.nR = s.image_size_list.length;
    this.length = 1 + this.nStage + 2 * this.nSlots;
    const macs = macsModel(arch, res);
    this.metrics = [];
    if (latency) this.metrics.push(this.compileMetric('latencyMs', budget.latencyMs, (c) => latency.latencyMs(c), latency.flat));
    if (memory) this.metrics.push(this.compileMetric('memoryMB', budget.memoryMB, (c) => memory.memoryMB(c), memory.flat));
    this.metrics.push(this.compileMetric('macs', budget.macs, (c) => evaluateFlat(macs, c), macs));
  }

  private compileMetric(name: MetricName, limit: number | undefined, fn: (c: SubnetConfig) => number, flat?: EfficiencyModel): Metric {
    if (!flat) return { name, limit, a: 1, b: 0, fn };
    const s = this.space;
    const fixed = new Float64Array(this.nR);
    const slot = new Float64Array(this.nR * this.nSlots * this.nK * this.nE);
    s.image_size_list.forEach((r, ri) => {
      const fr = flat.resolutions.indexOf(r);
      fixed[ri] = flat.fixed[fr]!;
      for (let i = 0; i < this.nSlots; i++)
        s.ks_list.forEach((k, ki) =>
          s.expand_list.forEach((e, ei) => {
            const fk = flat.ksList.indexOf(k);
            const fe = flat.expandList.indexOf(e);
            if (fk < 0 || fe < 0) throw new NestswapError('ERR_PROFILE_INVALID', `The ${name} table lacks kernel ${k} or expand ${e}.`);
            slot[this.slotIndex(ri, i, ki, ei)] = flat.slot[flatIndex(flat, fr, i, fk, fe)]!;
          }),
        );
    });
    return { name, limit, fixed, slot, a: flat.calibration?.a ?? 1, b: flat.calibration?.b ?? 0, fn };
  }

  slotIndex(ri: number, slot: number, ki: number, ei: number): number {
    return ((ri * this.nSlots + slot) * this.nK + ki) * this.nE + ei;
  }

  isActive(g: Genome, slot: number): boolean {
    return this.space.slotPos[slot]! < this.space.depth_list[g[1 + this.space.slotStage[slot]!]!]!;
  }

  cost(m: Metric, g: Genome): number {
    if (!m.slot) return m.fn(this.toConfig(g));
    const ri = g[0]!;
    let sum = m.fixed![ri]!;
    const kOff = 1 + this.nStage;
    const eOff = kOff + this.nSlots;
    for (let st = 0; st < this.nStage; st++) {
      const depth = Math.min(this.space.depth_list[g[1 + st]!]!, this.space.stageBlocks[st]!);
      for (let j = 0; j < depth; j++) {
        const i = this.space.stageStart[st]! + j;
        sum += m.slot[this.slotIndex(ri, i, g[kOff + i]!, g[eOff + i]!)]!;
      }
    }
    return m.a * sum + m.b;
  }

  /** How far over budget, summed over metrics relative to each limit (0 = feasible). */
  excess(g: Genome): number {
    let ex = 0;
    for (const m of this.metrics) {
      if (m.limit === undefined) continue;
      const c = this.cost(m, g);
      if (c > m.limit) ex += (c - m.limit) / m.limit;
    }
    return ex;
  }

  feasible(g: Genome): boolean {
    for (const m of this.metrics) if (m.limit !== undefined && this.cost(m, g) > m.limit) return false;
    return true;
  }

  /** Sets inactive slots to index 0, so equal subnets have equal genomes. */
  canonicalize(g: Genome): Genome {
    const kOff = 1 + this.nStage;
    const eOff = kOff + this.nSlots;
    for (let i = 0; i < this.nSlots; i++)
      if (!this.isActive(g, i)) {
        g[kOff + i] = 0;
        g[eOff + i] = 0;
      }
    return g;
  }

  /** Map key of a genome: the resolution, then two choice indices (each < 16) per char. */
  key(g: Genome): string {
    let s = String.fromCharCode(65 + g[0]!);
    if (this.nK > 16 || this.nE > 16 || this.nD > 16) {
      for (let i = 1; i < g.length; i++) s += String.fromCharCode(65 + g[i]!);
      return s;
    }
    for (let i = 1; i < g.length; i += 2) s += String.fromCharCode(65 + (g[i]! | ((g[i + 1] ?? 0) << 4)));
    return s;
  }

  private featIndex: { r: Int32Array; k: Int32Array; e: Int32Array } | undefined;

  /** Writes the predictor's one-hot encoding of a genome (same as `encoder.encodeInto(toConfig(g))`, without allocating). */
  encodeInto(g: Genome, out: Float32Array, offset: number): void {
    const enc = this.problem.encoder;
    const s = this.space;
    if (!this.featIndex)
      this.featIndex = {
        r: Int32Array.from(s.image_size_list, (r) => enc.rIndex(r)),
        k: Int32Array.from({ length: this.nSlots * this.nK }, (_, x) => enc.kIndex(Math.floor(x / this.nK), s.ks_list[x % this.nK]!)),
        e: Int32Array.from({ length: this.nSlots * this.nE }, (_, x) => enc.eIndex(Math.floor(x / this.nE), s.expand_list[x % this.nE]!)),
      };
    const f = this.featIndex;
    out.fill(0, offset, offset + enc.nDim);
    out[offset + f.r[g[0]!]!] = 1;
    const kOff = 1 + this.nStage;
    const eOff = kOff + this.nSlots;
    for (let i = 0; i < this.nSlots; i++) {
      if (!this.isActive(g, i)) continue;
      out[offset + f.k[i * this.nK + g[kOff + i]!]!] = 1;
      out[offset + f.e[i * this.nE + g[eOff + i]!]!] = 1;
    }
  }

  toConfig(g: Genome): SubnetConfig {
    const s = this.space;
    const kOff = 1 + this.nStage;
    const eOff = kOff + this.nSlots;
    const ks: number[] = [];
    const e: number[] = [];
    for (let i = 0; i < this.nSlots; i++) {
      ks.push(s.ks_list[g[kOff + i]!]!);
      e.push(s.expand_list[g[eOff + i]!]!);
    }
    const d = Array.from({ length: this.nStage }, (_, st) => s.depth_list[g[1 + st]!]!);
    return s.canonical({ ks, e, d, image_size: s.image_size_list[g[0]!]! });
  }

  fromConfig(c: SubnetConfig): Genome {
    const s = this.space;
    const g = new Uint8Array(this.length);
    const idx = (xs: readonly number[], v: number, what: string) => {
      const i = xs.indexOf(v);
      if (i < 0) throw new NestswapError('ERR_CONFIG_INVALID', `${what} ${v} is not searched here (${xs.join(', ')}).`);
      return i;
    };
    g[0] = idx(s.image_size_list, c.image_size, 'image_size');
    // a stage of fixed depth holds a capped depth: the first choice that caps to it
    c.d.forEach((d, st) => (g[1 + st] = idx(s.depth_list.map((x) => Math.min(x, s.stageBlocks[st]!)), d, 'depth')));
    for (let i = 0; i < this.nSlots; i++) {
      g[1 + this.nStage + i] = idx(s.ks_list, c.ks[i]!, 'kernel');
      g[1 + this.nStage + this.nSlots + i] = idx(s.expand_list, c.e[i]!, 'expand');
    }
    return this.canonicalize(g);
  }

  random(rng: Rng): Genome {
    const g = new Uint8Array(this.length);
    g[0] = Math.floor(rng() * this.nR);
    for (let st = 0; st < this.nStage; st++) g[1 + st] = Math.floor(rng() * this.nD);
    for (let i = 0; i < this.nSlots; i++) {
      g[1 + this.nStage + i] = Math.floor(rng() * this.nK);
      g[1 + this.nStage + this.nSlots + i] = Math.floor(rng() * this.nE);
    }
    return this.canonicalize(g);
  }

  /** OFA's mutation: each block choice with `p`, each depth with `p`, the resolution with `pr`. */
  mutate(parent: Genome, rng: Rng, p: number, pr: number): Genome {
    const g = parent.slice();
    if (rng() < pr) g[0] = Math.floor(rng() * this.nR);
    const kOff = 1 + this.nStage;
    for (let i = 0; i < this.nSlots; i++) {
      if (rng() < p) g[kOff + i] = Math.floor(rng() * this.nK);
      if (rng() < p) g[kOff + this.nSlots + i] = Math.floor(rng() * this.nE);
    }
    for (let st = 0; st < this.nStage; st++) if (rng() < p) g[1 + st] = Math.floor(rng() * this.nD);
    return this.canonicalize(g);
  }

  /** OFA's crossover: every gene from either parent. Inactive genes were canonicalized to 0. */
  crossover(a: Genome, b: Genome, rng: Rng): Genome {
    const g = new Uint8Array(this.length);
    for (let j = 0; j < this.length; j++) g[j] = rng() < 0.5 ? a[j]! : b[j]!;
    return this.canonicalize(g);
  }

  /**
   * Makes a genome feasible by random downgrades (smaller kernel, expand, depth or resolution) that
   * lower the excess; at most one pass per downgradable step, so it always ends. Returns undefined
   * when it cannot. `keepResolution`: never lower the resolution (islands search one each).
   */
  repair(g: Genome, rng: Rng, keepResolution = false): Genome | undefined {
    const limit = this.nR + this.nStage * this.nD + this.nSlots * (this.nK + this.nE);
    let ex = this.excess(g);
    const kOff = 1 + this.nStage;
    for (let step = 0; step < limit && ex > 0; step++) {
      const moves: number[] = [];
      if (g[0]! > 0 && !keepResolution) moves.push(0);
      for (let st = 0; st < this.nStage; st++) if (g[1 + st]! > 0) moves.push(1 + st);
      for (let i = 0; i < this.nSlots; i++) {
        if (!this.isActive(g, i)) continue;
        if (g[kOff + i]! > 0) moves.push(kOff + i);
        if (g[kOff + this.nSlots + i]! > 0) moves.push(kOff + this.nSlots + i);
      }
      if (moves.length === 0) return undefined;
      // try moves in random order; take the first that lowers the excess
      let improved = false;
      for (let tries = moves.length; tries > 0 && !improved; tries--) {
        const at = Math.floor(rng() * tries);
        const pos = moves[at]!;
        moves[at] = moves[tries - 1]!;
        g[pos] = g[pos]! - 1;
        const next = this.excess(g);
        if (next < ex) {
          ex = next;
          improved = true;
          this.canonicalize(g);
        } else g[pos] = g[pos]! + 1;
      }
      if (!improved) return undefined;
    }
    return ex > 0 ? undefined : g;
  }

  /** Scores genomes with one batched predictor call, skipping genomes already scored. */
  async score(genomes: readonly Genome[], keys: readonly string[] = genomes.map((g) => this.key(g))): Promise<number[]> {
    const todo: number[] = [];
    const pending = new Set<string>();
    keys.forEach((k, i) => {
      if (!this.cache.has(k) && !pending.has(k)) {
        pending.add(k);
        todo.push(i);
      }
    });
    if (todo.length) {
      const nDim = this.problem.encoder.nDim;
      const feats = new Float32Array(todo.length * nDim);
      todo.forEach((gi, row) => this.encodeInto(genomes[gi]!, feats, row * nDim));
      const acc = await this.problem.predictor.predictBatch(feats, todo.length);
      if (acc.length < todo.length) throw new NestswapError('ERR_PREDICTOR_INVALID', `Accuracy predictor returned ${acc.length} values for ${todo.length} rows.`);
      this.evaluations += todo.length;
      todo.forEach((gi, row) => {
        const v = acc[row]!;
        if (!Number.isFinite(v)) throw new NestswapError('ERR_PREDICTOR_INVALID', `Accuracy predictor returned ${v} for ${this.space.id(this.toConfig(genomes[gi]!))}.`);
        this.cache.set(keys[gi]!, v);
      });
    }
    return keys.map((k) => this.cache.get(k)!);
  }

  /** Minimum of one metric over the searched space (exact for additive metrics). */
  minimum(m: Metric): { value: number; genome: Genome } {
    if (m.slot) {
      const flat: EfficiencyModel = {
        unit: m.name,
        resolutions: this.space.image_size_list,
        ksList: this.space.ks_list,
        expandList: this.space.expand_list,
        nSlots: this.nSlots,
        maxDepth: this.maxDepth,
        fixed: m.fixed!,
        slot: m.slot,
        calibration: { a: m.a, b: m.b },
      };
      const { value, cfg } = flatMinimum(flat, this.space);
      return { value, genome: this.fromConfig(cfg) };
    }
    // not additive: assume cost grows with every choice, so the cheapest is the smallest subnet at some resolution
    let best = { value: Infinity, genome: new Uint8Array(this.length) };
    for (let ri = 0; ri < this.nR; ri++) {
      const g = new Uint8Array(this.length);
      g[0] = ri;
      const v = m.fn(this.toConfig(g));
      if (v < best.value) best = { value: v, genome: g };
    }
    return best;
  }

  /**
   * Throws ERR_BUDGET_INFEASIBLE unless some subnet meets every limit; returns one that does. Each
   * limit is checked against its exact minimum; jointly, the per-metric minimisers and the
   * minimisers of a few weighted sums are tried (all bounded).
   */
  feasibleAnchor(): Genome {
    const limited = this.metrics.filter((m) => m.limit !== undefined);
    const mins = new Map(this.metrics.map((m) => [m.name, this.minimum(m)]));
    for (const m of limited) {
      const min = mins.get(m.name)!;
      if (min.value > m.limit!)
        throw new NestswapError(
          'ERR_BUDGET_INFEASIBLE',
          `No subnet meets ${m.name} <= ${m.limit}: the smallest achievable ${m.name} is ${round(min.value)}.`,
          { details: { metric: m.name, budget: m.limit, minimum: min.value, subnet: this.toConfig(min.genome) } },
        );
    }
    const candidates: Genome[] = [...mins.values()].map((x) => x.genome);
    const flatLimited = limited.filter((m) => m.slot);
    if (limited.length > 1 && flatLimited.length === limited.length) {
      // minimise Σ w_m · cost_m / limit_m for a few weight vectors: still separable per slot
      const weights = [0.25, 0.5, 0.75];
      for (const w of weights)
        for (let a = 0; a < limited.length; a++) {
          const ws = limited.map((_, j) => (j === a ? w : (1 - w) / Math.max(1, limited.length - 1)));
          candidates.push(this.minimizeWeighted(limited, ws));
        }
    }
    const ok = candidates.find((g) => this.feasible(g));
    if (ok) return ok.slice();
    throw new NestswapError(
      'ERR_BUDGET_INFEASIBLE',
      `Each limit alone is achievable but no subnet was found meeting all of them together (${limited.map((m) => `${m.name} <= ${m.limit}`).join(', ')}).`,
      { details: { minimums: Object.fromEntries([...mins].map(([k, v]) => [k, v.value])) } },
    );
  }

  private minimizeWeighted(ms: Metric[], ws: number[]): Genome {
    const combined: Metric = {
      name: 'latencyMs',
      limit: undefined,
      a: 1,
      b: 0,
      fn: () => 0,
      fixed: new Float64Array(this.nR),
      slot: new Float64Array(ms[0]!.slot!.length),
    };
    const fixed = combined.fixed!;
    const slot = combined.slot!;
    ms.forEach((m, j) => {
      const f = (ws[j]! * m.a) / m.limit!;
      for (let x = 0; x < fixed.length; x++) fixed[x] = fixed[x]! + f * m.fixed![x]!;
      for (let x = 0; x < slot.length; x++) slot[x] = slot[x]! + f * m.slot![x]!;
    });
    return this.minimum(combined).genome;
  }

  /** Full result record for a genome (all metrics recomputed through their predictors). */
  describe(g: Genome, accuracy: number): Omit<SearchResult, 'evaluations' | 'searchMs'> {
    const subnet = this.toConfig(g);
    const value = (n: MetricName) => {
      const m = this.metrics.find((x) => x.name === n);
      return m ? m.fn(subnet) : null;
    };
    return {
      subnet,
      predicted: { accuracy, latencyMs: value('latencyMs'), memoryMB: value('memoryMB'), macs: value('macs')! },
    };
  }
}

function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

