/**
 * Efficiency predictors. The generic form is a function of the config (`latencyMs(cfg)`,
 * `memoryMB(cfg)`); the flat form (`EfficiencyModel`) is additive over active block slots, which
 * lets the search evaluate a candidate with ~20 array reads and lets feasibility and the exact
 * optimiser work per slot.
 */
import { blockSlots, midChannels, seChannels, type Arch } from '../arch.js';
import { blockCost, fixedCost, headCost, slotInputSizes } from '../cost.js';
import { NestswapError } from '../errors.js';
import type { Space, SubnetConfig } from '../space.js';

/**
 * Additive cost table: cost(cfg) = a · (fixed[r] + Σ over active slots i of slot[r][i][k][e]) + b.
 * `slot` is laid out [resolution][slot][ks index][expand index] over `ksList` × `expandList`.
 */
export interface EfficiencyModel {
  /** unit of the cost, e.g. 'ms', 'MB', 'MACs' */
  readonly unit: string;
  readonly resolutions: readonly number[];
  readonly ksList: readonly number[];
  readonly expandList: readonly number[];
  readonly nSlots: number;
  /** block slots per stage (active-prefix semantics: slot i is active iff i % maxDepth < d[stage]) */
  readonly maxDepth: number;
  /** block slots of each stage when some stage has fewer than maxDepth (a stage of fixed depth) */
  readonly stageBlocks?: readonly number[] | undefined;
  readonly fixed: Float64Array;
  readonly slot: Float64Array;
  /** measured ≈ a · sum + b (fitted on whole-subnet measurements); a must be > 0 */
  readonly calibration?: { readonly a: number; readonly b: number } | undefined;
}

export interface LatencyPredictor {
  latencyMs(cfg: SubnetConfig): number;
  /** present when the predictor is additive; the search then uses array lookups */
  readonly flat?: EfficiencyModel;
}

export interface MemoryPredictor {
  memoryMB(cfg: SubnetConfig): number;
  readonly flat?: EfficiencyModel;
}

export function flatIndex(m: EfficiencyModel, ri: number, slot: number, ki: number, ei: number): number {
  return ((ri * m.nSlots + slot) * m.ksList.length + ki) * m.expandList.length + ei;
}

/** Checks an EfficiencyModel's shape (it may come from a file or a device profile). */
export function validateEfficiencyModel(m: EfficiencyModel, source = 'efficiency model'): EfficiencyModel {
  const fail = (msg: string): never => {
    throw new NestswapError('ERR_PROFILE_INVALID', `Invalid ${source}: ${msg}`);
  };
  const nR = m.resolutions.length;
  if (nR === 0 || m.ksList.length === 0 || m.expandList.length === 0) fail('resolutions, ksList and expandList must be non-empty.');
  if (m.stageBlocks) {
    if (m.stageBlocks.reduce((a, b) => a + b, 0) !== m.nSlots || m.stageBlocks.some((b) => !Number.isInteger(b) || b < 1 || b > m.maxDepth))
      fail(`stageBlocks ${JSON.stringify(m.stageBlocks)} must be integers in 1..maxDepth summing to nSlots ${m.nSlots}.`);
  } else if (!Number.isInteger(m.maxDepth) || m.maxDepth < 1 || m.nSlots % m.maxDepth !== 0) fail(`nSlots ${m.nSlots} must be a multiple of maxDepth ${m.maxDepth}.`);
  if (m.fixed.length !== nR) fail(`fixed has ${m.fixed.length} entries for ${nR} resolutions.`);
  const want = nR * m.nSlots * m.ksList.length * m.expandList.length;
  if (m.slot.length !== want) fail(`slot has ${m.slot.length} entries, expected ${want}.`);
  for (const v of m.fixed) if (!Number.isFinite(v)) fail('fixed costs must be finite.');
  for (const v of m.slot) if (!Number.isFinite(v)) fail('slot costs must be finite.');
  if (m.calibration && !(m.calibration.a > 0 && Number.isFinite(m.calibration.a) && Number.isFinite(m.calibration.b)))
    fail('calibration needs a finite a > 0 and a finite b.');
  return m;
}

