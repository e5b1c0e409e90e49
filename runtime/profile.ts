/**
 * Device profiles (format `nestswap.profile/1`): what an agent measured on one device, one execution
 * provider and one thread count — a part latency table, its calibration against whole subnets, the
 * validation on held-out subnets, and a memory model — plus the latency and memory predictors the
 * search uses (additive `EfficiencyModel`s), OFA LUT export/import, and the statistics used to judge
 * predictors. Platform-neutral: file access is the caller's.
 */
import { z } from 'zod';
import { blockSlots, headWidth, midChannels, seChannels, type Arch } from './arch.js';
import { blockCost, fixedCost, headCost, slotInputSizes } from './cost.js';
import { NestswapError } from './errors.js';
import { flatLatencyModel, subnetLatencyKeys, type LatencyTable, type LatencyTables } from './latency-table.js';
import { enumerateParts } from './parts.js';
import {
  evaluateFlat,
  flatIndex,
  validateEfficiencyModel,
  type EfficiencyModel,
  type LatencyPredictor,
  type MemoryPredictor,
} from './search/efficiency.js';
import type { SubnetConfig } from './space.js';

export const PROFILE_FORMAT = 'nestswap.profile/1';

const finite = z.number().finite();
const nonNeg = z.number().finite().nonnegative();

const Sample = z.object({ id: z.string(), measured: nonNeg, predicted: nonNeg }).strict();

const Stats = z
  .object({
    subnets: z.number().int().nonnegative(),
    mape: nonNeg,
    within10: z.number().min(0).max(1),
    kendallTau: z.number().min(-1).max(1).nullable(),
    maxAbsPctErr: nonNeg,
    samples: z.array(Sample),
  })
  .strict();

/** An EfficiencyModel as JSON (arrays as lists), the form the registry and the search read. */
const FlatModel = (unit: string) =>
  z
    .object({
      unit: z.literal(unit),
      resolutions: z.array(z.number().int().positive()).min(1),
      ksList: z.array(z.number().int().positive()).min(1),
      expandList: z.array(z.number().positive()).min(1),
      nSlots: z.number().int().positive(),
      maxDepth: z.number().int().positive(),
      fixed: z.array(finite),
      slot: z.array(finite),
      calibration: z.object({ a: z.number().finite().positive(), b: finite }).strict().optional(),
    })
    .strict();

export type FlatModelJson = z.infer<ReturnType<typeof FlatModel>>;

/**
 * Top-level `fingerprint`, `deviceClass`, `ep`, `threads` and `latency.model` / `memory.model` are
 * what other readers (the registry) rely on; the rest records how the numbers were obtained.
 */
