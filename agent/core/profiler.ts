/**
 * On-device latency profiling, platform-neutral (backend and memory meter are injected;
 * agent/profiler.ts adds onnxruntime-node, child-process memory measurement and the profile cache):
 * times every distinct part of the space as it will run (same ORT, EP, graph optimisation 'all',
 * threads), calibrates the part sums against whole subnets (`measured ≈ a·Σparts + b`) and
 * validates on held-out random subnets.
 *
 * Timing is done from outside (`performance.now()` around `run()`), never with ORT's profiler,
 * which inflates times. Each isolated part pays the fixed JS↔native cost of one `run()`, which a
 * whole subnet pays once: that cost (an almost empty graph's median) is subtracted from every part
 * but 'pre', which carries it for the whole network.
 */
import { NestswapError } from '../../runtime/errors.js';
import { buildSubnet, SubnetWeights, type BuildOptions } from '../../runtime/materialize.js';
import type { SupernetPackage } from '../../runtime/package.js';
import { buildBaselineGraph, buildPartGraph, enumerateParts, type PartKind } from '../../runtime/parts.js';
import {
  buildMemoryModel,
  fitLinear,
  latencyTables,
  median,
  quantile,
  modelToJson,
  parseProfileText,
  predictionStats,
  PROFILE_FORMAT,
  profileMismatch,
  serializeProfile,
  variance,
  type Profile,
  type ProfileKey,
  type ProfileSample,
  type PartTime,
} from '../../runtime/profile.js';
import { mulberry32 } from '../../runtime/random.js';
import { evaluateFlat, flatMinimum } from '../../runtime/search/efficiency.js';
import { ModelSession, type Backend } from '../../runtime/session.js';
import type { Arch } from '../../runtime/arch.js';
import type { MemoryCoefficients } from '../../runtime/profile.js';
import type { SubnetConfig } from '../../runtime/space.js';


/** Measures and fits session memory (agent/memory.ts under Node). */
export interface MemoryMeter {
  measure(bytes: Uint8Array, dims: readonly number[], o: { ep: string; threads: number }): Promise<{ deltaMB: number }>;
  fit(arch: Arch, samples: { cfg: SubnetConfig; mb: number }[]): { coef: MemoryCoefficients & { overheadMB: number }; predict(cfg: SubnetConfig): number };
}

export interface DeviceIdentity {
  fingerprint: string;
  deviceClass: string;
  facts?: Record<string, unknown>;
}

export interface TimingOptions {
  ep: string;
  threads: number;
  warmup: number;
  runs: number;
  /** statistic of the run times reported as `ms` (0.5 = median; lower is steadier on a busy CPU) */
  quantile?: number;
  /** stops the measurement (between visits) with the signal's reason: an agent shutting down does not wait for a profile */
  signal?: AbortSignal | undefined;
}

export interface Timing {
  /** the `quantile` of the run times (median by default) */
  ms: number;
  medianMs: number;
  p10Ms: number;
  varMs2: number;
  count: number;
  createMs: number;
}

export interface ProfileProgress {
  phase: 'baseline' | 'parts' | 'calibration' | 'validation' | 'memory';
  done: number;
  total: number;
}

export interface ProfileOptions {
  device: DeviceIdentity;
  ep?: string;
  /** stops the profile (within one visit of a part or subnet) with the signal's reason */
  signal?: AbortSignal;
  /** intra-op threads (default 1: the most stable timings on a shared CPU) */
  threads?: number;
  /** resolutions whose parts are measured (default: `defaultMeasuredResolutions`); the rest are interpolated */
  resolutions?: readonly number[];
  warmup?: number;
  /** timed runs per part */
  runs?: number;
  /** statistic of run times (default 0.5, the median) */
  quantile?: number;
  /**
   * timed runs per whole subnet (calibration, validation). Default: as many as give the pass ~15 s of
   * timed runs (20..400 per subnet). The calibration pass sets the level of every prediction, and on a
   * shared CPU the speed moves by 5-10 % over tens of seconds: a pass over sub-millisecond subnets that
   * lasts 0.2 s would take one moment's speed for the machine's.
   */
  subnetRuns?: number;
  /**
   * when the held-out validation misses this (default MAPE 5%, 90% within ±10%), the whole-subnet pass is
   * measured again, up to `maxSubnetPasses` (default 3) passes, combined by their median
   */
  validationGate?: { mape: number; within10: number };
  maxSubnetPasses?: number;
  /** whole subnets timed to fit measured ≈ a·Σparts + b (default 16: min, max and random ones) */
  calibrationSubnets?: number;
  validationSubnets?: number;
  /** subnets measured in child processes to fit the memory model (0 = no memory model) */
  memorySubnets?: number;
  seed?: number;
  /** how the graphs are written (the same as the agent serves: e.g. the wasm provider's depthwise lowering) */
  graph?: Pick<BuildOptions, 'depthwiseMatMul'>;
  backend?: Backend;
  /** measures one subnet's session memory (Node: a child process); without it no memory model is fitted */
  memory?: MemoryMeter;
  onProgress?: (p: ProfileProgress) => void;
}