/** Evaluates a flat model on a config (throws if the resolution or a choice is not in the table). */
export function evaluateFlat(m: EfficiencyModel, cfg: SubnetConfig): number {
  const ri = m.resolutions.indexOf(cfg.image_size);
  if (ri < 0)
    throw new NestswapError('ERR_CONFIG_INVALID', `image_size ${cfg.image_size} is not in the ${m.unit} table (${m.resolutions.join(', ')}).`);
  let sum = m.fixed[ri]!;
  const blocks = m.stageBlocks;
  for (let i = 0, st = 0, j = 0; i < m.nSlots; i++, j++) {
    if (j === (blocks ? blocks[st]! : m.maxDepth)) {
      st++;
      j = 0;
    }
    if (j >= cfg.d[st]!) continue;
    const ki = m.ksList.indexOf(cfg.ks[i]!);
    const ei = m.expandList.indexOf(cfg.e[i]!);
    if (ki < 0 || ei < 0) throw new NestswapError('ERR_CONFIG_INVALID', `slot ${i}: ks ${cfg.ks[i]} / e ${cfg.e[i]} not in the ${m.unit} table.`);
    sum += m.slot[flatIndex(m, ri, i, ki, ei)]!;
  }
  return m.calibration ? m.calibration.a * sum + m.calibration.b : sum;
}

export function flatLatencyPredictor(m: EfficiencyModel): LatencyPredictor {
  validateEfficiencyModel(m, 'latency model');
  return { flat: m, latencyMs: (cfg) => evaluateFlat(m, cfg) };
}

export function flatMemoryPredictor(m: EfficiencyModel): MemoryPredictor {
  validateEfficiencyModel(m, 'memory model');
  return { flat: m, memoryMB: (cfg) => evaluateFlat(m, cfg) };
}

/** Builds a flat model by asking `slotCost`/`fixedCost` for every entry. */
export function buildEfficiencyModel(
  arch: Arch,
  resolutions: readonly number[],
  unit: string,
  fixedAt: (r: number) => number,
  slotAt: (r: number, slot: number, ks: number, e: number) => number,
): EfficiencyModel {
  const ksList = [...arch.space.ks_list].sort((a, b) => a - b);
  const expandList = [...arch.space.expand_list].sort((a, b) => a - b);
  const maxDepth = Math.max(...arch.space.depth_list);
  const stageBlocks = arch.stages.map((s) => s.blocks ?? maxDepth);
  const nSlots = stageBlocks.reduce((a, b) => a + b, 0);
  const m: EfficiencyModel = {
    unit,
    resolutions: [...resolutions],
    ksList,
    expandList,
    nSlots,
    maxDepth,
    ...(stageBlocks.every((b) => b === maxDepth) ? {} : { stageBlocks }),
    fixed: new Float64Array(resolutions.length),
    slot: new Float64Array(resolutions.length * nSlots * ksList.length * expandList.length),
  };
  resolutions.forEach((r, ri) => {
    m.fixed[ri] = fixedAt(r);
    for (let i = 0; i < nSlots; i++)
      ksList.forEach((k, ki) => expandList.forEach((e, ei) => (m.slot[flatIndex(m, ri, i, ki, ei)] = slotAt(r, i, k, e))));
  });
  return m;
}

/** MACs as a flat model (exact: MACs are additive per block). */
export function macsModel(arch: Arch, resolutions: readonly number[] = arch.space.image_size_list): EfficiencyModel {
  const slots = blockSlots(arch);
  const sizesAt = new Map(resolutions.map((r) => [r, slotInputSizes(arch, r)]));
  return buildEfficiencyModel(
    arch,
    resolutions,
    'MACs',
    (r) => {
      const sizes = sizesAt.get(r)!;
      return fixedCost(arch, r).macs + headCost(arch, sizes[sizes.length - 1]!).macs;
    },
    (r, i, k, e) => blockCost(arch, slots[i]!, sizesAt.get(r)![i]!, k, e).macs,
  );
}

/**
 * A static memory estimate in MB when no device profile is available: fp32 weights (additive per
 * block) plus, per resolution, the largest pair of live activations any subnet can have (an upper
 * bound computed with the widest choices), plus `overheadMB` for the runtime itself.
 */