export const ProfileSchema = z
  .object({
    format: z.literal(PROFILE_FORMAT),
    created: z.string(),
    fingerprint: z.string().regex(/^[0-9a-f]{16,64}$/),
    deviceClass: z.string().min(1),
    /** device facts at profiling time (informative) */
    device: z.record(z.string(), z.unknown()).optional(),
    backend: z.string(),
    ortVersion: z.string().min(1),
    ep: z.string().min(1),
    threads: z.number().int().nonnegative(),
    graphOptimizationLevel: z.enum(['disabled', 'basic', 'extended', 'all']),
    supernet: z.object({ name: z.string(), family: z.string(), weightsDigest: z.string().regex(/^[0-9a-f]{64}$/) }).strict(),
    method: z
      .object({
        warmup: z.number().int().nonnegative(),
        runs: z.number().int().positive(),
        subnetRuns: z.number().int().positive(),
        /** whole-subnet passes measured (more than one when the validation missed its gate) */
        subnetPasses: z.number().int().positive().optional(),
        /** statistic of the run times: 0.5 = median */
        quantile: z.number().min(0).max(1),
        baselineMs: nonNeg,
        measuredResolutions: z.array(z.number().int().positive()).min(1),
        interpolation: z.string(),
        /** how runs were scheduled (profiler revision 3: interleaved rounds) */
        timing: z.string().optional(),
        wallMs: nonNeg,
      })
      .strict(),
    parts: z.array(
      z.object({ key: z.string(), kind: z.enum(['pre', 'block', 'head']), ms: nonNeg, count: z.number().int().nonnegative(), var: nonNeg }).strict(),
    ),
    latency: z
      .object({
        /** calibrated additive model: ms ≈ a · (fixed[r] + Σ slot) + b */
        model: FlatModel('ms').required({ calibration: true }),
        /** fixed = pre + head per resolution, kept apart for the OFA LUT export */
        pre: z.array(nonNeg),
        head: z.array(nonNeg),
        calibrationSamples: z.array(Sample),
      })
      .strict(),
    validation: Stats,
    memory: z
      .object({
        model: FlatModel('MB'),
        coef: z.object({ weights: nonNeg, activations: nonNeg, overheadMB: finite }).strict(),
        overheadMB: finite,
        fitSamples: z.array(Sample),
        validation: Stats.nullable(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type Profile = z.infer<typeof ProfileSchema>;
export type ProfileStats = z.infer<typeof Stats>;
export type ProfileSample = z.infer<typeof Sample>;

/** What must match for a cached profile to be reused. */
export interface ProfileKey {
  fingerprint: string;
  ortVersion: string;
  ep: string;
  threads: number;
  weightsDigest: string;
}

const invalid = (msg: string, cause?: unknown) =>
  new NestswapError('ERR_PROFILE_INVALID', msg, cause === undefined ? undefined : { cause });

/** Parses and checks a profile (from a file, the network, …); anything else is ERR_PROFILE_INVALID. */
export function parseProfile(value: unknown, source = 'profile'): Profile {
  const r = ProfileSchema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw invalid(`Invalid ${source}: ${issues}`);
  }
  const p = r.data;
  // shapes must agree, or the predictors would read past the tables
  validateEfficiencyModel(latencyModel(p), `${source} latency model`);
  if (p.latency.pre.length !== p.latency.model.resolutions.length || p.latency.head.length !== p.latency.model.resolutions.length)
    throw invalid(`Invalid ${source}: latency.pre/head need one value per resolution.`);
  if (p.memory) validateEfficiencyModel(memoryModel(p)!, `${source} memory model`);
  return p;
}

/** Parses profile JSON text. */
export function parseProfileText(text: string, source = 'profile'): Profile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw invalid(`Invalid ${source}: not JSON (${(cause as Error).message}).`, cause);
  }
  return parseProfile(v, source);
}

export function serializeProfile(p: Profile): string {
  return `${JSON.stringify(p, null, 1)}\n`;
}

/** Throws ERR_PROFILE_INVALID when the profile was measured for other weights (a foreign profile). */
export function checkProfileFor(p: Profile, supernet: { weightsDigest: string; name: string }, source = 'profile'): Profile {
  if (p.supernet.weightsDigest !== supernet.weightsDigest)
    throw invalid(
      `The ${source} was measured for supernet '${p.supernet.name}' (weights ${p.supernet.weightsDigest.slice(0, 12)}…), not '${supernet.name}' (weights ${supernet.weightsDigest.slice(0, 12)}…).`,
    );
  return p;
}

/** Reasons a cached profile cannot be reused for `key` (empty when it can). */
export function profileMismatch(p: Profile, key: ProfileKey): string[] {
  const why: string[] = [];
  if (p.fingerprint !== key.fingerprint) why.push(`device fingerprint ${p.fingerprint} != ${key.fingerprint}`);
  if (p.ortVersion !== key.ortVersion) why.push(`onnxruntime ${p.ortVersion} != ${key.ortVersion}`);
  if (p.ep !== key.ep) why.push(`execution provider ${p.ep} != ${key.ep}`);
  if (p.threads !== key.threads) why.push(`threads ${p.threads} != ${key.threads}`);
  if (p.supernet.weightsDigest !== key.weightsDigest) why.push('supernet weights differ');
  return why;
}

/** JSON form → EfficiencyModel. */
export function modelFromJson(m: FlatModelJson): EfficiencyModel {
  return {
    unit: m.unit,
    resolutions: m.resolutions,
    ksList: m.ksList,
    expandList: m.expandList,
    nSlots: m.nSlots,
    maxDepth: m.maxDepth,
    fixed: Float64Array.from(m.fixed),
    slot: Float64Array.from(m.slot),
    ...(m.calibration ? { calibration: { ...m.calibration } } : {}),
  };
}

export function modelToJson(m: EfficiencyModel): FlatModelJson {
  return {
    unit: m.unit,
    resolutions: [...m.resolutions],
    ksList: [...m.ksList],
    expandList: [...m.expandList],
    nSlots: m.nSlots,
    maxDepth: m.maxDepth,
    fixed: Array.from(m.fixed),
    slot: Array.from(m.slot),
    ...(m.calibration ? { calibration: { ...m.calibration } } : {}),
  };
}

/** The calibrated additive latency model (ms) of a profile. */
export function latencyModel(p: Profile): EfficiencyModel {
  return modelFromJson(p.latency.model);
}

export function memoryModel(p: Profile): EfficiencyModel | undefined {
  return p.memory ? modelFromJson(p.memory.model) : undefined;
}

/** Predicts the median batch-1 latency of a fresh session of a subnet with the profile's EP and threads. */
export function profileLatencyPredictor(p: Profile): LatencyPredictor {
  const m = validateEfficiencyModel(latencyModel(p), 'profile latency model');
  return { flat: m, latencyMs: (cfg: SubnetConfig) => evaluateFlat(m, cfg) };
}

/** Predicts MB a subnet's session needs (weights + activations + runtime overhead), or undefined without a memory model. */
export function profileMemoryPredictor(p: Profile): MemoryPredictor | undefined {
  const m = memoryModel(p);
  if (!m) return undefined;
  validateEfficiencyModel(m, 'profile memory model');
  return { flat: m, memoryMB: (cfg: SubnetConfig) => evaluateFlat(m, cfg) };
}

// ---------------------------------------------------------------------------------------------
// Building the latency tables from part measurements

export interface PartTime {
  ms: number;
  count: number;
  var: number;
}

/**
 * Per-resolution tables over `resolutions` from part times measured at `measured` resolutions.
 * A part already measured (same key: same shapes) is used as is; any other part is interpolated
 * linearly in its input pixel count between the same part (same slot and choices) at the two
 * nearest measured resolutions — cost of a conv block is close to linear in its pixels.
 */
export function latencyTables(
  arch: Arch,
  times: ReadonlyMap<string, PartTime>,
  measured: readonly number[],
  resolutions: readonly number[],
): { pre: number[]; head: number[]; slot: Float64Array; ksList: number[]; expandList: number[]; nSlots: number; maxDepth: number } {
  const ms = [...new Set(measured)].sort((a, b) => a - b);
  const all = enumerateParts(arch, [...new Set([...ms, ...resolutions])]);
  const { ksList, expandList } = all;
  const maxDepth = Math.max(...arch.space.depth_list);
  const nSlots = arch.stages.length * maxDepth;
  const px = new Map<number, number[]>(); // input pixel counts per part position at a resolution
  const pixels = (r: number) => {
    let v = px.get(r);
    if (!v) px.set(r, (v = slotInputSizes(arch, r).map((s) => s * s)));
    return v;
  };
  const time = (key: string): number | undefined => times.get(key)?.ms;
  const need = (key: string, r: number): number => {
    const t = time(key);
    if (t === undefined) throw new NestswapError('ERR_PROFILE_INVALID', `No measurement for part '${key}' at measured resolution ${r}.`);
    return t;
  };
  // brackets: the two measured resolutions to interpolate between
  const bracket = (r: number): [number, number] => {
    if (ms.length === 1) return [ms[0]!, ms[0]!];
    let hi = ms.findIndex((m) => m >= r);
    if (hi <= 0) hi = hi === 0 ? 1 : ms.length - 1;
    return [ms[hi - 1]!, ms[hi]!];
  };
  const interp = (x: number, x1: number, t1: number, x2: number, t2: number) => {
    if (x2 === x1) return (t1 + t2) / 2;
    return Math.max(0, t1 + ((t2 - t1) * (x - x1)) / (x2 - x1));
  };
  const pre: number[] = [];
  const head: number[] = [];
  const slot = new Float64Array(resolutions.length * nSlots * ksList.length * expandList.length);
  resolutions.forEach((r, ri) => {
    const parts = all.byResolution.get(r)!;
    const [r1, r2] = bracket(r);
    const p1 = all.byResolution.get(r1)!;
    const p2 = all.byResolution.get(r2)!;
    const x = pixels(r);
    const x1 = pixels(r1);
    const x2 = pixels(r2);
    const get = (key: string, k1: string, k2: string, xi: number, xi1: number, xi2: number) =>
      time(key) ?? interp(xi, xi1, need(k1, r1), xi2, need(k2, r2));
    // pre scales with the resize output (r²), head with the last feature map
    pre.push(get(parts.pre, p1.pre, p2.pre, r * r, r1 * r1, r2 * r2));
    head.push(get(parts.head, p1.head, p2.head, x[x.length - 1]!, x1[x1.length - 1]!, x2[x2.length - 1]!));
    for (let i = 0; i < nSlots; i++)
      ksList.forEach((_k, ki) =>
        expandList.forEach((_e, ei) => {
          const idx = ((ri * nSlots + i) * ksList.length + ki) * expandList.length + ei;
          slot[idx] = get(parts.blocks[i]![ki]![ei]!, p1.blocks[i]![ki]![ei]!, p2.blocks[i]![ki]![ei]!, x[i]!, x1[i]!, x2[i]!);
        }),
      );
  });
  return { pre, head, slot, ksList, expandList, nSlots, maxDepth };
}

/** Uncalibrated sum of a subnet's parts from the profile's tables. */
export function rawLatencySum(p: Profile, cfg: SubnetConfig): number {
  const { calibration: _c, ...rest } = latencyModel(p);
  return evaluateFlat(rest, cfg);
}

// ---------------------------------------------------------------------------------------------
// Memory model: MB = weights · fp32 weight MB + activations · peak live activation MB + overhead

/** fp32 MB of a subnet's weights and biases as deployed (BN folded: one bias per conv output channel). */
export function weightsMB(arch: Arch, cfg: SubnetConfig): number {
  let n = fixedWeights(arch);
  blockSlots(arch).forEach((s, i) => {
    if (s.position < cfg.d[s.stage]!) n += blockWeights(arch, i, cfg.ks[i]!, cfg.e[i]!);
  });
  return (n * 4) / MB;
}

const MB = 1024 * 1024;

function fixedWeights(arch: Arch): number {
  const f = fixedCost(arch, arch.input.height).params + headCost(arch, 1).params;
  // folded-BN biases of stem, first block (dw + proj) and final expand, plus the classifier bias
  return f + arch.stem.out * 2 + arch.first_block.out + arch.final_expand + arch.classes;
}

function blockWeights(arch: Arch, i: number, ks: number, e: number): number {
  const slot = blockSlots(arch)[i]!;
  const mid = midChannels(arch, slot.inChannels, e);
  // folded biases of expand, depthwise and projection, plus the SE convs' biases
  const biases = 2 * mid + slot.outChannels + (slot.se ? seChannels(arch, mid) + mid : 0);
  return blockCost(arch, slot, 1, ks, e).params + biases;
}

/**
 * Peak MB of activations live at once for a subnet (batch 1, fp32): the largest pair of a node's
 * inputs and output along the chain (residual inputs included), which bounds ORT's planned arena.
 */
export function peakActivationMB(arch: Arch, cfg: SubnetConfig): number {
  return peakActivationFloats(arch, cfg, false) * 4 / MB;
}

function peakActivationFloats(arch: Arch, cfg: SubnetConfig | undefined, upper: boolean, r = cfg?.image_size ?? 0): number {
  const slots = blockSlots(arch);
  const sizes = slotInputSizes(arch, r);
  const eMax = Math.max(...arch.space.expand_list);
  const c0 = arch.input.channels;
  const stemOut = fixedCost(arch, r).blockInSize;
  const stemSize = Math.floor((r + 2 * Math.floor(arch.stem.kernel / 2) - arch.stem.kernel) / arch.stem.stride) + 1;
  let peak = arch.input.height * arch.input.width * c0 + r * r * c0;
  peak = Math.max(peak, r * r * c0 + stemSize * stemSize * arch.stem.out, stemSize * stemSize * arch.stem.out + stemOut * stemOut * arch.first_block.out * 2);
  slots.forEach((s, i) => {
    const active = cfg ? s.position < cfg.d[s.stage]! : true;
    if (!active) return;
    const e = upper || !cfg ? eMax : cfg.e[i]!;
    const mid = midChannels(arch, s.inChannels, e);
    const hin = sizes[i]! * sizes[i]!;
    const hout = sizes[i + 1]! * sizes[i + 1]!;
    const res = s.residual ? hin * s.inChannels : 0;
    peak = Math.max(peak, res + hin * s.inChannels + hin * mid, res + hin * mid + hout * mid, res + hout * mid + hout * s.outChannels);
  });
  const last = sizes[sizes.length - 1]!;
  return Math.max(peak, last * last * (arch.stages[arch.stages.length - 1]!.width + arch.final_expand));
}

/** Upper bound of the peak over every subnet at resolution r (widest choices): the flat model's activation term. */
export function peakActivationBoundMB(arch: Arch, r: number): number {
  return peakActivationFloats(arch, undefined, true, r) * 4 / MB;
}

export interface MemoryCoefficients {
  weights: number;
  activations: number;
  overheadMB: number;
}

/**
 * The memory model as an additive table: weights are additive per block; the activation term uses
 * the per-resolution upper bound, so the flat model never under-predicts because of that term (the
 * search stays on the safe side of a memory budget).
 */
export function buildMemoryModel(arch: Arch, resolutions: readonly number[], coef: MemoryCoefficients): {
  fixed: number[];
  slot: number[];
  ksList: number[];
  expandList: number[];
  nSlots: number;
  maxDepth: number;
} {
  const ksList = [...arch.space.ks_list].sort((a, b) => a - b);
  const expandList = [...arch.space.expand_list].sort((a, b) => a - b);
  const maxDepth = Math.max(...arch.space.depth_list);
  const nSlots = arch.stages.length * maxDepth;
  const fixed = resolutions.map((r) => coef.weights * ((fixedWeights(arch) * 4) / MB) + coef.activations * peakActivationBoundMB(arch, r) + coef.overheadMB);
  const slot: number[] = [];
  for (let ri = 0; ri < resolutions.length; ri++)
    for (let i = 0; i < nSlots; i++) for (const k of ksList) for (const e of expandList) slot.push(coef.weights * ((blockWeights(arch, i, k, e) * 4) / MB));
  return { fixed, slot, ksList, expandList, nSlots, maxDepth };
}

// ---------------------------------------------------------------------------------------------
// OFA LUT export / import

/** Splits a total proportionally to weights (all equal when the weights sum to zero). */
function split(total: number, weights: number[]): number[] {
  const s = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => (s > 0 ? (total * w) / s : total / weights.length));
}

/**
 * The profile as OFA `<r>_lookup_table.yaml` tables (one per resolution). Our fixed parts are timed
 * as two units (pre = resize + normalise + stem + first block; head = final expand + pool + mix +
 * classifier); they are split across OFA's part keys in proportion to MACs (the pool by its element
 * count), so the sum — what OFA's estimator uses — is exact. Calibration, EP, threads, ORT version
 * and the device fingerprint go into `_`-prefixed keys, which OFA readers ignore.
 */
export function profileToLatencyTables(p: Profile, arch: Arch): Map<number, LatencyTable> {
  const m = latencyModel(p);
  const md = m.maxDepth;
  const tables = new Map<number, LatencyTable>();
  const meta = {
    _format: 'nestswap.lut/1',
    _calibration: { ...p.latency.model.calibration },
    _ep: p.ep,
    _threads: p.threads,
    _ort_version: p.ortVersion,
    _graph_optimization: p.graphOptimizationLevel,
    _device_fingerprint: p.fingerprint,
    _device_class: p.deviceClass,
    _supernet: p.supernet.name,
    _weights_sha256: p.supernet.weightsDigest,
  };
  m.resolutions.forEach((r, ri) => {
    const entries = new Map<string, { count: number; mean: number; var: number }>();
    const sizes = slotInputSizes(arch, r);
    const last = sizes[sizes.length - 1]!;
    m.ksList.forEach((k, ki) =>
      m.expandList.forEach((e, ei) => {
        const cfg: SubnetConfig = {
          ks: new Array<number>(m.nSlots).fill(k),
          e: new Array<number>(m.nSlots).fill(e),
          d: new Array<number>(arch.stages.length).fill(md),
          image_size: r,
        };
        const keys = subnetLatencyKeys(arch, cfg);
        if (ki === 0 && ei === 0) {
          const stemSize = Math.floor((r + 2 * Math.floor(arch.stem.kernel / 2) - arch.stem.kernel) / arch.stem.stride) + 1;
          const stemMacs = stemSize * stemSize * arch.input.channels * arch.stem.kernel ** 2 * arch.stem.out;
          const fbMacs = fixedCost(arch, r).macs - stemMacs;
          const [conv, fb] = split(p.latency.pre[ri]!, [stemMacs, fbMacs]);
          entries.set(keys[0]!, { count: 1, mean: conv!, var: 0 });
          entries.set(keys[1]!, { count: 1, mean: fb!, var: 0 });
          const lastC = arch.stages[arch.stages.length - 1]!.width;
          const fe = arch.final_expand;
          const hw = [last * last * lastC * fe, last * last * fe, ...(arch.feature_mix === null ? [] : [fe * arch.feature_mix]), headWidth(arch) * arch.classes];
          const hs = split(p.latency.head[ri]!, hw);
          keys.slice(2 + m.nSlots).forEach((key, j) => entries.set(key, { count: 1, mean: hs[j]!, var: 0 }));
        }
        for (let i = 0; i < m.nSlots; i++) entries.set(keys[2 + i]!, { count: 1, mean: m.slot[flatIndex(m, ri, i, ki, ei)]!, var: 0 });
      }),
    );
    tables.set(r, { resolution: r, entries, meta });
  });
  return tables;
}

/**
 * A latency predictor from OFA-format tables (ours or OFA's): calibration from our `_calibration`
 * key when present, else none (OFA's plain sum of means).
 */
export function latencyPredictorFromTables(tables: LatencyTables, arch: Arch): LatencyPredictor {
  const first = tables.values().next().value as LatencyTable | undefined;
  const c = first?.meta?._calibration as { a?: unknown; b?: unknown } | undefined;
  const calibration = c && typeof c.a === 'number' && typeof c.b === 'number' ? { a: c.a, b: c.b } : undefined;
  const m = flatLatencyModel(tables, arch, undefined, calibration);
  validateEfficiencyModel(m, 'latency tables');
  return { flat: m, latencyMs: (cfg) => evaluateFlat(m, cfg) };
}

// ---------------------------------------------------------------------------------------------
// Statistics

/**
 * Least squares y ≈ a·x + b in relative error (weights 1/y² when every y is positive): the targets are
 * relative (MAPE, within ±10 %), and a plain fit lets the slowest subnets pull the line off the fastest
 * ones (the smallest fmnist-ofa subnet was predicted 10 % low with it). Falls back to a pure scale
 * (b = 0) with fewer than 3 points, when the slope is ≤ 0, when x has no spread, or when the line
 * predicts less than half of what a pure scale through the smallest calibration point would at
 * `xFloor` — the smallest x any subnet can have (default: the smallest calibration x). A steep line
 * through noisy timings of tiny subnets can cross zero just below the calibration points, and a budget
 * search must never see a subnet predicted to take no time.
 */
export function fitLinear(x: readonly number[], y: readonly number[], xFloor?: number): { a: number; b: number } {
  const n = x.length;
  if (n === 0) return { a: 1, b: 0 };
  const w = y.every((v) => v > 0) ? y.map((v) => 1 / (v * v)) : y.map(() => 1);
  const sw = w.reduce((s, v) => s + v, 0);
  const mx = x.reduce((s, v, i) => s + w[i]! * v, 0) / sw;
  const my = y.reduce((s, v, i) => s + w[i]! * v, 0) / sw;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += w[i]! * (x[i]! - mx) ** 2;
    sxy += w[i]! * (x[i]! - mx) * (y[i]! - my);
  }
  const a = sxx > 0 ? sxy / sxx : 0;
  if (n >= 3 && a > 0 && Number.isFinite(a)) {
    const b = my - a * mx;
    let lo = 0;
    for (let i = 1; i < n; i++) if (x[i]! < x[lo]!) lo = i;
    const floor = Math.min(xFloor ?? x[lo]!, x[lo]!);
    const scaleAtFloor = x[lo]! > 0 ? (y[lo]! / x[lo]!) * floor : y[lo]!;
    const atFloor = a * floor + b;
    if (atFloor >= 0.5 * scaleAtFloor && atFloor > 0) return { a, b };
  }
  // the scale through the origin with the least squared relative error (the least squared error when unweighted)
  let sxyw = 0;
  let sxxw = 0;
  for (let i = 0; i < n; i++) {
    sxyw += w[i]! * x[i]! * y[i]!;
    sxxw += w[i]! * x[i]! * x[i]!;
  }
  const scale = sxxw > 0 ? sxyw / sxxw : 1;
  return { a: scale > 0 ? scale : 1, b: 0 };
}