/** Every `step`-th resolution, endpoints always included, at most `max` of them. */
export function defaultMeasuredResolutions(list: readonly number[], max = 7): number[] {
  const s = [...list].sort((a, b) => a - b);
  if (s.length <= max) return s;
  const out = new Set<number>();
  for (let i = 0; i < max; i++) out.add(s[Math.round((i * (s.length - 1)) / (max - 1))]!);
  return [...out].sort((a, b) => a - b);
}

/** Deterministic input in [0, 1) (zeros can hit fast paths real inputs never take). */
function inputOf(dims: readonly number[]): Float32Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const rng = mulberry32(n);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng();
  return x;
}

/** One timed sample of a model: milliseconds of one `run()` (or a paired difference of two). */
export type Sampler = () => Promise<number>;

export interface InterleaveOptions {
  /** visits per model; each visit is `visitWarmup` untimed runs and `perVisit` timed samples */
  rounds: number;
  perVisit: number;
  /**
   * untimed runs at the start of each visit: the caches hold another model's weights, and a small model's
   * first runs after a switch are slow (fmnist-ofa subnets here: 0.72, 0.47, 0.39 ms, then 0.37 steady).
   * At least one, then more until `visitWarmupMs` of them have run or `visitWarmup` (default 3) is reached:
   * a model that takes milliseconds a run is warm after one.
   */
  visitWarmup?: number | undefined;
  /** default 2 */
  visitWarmupMs?: number | undefined;
  /** untimed runs per model before the first round */
  warmup: number;
  /** statistic of a visit's samples (0.5 = median) */
  quantile?: number | undefined;
  /** seed of the visiting order, shuffled every round */
  seed?: number | undefined;
  onRound?: ((done: number, total: number) => void) | undefined;
  /** checked before every visit */
  signal?: AbortSignal | undefined;
}

export interface InterleavedTimings {
  timings: Omit<Timing, 'createMs'>[];
  /** each round's speed relative to the whole pass (median over models of visit / estimate) */
  roundFactors: number[];
}

/**
 * Times several models in interleaved rounds instead of one after another. On a shared CPU the speed
 * moves by 10-30 % over seconds; timing models back to back gives each the speed of its own moment, so
 * two passes over the same subnets disagree by more than the subnets differ. Visiting every model once
 * per round (in a freshly shuffled order) spreads slow moments over all of them, and dividing each
 * round by its speed factor (the median ratio of that round's visits to the models' estimates) removes
 * what is left of a level shift. A model's figure is the median over rounds of its normalised visits.
 */