export function staticMemoryModel(arch: Arch, resolutions: readonly number[] = arch.space.image_size_list, overheadMB = 0): EfficiencyModel {
  const slots = blockSlots(arch);
  const MB = 1024 * 1024;
  const bytes = 4;
  const eMax = Math.max(...arch.space.expand_list);
  const peakActivations = (r: number): number => {
    const sizes = slotInputSizes(arch, r);
    const stem = fixedCost(arch, r).blockInSize;
    let peak = r * r * arch.input.channels + stem * stem * arch.stem.out * 2;
    slots.forEach((s, i) => {
      const mid = midChannels(arch, s.inChannels, eMax);
      const hin = sizes[i]!;
      const hout = sizes[i + 1]!;
      peak = Math.max(peak, hin * hin * s.inChannels + hin * hin * mid, hin * hin * mid + hout * hout * mid, hout * hout * (mid + s.outChannels));
      if (s.se) peak = Math.max(peak, hout * hout * mid * 2 + seChannels(arch, mid));
    });
    const last = sizes[sizes.length - 1]!;
    return Math.max(peak, last * last * (arch.stages[arch.stages.length - 1]!.width + arch.final_expand));
  };
  return buildEfficiencyModel(
    arch,
    resolutions,
    'MB',
    (r) => {
      const sizes = slotInputSizes(arch, r);
      const weights = fixedCost(arch, r).params + headCost(arch, sizes[sizes.length - 1]!).params;
      return ((weights + peakActivations(r)) * bytes) / MB + overheadMB;
    },
    (_r, i, k, e) => (blockCost(arch, slots[i]!, 1, k, e).params * bytes) / MB,
  );
}

/** Cheapest value of a flat model over a space (exact: separable per slot, depth as an active prefix). */
export function flatMinimum(m: EfficiencyModel, space: Space): { value: number; cfg: SubnetConfig } {
  let best = Infinity;
  let bestCfg: SubnetConfig | undefined;
  const ksIdx = space.ks_list.map((k) => m.ksList.indexOf(k));
  const eIdx = space.expand_list.map((e) => m.expandList.indexOf(e));
  for (const r of space.image_size_list) {
    const ri = m.resolutions.indexOf(r);
    if (ri < 0) continue;
    const ks = new Array<number>(space.nSlots).fill(space.ks_list[0]!);
    const e = new Array<number>(space.nSlots).fill(space.expand_list[0]!);
    const d: number[] = [];
    let sum = m.fixed[ri]!;
    for (let s = 0; s < space.n_stage; s++) {
      let prefix = 0;
      let stageBest = Infinity;
      let stageDepth = space.depth_list[0]!;
      const choice: [number, number][] = [];
      const blocks = space.stageBlocks[s]!;
      const depths = space.depthChoices(s).map((x) => Math.min(x, blocks));
      for (let j = 0; j < blocks; j++) {
        const i = space.stageStart[s]! + j;
        let c = Infinity;
        let arg: [number, number] = [space.ks_list[0]!, space.expand_list[0]!];
        space.ks_list.forEach((k, a) =>
          space.expand_list.forEach((x, b) => {
            const v = m.slot[flatIndex(m, ri, i, ksIdx[a]!, eIdx[b]!)]!;
            if (v < c) {
              c = v;
              arg = [k, x];
            }
          }),
        );
        choice.push(arg);
        prefix += c;
        if (depths.includes(j + 1) && prefix < stageBest) {
          stageBest = prefix;
          stageDepth = j + 1;
        }
      }
      d.push(stageDepth);
      for (let j = 0; j < stageDepth; j++) {
        ks[space.stageStart[s]! + j] = choice[j]![0];
        e[space.stageStart[s]! + j] = choice[j]![1];
      }
      sum += stageBest;
    }
    const value = m.calibration ? m.calibration.a * sum + m.calibration.b : sum;
    if (value < best) {
      best = value;
      bestCfg = space.canonical({ ks, e, d, image_size: r });
    }
  }
  if (!bestCfg) throw new NestswapError('ERR_CONFIG_INVALID', `No resolution of the space is in the ${m.unit} table.`);
  return { value: best, cfg: bestCfg };
}