/** Kendall's τ-b (ties handled); null with fewer than two points or no spread. */
export function kendallTau(x: readonly number[], y: readonly number[]): number | null {
  let c = 0;
  let d = 0;
  let tx = 0;
  let ty = 0;
  for (let i = 0; i < x.length; i++)
    for (let j = i + 1; j < x.length; j++) {
      const a = Math.sign(x[i]! - x[j]!);
      const b = Math.sign(y[i]! - y[j]!);
      if (a === 0 && b === 0) continue;
      if (a === 0) tx++;
      else if (b === 0) ty++;
      else if (a === b) c++;
      else d++;
    }
  const den = Math.sqrt((c + d + tx) * (c + d + ty));
  return den > 0 ? (c - d) / den : null;
}

/** MAPE, share within ±10 %, Kendall τ and worst error of predictions against measurements. */
export function predictionStats(samples: readonly ProfileSample[]): ProfileStats {
  const errs = samples.map((s) => Math.abs(s.predicted - s.measured) / Math.max(s.measured, 1e-9));
  const n = samples.length;
  return {
    subnets: n,
    mape: n ? errs.reduce((a, b) => a + b, 0) / n : 0,
    within10: n ? errs.filter((e) => e <= 0.1).length / n : 0,
    kendallTau: kendallTau(
      samples.map((s) => s.measured),
      samples.map((s) => s.predicted),
    ),
    maxAbsPctErr: n ? Math.max(...errs) * 100 : 0,
    samples: [...samples],
  };
}

/** Linear-interpolated quantile q ∈ [0, 1]. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = Math.min(Math.max(q, 0), 1) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function variance(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1);
}