export async function timeInterleaved(samplers: readonly Sampler[], o: InterleaveOptions): Promise<InterleavedTimings> {
  const n = samplers.length;
  const rounds = Math.max(1, Math.floor(o.rounds));
  const perVisit = Math.max(1, Math.floor(o.perVisit));
  const q = o.quantile ?? 0.5;
  const visitWarmup = Math.max(0, Math.floor(o.visitWarmup ?? 3));
  const visitWarmupMs = o.visitWarmupMs ?? 2;
  for (const sample of samplers) {
    o.signal?.throwIfAborted();
    for (let i = 0; i < o.warmup; i++) await sample();
  }
  const rng = mulberry32(o.seed ?? 1);
  const visitQ: number[][] = samplers.map(() => []);
  const visitMed: number[][] = samplers.map(() => []);
  const raw: number[][] = samplers.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const order = [...samplers.keys()];
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const i of order) {
      o.signal?.throwIfAborted();
      let warmMs = 0;
      for (let k = 0; k < visitWarmup && (k === 0 || warmMs < visitWarmupMs); k++) warmMs += Math.abs(await samplers[i]!());
      const xs: number[] = [];
      for (let k = 0; k < perVisit; k++) xs.push(await samplers[i]!());
      visitQ[i]!.push(quantile(xs, q));
      visitMed[i]!.push(median(xs));
      raw[i]!.push(...xs);
    }
    o.onRound?.(r + 1, rounds);
  }
  const first = visitQ.map((v) => median(v));
  const scale = Math.max(...first.map(Math.abs), 0);
  const roundFactors: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // models whose figure is near zero (paired differences of tiny parts) say nothing about speed
    const ratios = visitQ.flatMap((v, i) => (first[i]! > 0.05 * scale ? [v[r]! / first[i]!] : []));
    const f = ratios.length ? median(ratios) : 1;
    roundFactors.push(Number.isFinite(f) && f > 0 ? f : 1);
  }
  const timings = samplers.map((_, i) => {
    const norm = (v: number[]) => median(v.map((x, r) => x / roundFactors[r]!));
    const all = raw[i]!.map((x, k) => x / roundFactors[Math.floor(k / perVisit)]!);
    return { ms: norm(visitQ[i]!), medianMs: norm(visitMed[i]!), p10Ms: quantile(all, 0.1), varMs2: variance(raw[i]!), count: raw[i]!.length };
  });
  return { timings, roundFactors };
}

/** Rounds and samples per visit for `runs` timed runs of each model (at most `rounds` rounds). */
export function interleavePlan(runs: number, rounds = 10): { rounds: number; perVisit: number } {
  const r = Math.max(1, Math.min(rounds, Math.floor(runs)));
  return { rounds: r, perVisit: Math.max(1, Math.round(runs / r)) };
}

/** Timed runs per model that add up to about `budgetMs` at `typicalMs` a run, held within [min, max]. */
export function runsForBudget(budgetMs: number, typicalMs: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.round(budgetMs / Math.max(typicalMs, 1e-3))));
}

const fmtPlan = (p: { rounds: number; perVisit: number }) => `${p.rounds} rounds × ${p.perVisit} runs`;

function runSampler(s: ModelSession, dims: readonly number[]): Sampler {
  const x = inputOf(dims);
  const out = [s.outputNames[0]!];
  return async () => {
    const t = performance.now();
    await s.run(x, dims, out);
    return performance.now() - t;
  };
}

/** `TimingOptions` for a pass timed in interleaved rounds: `runs` timed runs per model in at most `rounds` rounds. */
export type InterleavedTimingOptions = TimingOptions & { rounds?: number; seed?: number; onRound?: (done: number, total: number) => void };

/**
 * Median batch-1 latency of fresh sessions of several models, timed in interleaved rounds
 * (`timeInterleaved`). A model's sample is one timed `run()`, or what `sampleOf` makes of it.
 */
export async function timeModels(
  backend: Backend,
  models: readonly { bytes: Uint8Array; inDims: readonly number[] }[],
  o: InterleavedTimingOptions,
  sampleOf: (run: Sampler, i: number) => Sampler = (run) => run,
): Promise<Timing[]> {
  const sessions: ModelSession[] = [];
  const createMs: number[] = [];
  try {
    for (const m of models) {
      const t0 = performance.now();
      sessions.push(await ModelSession.create(backend, m.bytes, { ep: o.ep, threads: o.threads, graphOptimizationLevel: 'all' }));
      createMs.push(performance.now() - t0);
    }
    const samplers = sessions.map((s, i) => sampleOf(runSampler(s, models[i]!.inDims), i));
    const { timings } = await timeInterleaved(samplers, { ...interleavePlan(o.runs, o.rounds), warmup: o.warmup, quantile: o.quantile, seed: o.seed, onRound: o.onRound, signal: o.signal });
    return timings.map((t, i) => ({ ...t, createMs: createMs[i]! }));
  } finally {
    for (const s of sessions) await s.release();
  }
}

/** Median batch-1 latency of a fresh session of `bytes`, timed around `run()`. */
export async function timeModel(backend: Backend, bytes: Uint8Array, inDims: readonly number[], o: TimingOptions): Promise<Timing> {
  const t0 = performance.now();
  await using s = await ModelSession.create(backend, bytes, { ep: o.ep, threads: o.threads, graphOptimizationLevel: 'all' });
  const createMs = performance.now() - t0;
  const sample = runSampler(s, inDims);
  for (let i = 0; i < o.warmup; i++) await sample();
  const times: number[] = [];
  for (let i = 0; i < o.runs; i++) times.push(await sample());
  return { ms: quantile(times, o.quantile ?? 0.5), medianMs: median(times), p10Ms: quantile(times, 0.1), varMs2: variance(times), count: times.length, createMs };
}

/**
 * Latency of isolated parts net of the per-run overhead, interleaved (`timeInterleaved`). A sample of a
 * part is its run time minus that of a baseline run (an empty graph) right after it: paired in time, so a
 * burst of load from elsewhere hits both sides of a pair instead of inflating one baseline measured once
 * (which made every part read as 0). Parts flagged `gross` ('pre', which carries the whole network's
 * per-run overhead) are timed without the subtraction.
 */
export async function timeParts(backend: Backend, parts: readonly { bytes: Uint8Array; inDims: readonly number[]; gross: boolean }[], o: InterleavedTimingOptions): Promise<Timing[]> {
  const base = await ModelSession.create(backend, buildBaselineGraph(), { ep: o.ep, threads: o.threads, graphOptimizationLevel: 'all' });
  try {
    const baseRun = runSampler(base, [1, 1, 1, 1]);
    const timings = await timeModels(backend, parts, o, (run, i) => (parts[i]!.gross ? run : async () => (await run()) - (await baseRun())));
    return timings.map((t, i) => (parts[i]!.gross ? t : { ...t, ms: Math.max(0, t.ms), medianMs: Math.max(0, t.medianMs), p10Ms: Math.max(0, t.p10Ms) }));
  } finally {
    await base.release();
  }
}

/** The input dims of every subnet of a package (the input contract, batch 1). */
export function subnetInputDims(pkg: SupernetPackage): number[] {
  const i = pkg.arch.input;
  return [1, i.channels, i.height, i.width];
}

/**
 * Latencies of several materialized subnets (BN not recalibrated: statistics do not change the timing),
 * each in a fresh session, timed in interleaved rounds.
 */
export async function measureSubnetsLatency(
  pkg: SupernetPackage,
  cfgs: readonly SubnetConfig[],
  o: InterleavedTimingOptions,
  backend: Backend,
  weights = new SubnetWeights(pkg),
  graph: ProfileOptions['graph'] = {},
): Promise<Timing[]> {
  const dims = subnetInputDims(pkg);
  return timeModels(backend, cfgs.map((cfg) => ({ bytes: buildSubnet(weights, cfg, { mode: 'fold', batch: 1, ...graph }).bytes, inDims: dims })), o);
}

/** Random distinct subnets, seeded; `resolutions` restricts image sizes. */
export function sampleSubnets(pkg: SupernetPackage, n: number, seed: number, resolutions: readonly number[] = pkg.space.image_size_list, exclude: ReadonlySet<string> = new Set()): SubnetConfig[] {
  const rng = mulberry32(seed);
  const out: SubnetConfig[] = [];
  const seen = new Set(exclude);
  for (let tries = 0; out.length < n && tries < n * 50; tries++) {
    const c = pkg.space.sample(rng);
    c.image_size = resolutions[Math.floor(rng() * resolutions.length)]!;
    const id = pkg.space.id(c);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(c);
  }
  return out;
}

/** Profiles latency (and memory) of a supernet's space on this device. */
export async function profileDevice(pkg: SupernetPackage, opts: ProfileOptions & { backend: Backend }): Promise<Profile> {
  const t0 = performance.now();
  const backend = opts.backend;
  const ep = opts.ep ?? backend.defaultEp;
  const threads = opts.threads ?? 1;
  const warmup = opts.warmup ?? 5;
  const runs = opts.runs ?? 30;
  const seed = opts.seed ?? 1;
  const all = pkg.space.image_size_list;
  const measured = [...(opts.resolutions ?? defaultMeasuredResolutions(all))].sort((a, b) => a - b);
  for (const r of measured)
    if (!all.includes(r)) throw new NestswapError('ERR_USAGE', `Resolution ${r} is not in the space; should be among: ${all.join(', ')}.`);
  const progress = opts.onProgress ?? (() => undefined);
  const q = opts.quantile ?? 0.5;
  const timing: TimingOptions = { ep, threads, warmup, runs, quantile: q, signal: opts.signal };
  const weights = new SubnetWeights(pkg);

  // Fail early and clearly when the EP cannot run at all.
  progress({ phase: 'baseline', done: 0, total: 1 });
  const base = await timeModel(backend, buildBaselineGraph(), [1, 1, 1, 1], { ...timing, runs: Math.max(runs, 50) });
  progress({ phase: 'baseline', done: 1, total: 1 });

  const { parts } = enumerateParts(pkg.arch, measured);
  const times = new Map<string, PartTime>();
  const partRows: { key: string; kind: PartKind; ms: number; count: number; var: number }[] = [];
  // 'pre' (input resize + normalisation + stem) carries the per-run overhead of the whole subnet, once
  const partTimes = await timeParts(
    backend,
    parts.map((part) => ({ bytes: buildPartGraph(weights, part, opts.graph), inDims: part.inDims, gross: part.kind === 'pre' })),
    { ...timing, seed, onRound: (done, total) => progress({ phase: 'parts', done: Math.round((done / total) * parts.length), total: parts.length }) },
  );
  for (const [i, part] of parts.entries()) {
    const t = partTimes[i]!;
    times.set(part.key, { ms: t.ms, count: t.count, var: t.varMs2 });
    partRows.push({ key: part.key, kind: part.kind, ms: t.ms, count: t.count, var: t.varMs2 });
  }
  const tab = latencyTables(pkg.arch, times, measured, all);
  const raw = {
    unit: 'ms',
    resolutions: [...all],
    ksList: tab.ksList,
    expandList: tab.expandList,
    nSlots: tab.nSlots,
    maxDepth: tab.maxDepth,
    fixed: Float64Array.from(tab.pre.map((p, i) => p + tab.head[i]!)),
    slot: tab.slot,
  };

  // Calibration on whole subnets at measured resolutions (their parts are measured, not interpolated),
  // including the smallest and largest subnet so the fit spans the range.
  const nCal = opts.calibrationSubnets ?? 16;
  const calCfgs = [pkg.space.min(), { ...pkg.space.max(), image_size: measured[measured.length - 1]! }, ...sampleSubnets(pkg, Math.max(0, nCal - 2), seed, measured)].slice(0, Math.max(nCal, 0));
  // Validation on held-out random subnets over the whole space (interpolated resolutions included),
  // timed in the same interleaved pass as the calibration subnets: both see the same machine.
  const nVal = opts.validationSubnets ?? 10;
  const valCfgs = sampleSubnets(pkg, nVal, seed + 1, all, new Set(calCfgs.map((c) => pkg.space.id(c))));
  const both = [...calCfgs, ...valCfgs];
  const typicalMs = median(both.map((c) => evaluateFlat(raw, c)));
  const subnetRuns = opts.subnetRuns ?? runsForBudget(15000 / both.length, typicalMs, 20, 400);
  const subnetTiming = { ...timing, runs: subnetRuns, rounds: 20 };
  // A pass whose validation misses the gate was taken while the machine's speed moved under it: another
  // pass is measured and the passes are combined (median per subnet), so the level spans a longer time.
  const gate = opts.validationGate ?? { mape: 0.05, within10: 0.9 };
  const maxPasses = Math.max(1, opts.maxSubnetPasses ?? 3);
  const passes: Timing[][] = [];
  let calSamples: ProfileSample[] = [];
  let calibration!: ReturnType<typeof fitLinear>;
  let valSamples: ProfileSample[] = [];
  const calRaw = calCfgs.map((cfg) => evaluateFlat(raw, cfg));
  while (passes.length < maxPasses) {
    const done0 = passes.length;
    passes.push(
      await measureSubnetsLatency(pkg, both, {
        ...subnetTiming,
        seed: seed + 3 + done0,
        onRound: (done, total) => progress({ phase: 'calibration', done: Math.round((done / total) * both.length), total: both.length }),
      }, backend, weights, opts.graph),
    );
    const ms = both.map((_, i) => median(passes.map((t) => t[i]!.ms)));
    calSamples = calCfgs.map((cfg, i) => ({ id: pkg.space.id(cfg), measured: ms[i]!, predicted: calRaw[i]! }));
    // the line must stay sane down to the cheapest subnet of the space, not just the calibration points
    calibration = fitLinear(calRaw, calSamples.map((x) => x.measured), flatMinimum(raw, pkg.space).value);
    const fitted = { ...raw, calibration };
    valSamples = valCfgs.map((cfg, i) => ({ id: pkg.space.id(cfg), measured: ms[calCfgs.length + i]!, predicted: evaluateFlat(fitted, cfg) }));
    const v = predictionStats(valSamples);
    if (valSamples.length === 0 || (v.mape <= gate.mape && v.within10 >= gate.within10)) break;
  }
  const model = { ...raw, calibration };
  progress({ phase: 'validation', done: valCfgs.length, total: valCfgs.length });

  let memory: Profile['memory'];
  const nMem = opts.memory ? (opts.memorySubnets ?? 4) : 0;
  if (nMem > 0 && opts.memory) {
    const memCfgs = [pkg.space.min(), pkg.space.max(), ...sampleSubnets(pkg, Math.max(0, nMem - 2), seed + 2)].slice(0, nMem);
    const measuredMem: { cfg: SubnetConfig; mb: number }[] = [];
    for (const [i, cfg] of memCfgs.entries()) {
      opts.signal?.throwIfAborted();
      const built = buildSubnet(weights, cfg, { mode: 'fold', batch: 1, ...(opts.graph ?? {}) });
      const m = await opts.memory.measure(built.bytes, subnetInputDims(pkg), { ep, threads });
      measuredMem.push({ cfg, mb: m.deltaMB });
      progress({ phase: 'memory', done: i + 1, total: memCfgs.length });
    }
    const fit = opts.memory.fit(pkg.arch, measuredMem);
    const mm = buildMemoryModel(pkg.arch, all, fit.coef);
    memory = {
      model: { unit: 'MB', resolutions: [...all], ...mm },
      coef: fit.coef,
      overheadMB: fit.coef.overheadMB,
      fitSamples: measuredMem.map((m) => ({ id: pkg.space.id(m.cfg), measured: m.mb, predicted: fit.predict(m.cfg) })),
      validation: null,
    };
  }

  return {
    format: PROFILE_FORMAT,
    created: new Date().toISOString(),
    fingerprint: opts.device.fingerprint,
    deviceClass: opts.device.deviceClass,
    ...(opts.device.facts ? { device: opts.device.facts } : {}),
    backend: backend.name,
    ortVersion: backend.version,
    ep,
    threads,
    graphOptimizationLevel: 'all',
    supernet: { name: pkg.name, family: pkg.arch.family, weightsDigest: pkg.weightsDigest },
    method: {
      warmup,
      runs,
      subnetRuns,
      subnetPasses: passes.length,
      quantile: q,
      baselineMs: base.ms,
      measuredResolutions: measured,
      interpolation: 'linear in input pixels between the nearest measured resolutions',
      timing: `interleaved rounds (parts ${fmtPlan(interleavePlan(runs))}, whole subnets ${fmtPlan(interleavePlan(subnetRuns, subnetTiming.rounds))}), each round normalised by its speed factor`,
      wallMs: performance.now() - t0,
    },
    parts: partRows,
    latency: { model: modelToJson(model) as Profile['latency']['model'], pre: tab.pre, head: tab.head, calibrationSamples: calSamples },
    validation: predictionStats(valSamples),
    ...(memory ? { memory } : {}),
  };
}

