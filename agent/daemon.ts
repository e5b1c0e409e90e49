/**
 * The device agent: one supernet package, a selector (which subnet is best for a budget), the
 * materializer (BN statistics cached on disk), the hot swapper, the constraint monitor and policy,
 * Prometheus metrics, and optionally the local HTTP API.
 *
 * Programmatic API (the CLI and fleet mode drive it):
 *   const d = await startDaemon({ pkg, budget: { latencyMs: 5 }, listen: { port: 0 } });
 *   d.setBudget({ latencyMs: 3 })          // unpins, re-chooses under the live effective budget
 *   d.switchTo(cfg, { pin: true })         // explicit subnet; pinned until setBudget or unpin
 *   d.unpin()                              // back to the policy
 *   d.status()                             // the GET /v1/status document
 *   d.on('swap' | 'telemetry', cb)         // swap records; one telemetry event per monitor window
 *   d.infer(input, batch)                  // logits + subnet that answered
 *   await d.close()
 */
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeDurable } from '../runtime/node/durable.js';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MemoryStatsStore, type CalibrateOptions } from '../runtime/calibrate.js';
import { countMacs } from '../runtime/cost.js';
import { NestswapError } from '../runtime/errors.js';
import { HotSwapper, type HotSwapOptions, type InferResult, type SwapRecord } from '../runtime/hot-swap.js';
import { Materializer } from '../runtime/materializer.js';
import { nchwcCalibration } from '../runtime/node/nchwc.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { workerBackend } from '../runtime/node/ort-worker.js';
import type { SupernetPackage } from '../runtime/package.js';
import { evaluateFlat, staticMemoryModel } from '../runtime/search/efficiency.js';
import { ModelSession, ortSessionOptions, type Backend, type SessionOptions } from '../runtime/session.js';
import type { SubnetConfig } from '../runtime/space.js';
import { Monitor, type LatencyWindow, type Sensors } from './monitor.js';
import { Policy, type Choice, type Decision, type EffectiveBudget, type PolicyOptions, type Prediction, type UserBudget } from './policy.js';
import { diskStatsStore } from './stats-store.js';

export type SubnetChoice = Choice<SubnetConfig>;

/**
 * Intra-op threads an agent's sessions get when none are asked for: with sessions on the main thread,
 * the cores less one, left to the builder that prepares swaps; with sessions in worker threads, 1 (two
 * workers each with a full thread pool oversubscribe small machines).
 */
export function defaultSessionThreads(sessionHost: 'main' | 'worker' = 'main'): number {
  return sessionHost === 'worker' ? 1 : Math.max(1, availableParallelism() - 1);
}

/** Which subnet is best for a budget, and what a subnet is predicted to cost. */
export interface Selector {
  /** e.g. 'profile+search', 'measured-ladder', 'injected' */
  readonly kind: string;
  choose(budget: UserBudget): Promise<SubnetChoice>;
  predict(cfg: SubnetConfig): Prediction;
  /** subnets it is likely to choose: their BN statistics are computed in the background at start */
  readonly candidates?: readonly { config: SubnetConfig }[];
}

export interface DaemonOptions {
  pkg: SupernetPackage;
  budget: UserBudget;
  backend?: Backend;
  /**
   * Where sessions run when no `backend` is given. 'main' (default) runs them on this thread
   * (onnxruntime-node loads models and runs synchronously on the calling thread): a builder worker
   * calibrates, materializes, optimises, warms up and checks the next subnet, and this thread only
   * loads the optimised graph (about half a raw session creation) and swaps; the builder ends after
   * 30 s without work. 'worker' hosts the sessions themselves in two worker threads; the worker that
   * will serve the next subnet builds, loads, warms and checks it while the other serves, so no
   * swap step runs here, but each request then crosses a thread (bench/swap figures for both in the README).
   */
  sessionHost?: 'main' | 'worker';
  /** sessionHost 'main': build candidates on this thread too (no builder worker; default false) */
  buildOnMainThread?: boolean;
  /** intra-op threads of every session (0: onnxruntime's default) */
  threads?: number;
  /** BN statistics and measured-ladder cache; in memory when absent */
  dataDir?: string;
  logger?: Logger;
  /** a full selector, or the two functions of one (`chooseSubnet` + `predict`) */
  selector?: Selector;
  chooseSubnet?: (budget: UserBudget) => Promise<SubnetChoice>;
  predict?: (cfg: SubnetConfig) => Prediction;
  monitor?: { intervalMs?: number; minSamples?: number; sensors?: Sensors; probe?: boolean; idleProbeEvery?: number; idleProbeMaxEvery?: number };
  policy?: Partial<PolicyOptions>;
  /** serve the local HTTP API */
  listen?: { port: number; host?: string; maxBodyBytes?: number };
  hotSwap?: Pick<HotSwapOptions, 'candidateHook' | 'warmupRuns' | 'checkRuns' | 'onnxCacheBytes'>;
  calibration?: CalibrateOptions;
  /** health check fails a policy candidate slower than user latency × slowdown × this (default 4) */
  healthLatencySlack?: number;
  /** measured-ladder size when no selector is given (default 8) */
  ladderSize?: number;
}

export interface DaemonStatus {
  supernet: string;
  subnet: { id: string; config: SubnetConfig } | null;
  predicted: { latencyMs: number | null; accuracy: number | null; memoryMB: number | null };
  observed: { p50Ms: number | null; p99Ms: number | null; slowdown: number | null; samples: number; at: string | null };
  budget: UserBudget;
  effectiveBudget: EffectiveBudget | null;
  pinned: boolean;
  selector: string;
  conditions: LatencyWindow['conditions'] | null;
  lastDecision: { action: string; reason: string } | null;
  swaps: SwapRecord[];
}

export interface DaemonInferResult extends InferResult {
  /** class index per sample */
  indices: number[];
  /** label name per sample (the package's names, else the index as a string) */
  labels: string[];
  classes: number;
}

export interface Telemetry {
  window: LatencyWindow;
  decision: { action: string; reason: string };
  effective: EffectiveBudget;
}

export interface DaemonHandle {
  readonly url: string | null;
  readonly pkg: SupernetPackage;
  readonly sampleShape: readonly number[];
  readonly metrics: Registry;
  setBudget(b: UserBudget): Promise<SwapRecord>;
  switchTo(cfg: unknown, opts?: { pin?: boolean }): Promise<SwapRecord>;
  unpin(): Promise<SwapRecord>;
  status(): DaemonStatus;
  infer(input: Float32Array, batch: number): Promise<DaemonInferResult>;
  on(event: 'swap', cb: (r: SwapRecord) => void): () => void;
  on(event: 'telemetry', cb: (t: Telemetry) => void): () => void;
  close(): Promise<void>;
}

/** Checks a budget from outside (HTTP, CLI, fleet); ERR_BUDGET_INVALID otherwise. */
export function validateUserBudget(b: unknown): UserBudget {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new NestswapError('ERR_BUDGET_INVALID', 'A budget must be an object {latencyMs?, memoryMB?}.');
  const out: UserBudget = {};
  for (const [k, v] of Object.entries(b)) {
    if (k !== 'latencyMs' && k !== 'memoryMB') throw new NestswapError('ERR_BUDGET_INVALID', `Unknown budget '${k}'; expected one of: latencyMs, memoryMB.`);
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new NestswapError('ERR_BUDGET_INVALID', `Budget '${k}' must be a finite number > 0 (got ${JSON.stringify(v)}).`);
    out[k] = v;
  }
  return out;
}

export interface LadderEntry {
  subnetId: string;
  config: SubnetConfig;
  macs: number;
  latencyMs: number;
  memoryMB: number;
  accuracy: number | null;
}

export interface LadderOptions {
  size?: number;
  /** timed runs per subnet (median) */
  runs?: number;
  threads?: number;
  /** idle time before each timed run (default 2 ms), like sparse traffic */
  gapMs?: number;
  /** JSON cache file: reused when the package, thread count and ORT version match */
  cacheFile?: string;
}

/**
 * The fallback selector until a device profile exists: `size` subnets spread evenly in log-MACs
 * over the uniform configs of the space, each measured here (whole-model median latency, batch 1).
 * Choosing = the best score (predicted accuracy when the package has a predictor, else MACs)
 * whose measured latency and static memory estimate fit. Subnets off the ladder are predicted by a
 * least-squares fit latency ≈ a·MACs + b over it.
 */
export async function ladderSelector(pkg: SupernetPackage, backend: Backend, opts: LadderOptions = {}): Promise<Selector & { readonly candidates: readonly LadderEntry[] }> {
  const size = opts.size ?? 8;
  const runs = opts.runs ?? 20;
  const gapMs = opts.gapMs ?? 2;
  const space = pkg.space;
  const memModel = staticMemoryModel(pkg.arch);
  const key = `${pkg.weightsDigest}/${opts.threads ?? 0}/${backend.version}/${size}/${gapMs}`;
  let entries: LadderEntry[] | undefined;
  if (opts.cacheFile && existsSync(opts.cacheFile)) {
    try {
      const c = JSON.parse(readFileSync(opts.cacheFile, 'utf8')) as { key: string; entries: LadderEntry[] };
      if (c.key === key) entries = c.entries.map((e) => ({ ...e, config: space.parse(e.config) }));
    } catch {
      entries = undefined; // a damaged cache is re-measured, never trusted
    }
  }
  if (!entries) {
    const all = new Map<string, { cfg: SubnetConfig; macs: number }>();
    for (const k of space.ks_list)
      for (const e of space.expand_list)
        for (const d of space.depth_list)
          for (const r of space.image_size_list) {
            const cfg = space.uniform(k, e, d, r);
            all.set(space.id(cfg), { cfg, macs: countMacs(pkg.arch, cfg) });
          }
    const sorted = [...all.values()].sort((a, b) => a.macs - b.macs);
    const lo = Math.log(sorted[0]!.macs);
    const hi = Math.log(sorted[sorted.length - 1]!.macs);
    const picked = new Map<string, { cfg: SubnetConfig; macs: number }>();
    for (let i = 0; i < size; i++) {
      const target = size === 1 ? hi : lo + ((hi - lo) * i) / (size - 1);
      let best = sorted[0]!;
      for (const s of sorted) if (Math.abs(Math.log(s.macs) - target) < Math.abs(Math.log(best.macs) - target)) best = s;
      picked.set(space.id(best.cfg), best);
    }
    const m = new Materializer(pkg, backend);
    const per = pkg.manifest.input.shape.reduce((a, b) => a * b, 1);
    const input = Float32Array.from({ length: per }, (_, i) => (i % 17) / 17);
    entries = [];
    // Round-robin timing (one run of each subnet per round): bursts of other load on the device
    // hit every subnet alike instead of skewing whichever was being measured at the time.
    const dims = [1, ...pkg.manifest.input.shape];
    const list = [...picked.values()];
    const sessions: ModelSession[] = [];
    try {
      for (const { cfg } of list) {
        // BN statistics do not change the folded graph's shape or cost: time the uncalibrated model
        const built = await m.materialize(cfg, { calibrate: false });
        const session = await ModelSession.create(backend, built.bytes, opts.threads ? { threads: opts.threads } : {});
        sessions.push(session);
        for (let i = 0; i < 3; i++) await session.runFirst(input, dims);
      }
      const times = list.map(() => [] as number[]);
      for (let i = 0; i < runs; i++)
        for (let j = 0; j < sessions.length; j++) {
          // spaced like served requests (not back to back): the monitor compares against this
          if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
          const t0 = performance.now();
          await sessions[j]!.runFirst(input, dims);
          times[j]!.push(performance.now() - t0);
        }
      list.forEach(({ cfg, macs }, j) => {
        const ts = times[j]!.sort((x, y) => x - y);
        entries!.push({ subnetId: space.id(cfg), config: cfg, macs, latencyMs: ts[ts.length >> 1]!, memoryMB: evaluateFlat(memModel, cfg), accuracy: null });
      });
    } finally {
      for (const s of sessions) await s.release();
    }
    if (opts.cacheFile) {
      mkdirSync(join(opts.cacheFile, '..'), { recursive: true });
      writeDurable(opts.cacheFile, JSON.stringify({ key, entries }));
    }
  }
  // A subnet with more MACs is not faster on the same device: measured inversions are noise, so
  // latencies are made non-decreasing in MACs (pool-adjacent-violators, equal weights).
  entries.sort((x, y) => x.macs - y.macs);
  const blocks: { sum: number; n: number }[] = [];
  for (const e of entries) {
    blocks.push({ sum: e.latencyMs, n: 1 });
    while (blocks.length > 1 && blocks[blocks.length - 2]!.sum / blocks[blocks.length - 2]!.n > blocks[blocks.length - 1]!.sum / blocks[blocks.length - 1]!.n) {
      const last = blocks.pop()!;
      blocks[blocks.length - 1]!.sum += last.sum;
      blocks[blocks.length - 1]!.n += last.n;
    }
  }
  let k = 0;
  for (const bl of blocks) for (let i = 0; i < bl.n; i++) entries[k++]!.latencyMs = bl.sum / bl.n;
  const accuracy = await packageAccuracy(pkg);
  for (const e of entries) e.accuracy = accuracy ? await accuracy(e.config) : null;
  // latency ≈ a·MACs + b for subnets off the ladder
  const n = entries.length;
  const mx = entries.reduce((s, e) => s + e.macs, 0) / n;
  const my = entries.reduce((s, e) => s + e.latencyMs, 0) / n;
  const sxx = entries.reduce((s, e) => s + (e.macs - mx) ** 2, 0);
  const a = sxx > 0 ? Math.max(0, entries.reduce((s, e) => s + (e.macs - mx) * (e.latencyMs - my), 0) / sxx) : 0;
  const b = my - a * mx;
  const byId = new Map(entries.map((e) => [e.subnetId, e]));
  const toChoice = (e: LadderEntry, feasible: boolean): SubnetChoice => ({
    subnetId: e.subnetId,
    config: e.config,
    predicted: { latencyMs: e.latencyMs, memoryMB: e.memoryMB, accuracy: e.accuracy },
    score: e.accuracy ?? e.macs,
    feasible,
  });
  const ladder = entries;
  return {
    kind: accuracy ? 'measured-ladder+accuracy-predictor' : 'measured-ladder+macs-proxy',
    candidates: ladder,
    async choose(budget) {
      let best: LadderEntry | undefined;
      for (const e of ladder) {
        if (budget.latencyMs !== undefined && e.latencyMs > budget.latencyMs) continue;
        if (budget.memoryMB !== undefined && e.memoryMB > budget.memoryMB) continue;
        if (!best || (e.accuracy ?? e.macs) > (best.accuracy ?? best.macs)) best = e;
      }
      if (best) return toChoice(best, true);
      const cheapest = [...ladder].sort((x, y) => x.latencyMs - y.latencyMs)[0]!;
      return toChoice(cheapest, false);
    },
    predict(cfg) {
      const e = byId.get(space.id(cfg));
      if (e) return { latencyMs: e.latencyMs, memoryMB: e.memoryMB, accuracy: e.accuracy };
      return { latencyMs: Math.max(1e-3, a * countMacs(pkg.arch, cfg) + b), memoryMB: evaluateFlat(memModel, cfg), accuracy: null };
    },
  };
}

/** The package's ONNX accuracy predictor as a function, when it ships one. */
async function packageAccuracy(pkg: SupernetPackage): Promise<((cfg: SubnetConfig) => Promise<number>) | undefined> {
  const bytes = pkg.fileByRole('accuracy-predictor');
  if (!bytes) return undefined;
  const ort = await import('onnxruntime-node');
  const { encoderForPredictor, onnxAccuracyPredictor } = await import('../runtime/search/predictors.js');
  const session = await ort.InferenceSession.create(bytes);
  const meta = session.inputMetadata[0];
  const nDim = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
  if (typeof nDim !== 'number') return undefined;
  const encoder = encoderForPredictor(pkg.space, nDim);
  const p = await onnxAccuracyPredictor(session, encoder.nDim, ort.Tensor);
  return async (cfg) => (await p.predictBatch(encoder.encode(cfg), 1))[0]!;
}

function macsScore(pkg: SupernetPackage, cfg: SubnetConfig, p: Prediction): number {
  return p.accuracy ?? countMacs(pkg.arch, cfg);
}

export async function startDaemon(opts: DaemonOptions): Promise<DaemonHandle> {
  const { pkg } = opts;
  const log = opts.logger ?? pino({ level: 'silent' });
  const pool = !opts.backend && opts.sessionHost === 'worker' ? workerBackend() : undefined;
  const backend = opts.backend ?? pool ?? nodeBackend;
  // sessions here: candidates are built, optimised and checked in a worker that ends when idle
  const builder = !opts.backend && !pool && !opts.buildOnMainThread ? workerBackend({ workers: 1, idleExitMs: 30_000 }) : undefined;
  // The ladder is measured before serving starts, on this thread, the way the profiler measures;
  // runs report their own time on either host, so observed and predicted latencies stay comparable.
  const measuring = opts.backend ?? nodeBackend;
  let budget = validateUserBudget(opts.budget);
  const threads = opts.threads ?? 0;
  const sampleShape = pkg.manifest.input.shape;
  const labels = pkg.manifest.input.labels ?? pkg.arch.input.labels ?? null;
  const events = new EventEmitter();

  let selector: Selector;
  if (opts.selector) selector = opts.selector;
  else if (opts.chooseSubnet && opts.predict) selector = { kind: 'injected', choose: opts.chooseSubnet, predict: opts.predict };
  else {
    const t0 = performance.now();
    const ladderOpts: LadderOptions = { size: opts.ladderSize ?? 8, threads };
    if (opts.dataDir) ladderOpts.cacheFile = join(opts.dataDir, `ladder-${pkg.weightsDigest.slice(0, 16)}.json`);
    selector = await ladderSelector(pkg, measuring, ladderOpts);
    log.info({ selector: selector.kind, ms: Math.round(performance.now() - t0) }, 'selector ready');
  }

  // Choices are memoized per budget rounded to 2% steps: the policy asks every window.
  const memo = new Map<string, Promise<SubnetChoice>>();
  const q = (x: number | undefined) => (x === undefined ? undefined : Math.exp(Math.round(Math.log(x) / Math.log(1.02)) * Math.log(1.02)));
  const choose = (b: UserBudget): Promise<SubnetChoice> => {
    const qb: UserBudget = {};
    const l = q(b.latencyMs);
    const m = q(b.memoryMB);
    if (l !== undefined) qb.latencyMs = l;
    if (m !== undefined) qb.memoryMB = m;
    const key = `${qb.latencyMs ?? '-'}/${qb.memoryMB ?? '-'}`;
    let p = memo.get(key);
    if (!p) {
      log.debug({ budget: qb }, "selector: search for a new budget");
      p = selector.choose(qb);
      p.catch(() => memo.delete(key));
      if (memo.size > 512) memo.delete(memo.keys().next().value!);
      memo.set(key, p);
    }
    return p;
  };
  const known = new Map<string, SubnetChoice>();
  const choiceOf = (cfg: SubnetConfig): SubnetChoice => {
    const id = pkg.space.id(cfg);
    const hit = known.get(id);
    if (hit) return hit;
    const predicted = selector.predict(cfg);
    return { subnetId: id, config: cfg, predicted, score: macsScore(pkg, cfg, predicted), feasible: true };
  };

  // --- metrics -----------------------------------------------------------------------------
  const metrics = new Registry();
  // event-loop lag sampled every 200 ms, not prom-client's default 10 ms: 100 wake-ups a second
  // alone cost an idle agent ~0.5% of a core
  collectDefaultMetrics({ register: metrics, prefix: 'nestswap_agent_', eventLoopMonitoringPrecision: 200 });
  const mRequests = new Counter({ name: 'nestswap_inference_requests_total', help: 'Inference runs, by subnet that answered', labelNames: ['subnet'], registers: [metrics] });
  const mSamples = new Counter({ name: 'nestswap_inference_samples_total', help: 'Samples inferred', registers: [metrics] });
  const mErrors = new Counter({ name: 'nestswap_inference_errors_total', help: 'Failed inference runs, by code', labelNames: ['code'], registers: [metrics] });
  const mLatency = new Histogram({
    name: 'nestswap_inference_seconds',
    help: 'Inference run time (runtime, without HTTP)',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [metrics],
  });
  const mSwaps = new Counter({ name: 'nestswap_swaps_total', help: 'Swap requests by outcome', labelNames: ['outcome'], registers: [metrics] });
  const mSwapTime = new Histogram({ name: 'nestswap_swap_seconds', help: 'Decision to serving time of completed swaps', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [metrics] });
  const gSlowdown = new Gauge({ name: 'nestswap_slowdown', help: 'Observed p50 / predicted latency of the serving subnet', registers: [metrics] });
  const gObserved = new Gauge({ name: 'nestswap_observed_latency_ms', help: 'Observed single-sample latency in the last window', labelNames: ['quantile'], registers: [metrics] });
  const gBudget = new Gauge({ name: 'nestswap_budget', help: 'Budgets (user and effective)', labelNames: ['kind', 'metric'], registers: [metrics] });
  const gPredicted = new Gauge({ name: 'nestswap_predicted', help: 'Predictions for the serving subnet', labelNames: ['metric'], registers: [metrics] });
  const gOthersCpu = new Gauge({ name: 'nestswap_others_cpu_ratio', help: 'Share of all cores busy with other processes', registers: [metrics] });
  const gAvailMem = new Gauge({ name: 'nestswap_available_memory_mb', help: 'Available memory', registers: [metrics] });
  const gPinned = new Gauge({ name: 'nestswap_pinned', help: '1 while an explicit switch pins the subnet', registers: [metrics] });
  const gActive = new Gauge({ name: 'nestswap_active_subnet_info', help: 'The serving subnet (value 1)', labelNames: ['subnet'], registers: [metrics] });

  // --- runtime parts -------------------------------------------------------------------------
  const stats = opts.dataDir ? diskStatsStore(join(opts.dataDir, 'bn-stats')) : new MemoryStatsStore();
  // calibration sessions run in the builder when there is one (~1 s of compute per subnet), with
  // onnxruntime's default threads: a subnet is most often calibrated for a downgrade, i.e. while other
  // processes load the cores, where one thread got a third of the CPU time and took twice as long
  // (test/contention: 2.7-5.6 s instead of 2.2-2.7 s)
  // on onnxruntime-node's CPU provider (not an injected backend) in the NCHWc layout where this onnxruntime has it
  const materializer = new Materializer(pkg, builder ?? backend, stats, opts.backend ? undefined : nchwcCalibration);
  const calibration: CalibrateOptions = opts.calibration ?? {};
  const sessionOptions: Partial<SessionOptions> = threads > 0 ? { threads } : {};
  let monitor: Monitor | undefined;
  const hot = new HotSwapper({
    backend,
    sampleShape,
    idOf: (cfg) => pkg.space.id(cfg),
    build: async (cfg, check) => {
      if (pool) {
        // worker host: the worker that will serve the candidate materializes it and loads it, so
        // neither step stalls this thread (statistics come from the cache, or are computed once)
        const { stats, cached } = await materializer.statistics(cfg, calibration);
        const session = await ModelSession.open(pool, sessionOptions, (o) => pool.openSubnet(pkg, cfg, stats, o));
        return { subnetId: pkg.space.id(cfg), session, statsCached: cached };
      }
      if (builder) {
        const { stats, cached } = await materializer.statistics(cfg, calibration);
        const p = await builder.prepareSubnet(pkg, cfg, stats, ortSessionOptions(backend, sessionOptions), check);
        return {
          subnetId: pkg.space.id(cfg),
          bytes: p.bytes,
          statsCached: cached,
          // optimised in the builder, for this machine and these options
          ...(p.optimized ? { sessionOptions: { graphOptimizationLevel: 'disabled' as const } } : {}),
          checked: p.checked,
        };
      }
      const r = await materializer.materialize(cfg, { calibration });
      return { subnetId: r.subnetId, bytes: r.bytes, statsCached: r.statsCached };
    },
    // worker host: the worker rebuilds ONNX in a few ms off this thread; cached bytes would only be copied across
    ...(pool ? { onnxCacheBytes: 0 } : {}),
    // 1 warm-up run and the median of 2 timed runs: enough for a health check with a 4x latency slack,
    // and in the builder they run while this thread loads the candidate, so they should not outlast that
    warmupRuns: 1,
    checkRuns: 2,
    ...(opts.hotSwap ?? {}),
    session: sessionOptions,
    onRun: (ms, batch, id) => monitor?.recordRun(ms, batch, id),
  });
  const policy = new Policy<SubnetConfig>(opts.policy ?? {});
  let pinned = false;
  let lastDecision: Decision<SubnetConfig> | undefined;
  let closed = false;

  hot.onSwap((r) => {
    mSwaps.inc({ outcome: r.outcome });
    if (r.outcome === 'swapped') {
      policy.swapped();
      if (r.timings) mSwapTime.observe(r.timings.totalMs / 1000);
      gActive.reset();
      gActive.set({ subnet: r.to }, 1);
      const p = known.get(r.to)?.predicted;
      if (p) for (const k of ['latencyMs', 'memoryMB', 'accuracy'] as const) if (p[k] !== null) gPredicted.set({ metric: k }, p[k]);
    }
    const level = r.outcome === 'failed' ? 'warn' : 'info';
    log[level]({ swap: r }, `swap ${r.outcome}: ${r.from ?? '-'} -> ${r.to} (${r.reason})`);
    events.emit('swap', r);
  });

  const setBudgetGauges = (eff: EffectiveBudget | undefined) => {
    gBudget.reset();
    if (budget.latencyMs !== undefined) gBudget.set({ kind: 'user', metric: 'latency_ms' }, budget.latencyMs);
    if (budget.memoryMB !== undefined) gBudget.set({ kind: 'user', metric: 'memory_mb' }, budget.memoryMB);
    if (eff?.latencyMs !== undefined) gBudget.set({ kind: 'effective', metric: 'latency_ms' }, eff.latencyMs);
    if (eff?.memoryMB !== undefined) gBudget.set({ kind: 'effective', metric: 'memory_mb' }, eff.memoryMB);
  };

  const swapTo = async (c: SubnetChoice, reason: string, check: boolean): Promise<SwapRecord> => {
    known.set(c.subnetId, c);
    const req: { reason: string; maxLatencyMs?: number } = { reason };
    if (check && budget.latencyMs !== undefined) {
      const s = policy.slowdownOf(monitor?.last);
      req.maxLatencyMs = budget.latencyMs * s * (opts.healthLatencySlack ?? 4);
    }
    return hot.swapTo(c.config, req);
  };

  const effectiveNow = (): EffectiveBudget => {
    const active = hot.active ? choiceOf(hot.active.config) : undefined;
    return policy.effective(budget, monitor?.last, active?.predicted);
  };

  const reselect = async (reason: string): Promise<SwapRecord> => {
    const eff = effectiveNow();
    setBudgetGauges(eff);
    const b: UserBudget = {};
    if (eff.latencyMs !== undefined) b.latencyMs = eff.latencyMs;
    if (eff.memoryMB !== undefined) b.memoryMB = eff.memoryMB;
    const c = await choose(b);
    if (!c.feasible) log.warn({ budget: b, subnet: c.subnetId }, 'no subnet fits the budget; serving the cheapest');
    return swapTo(c, reason, true);
  };

  // --- first model -----------------------------------------------------------------------------
  const first = await choose(budget);
  if (!first.feasible) log.warn({ budget, subnet: first.subnetId }, 'no subnet fits the budget; serving the cheapest');
  const rec0 = await swapTo(first, 'initial', false);
  if (rec0.outcome !== 'swapped') {
    await hot.close();
    await pool?.close();
    await builder?.close();
    throw new NestswapError('ERR_HEALTH_CHECK', `The first subnet ${first.subnetId} could not be served: ${rec0.error?.message ?? rec0.outcome}`, { details: { swap: rec0 } });
  }
  setBudgetGauges(undefined);

  // Keep BN recalibration off the swap path: precompute statistics of the likely subnets, one at a
  // time, in the background (a swap that needs one meanwhile shares the same computation). A swap
  // goes first: the next subnet waits until no swap is being built (the builder is one thread).
  const precalibration = (async () => {
    for (const c of selector.candidates ?? []) {
      while (hot.busy && !closed) await new Promise((r) => setTimeout(r, 20));
      if (closed) return;
      try {
        await materializer.statistics(c.config, calibration);
      } catch (err) {
        log.warn({ err, subnet: pkg.space.id(c.config) }, 'background BN calibration failed');
      }
    }
  })();

  // --- monitor + policy loop ---------------------------------------------------------------------
  const probeInput = Float32Array.from({ length: hot.sampleSize }, (_, i) => ((i * 31) % 101) / 101);
  const monOpts = opts.monitor ?? {};
  monitor = new Monitor({
    intervalMs: monOpts.intervalMs ?? 1000,
    minSamples: monOpts.minSamples ?? policy.opts.minSamples,
    ...(monOpts.sensors ? { sensors: monOpts.sensors } : {}),
    ...(monOpts.idleProbeEvery !== undefined ? { idleProbeEvery: monOpts.idleProbeEvery } : {}),
    ...(monOpts.idleProbeMaxEvery !== undefined ? { idleProbeMaxEvery: monOpts.idleProbeMaxEvery } : {}),
    ...(monOpts.probe === false ? {} : { probe: () => hot.infer(probeInput, 1) }),
    predictedMs: (id) => known.get(id)?.predicted.latencyMs ?? null,
    activeId: () => hot.active?.subnetId ?? null,
  });
  monitor.start(async (w) => {
    if (closed) return;
    if (w.slowdown !== null) gSlowdown.set(w.slowdown);
    if (w.p50Ms !== null) gObserved.set({ quantile: '0.5' }, w.p50Ms);
    if (w.p99Ms !== null) gObserved.set({ quantile: '0.99' }, w.p99Ms);
    if (w.conditions.othersCpu !== null) gOthersCpu.set(w.conditions.othersCpu);
    if (w.conditions.availableMB !== null) gAvailMem.set(w.conditions.availableMB);
    const active = hot.active;
    let decision: Decision<SubnetConfig>;
    if (!active) return;
    if (pinned) decision = { action: 'hold', reason: 'pinned', effective: effectiveNow() };
    else if (hot.busy) decision = { action: 'hold', reason: 'swap in progress', effective: effectiveNow() };
    else decision = await policy.decide(budget, w, choiceOf(active.config), choose);
    lastDecision = decision;
    // A swap may follow in a few windows: have the builder up by then (it ends after 30 s without work),
    // and when the subnet that swap would pick now has its statistics cached, build it into the ONNX
    // cache so the decision only loads it. Never a calibration: the pick can still change while the
    // slowdown moves, and a swap to another subnet would wait behind seconds of stale calibration.
    if (builder && decision.action === 'hold' && !pinned && policy.leaning) {
      const next = decision.prospect;
      void (async () => {
        if (next && (await materializer.hasStatistics(next.config, calibration))) {
          if (await hot.prefetch(next.config)) log.debug({ subnet: next.subnetId }, 'prefetched the subnet a swap would pick');
        } else await builder.warm(pkg);
      })().catch((err: unknown) => log.warn({ err }, 'builder warm-up or prefetch failed'));
    }
    setBudgetGauges(decision.effective);
    events.emit('telemetry', { window: w, decision: { action: decision.action, reason: decision.reason }, effective: decision.effective } satisfies Telemetry);
    if (decision.action !== 'hold' && decision.target && !pinned && !closed) {
      log.info({ action: decision.action, reason: decision.reason, effective: decision.effective, to: decision.target.subnetId }, 'policy decision');
      await swapTo(decision.target, `policy ${decision.action}: ${decision.reason}`, true);
    }
  });

  // --- handle ----------------------------------------------------------------------------------
  const handle: DaemonHandle = {
    url: null,
    pkg,
    sampleShape,
    metrics,
    async setBudget(b) {
      budget = validateUserBudget(b);
      pinned = false;
      gPinned.set(0);
      policy.reset();
      log.info({ budget }, 'budget set');
      return reselect('budget');
    },
    async switchTo(cfg, o = {}) {
      const parsed = pkg.space.parse(cfg);
      const r = await swapTo(choiceOf(parsed), o.pin === false ? 'switch' : 'switch (pinned)', false);
      if (r.outcome === 'swapped' || r.outcome === 'unchanged') {
        pinned = o.pin !== false;
        gPinned.set(pinned ? 1 : 0);
      }
      return r;
    },
    async unpin() {
      pinned = false;
      gPinned.set(0);
      policy.reset();
      return reselect('unpin');
    },
    status() {
      const a = hot.active;
      const p = a ? choiceOf(a.config).predicted : { latencyMs: null, memoryMB: null, accuracy: null };
      const w = monitor?.last;
      return {
        supernet: pkg.name,
        subnet: a ? { id: a.subnetId, config: a.config } : null,
        predicted: { latencyMs: p.latencyMs, accuracy: p.accuracy, memoryMB: p.memoryMB },
        observed: { p50Ms: w?.p50Ms ?? null, p99Ms: w?.p99Ms ?? null, slowdown: w?.slowdown ?? null, samples: w?.samples ?? 0, at: w?.at ?? null },
        budget: { ...budget },
        effectiveBudget: lastDecision?.effective ?? null,
        pinned,
        selector: selector.kind,
        conditions: w?.conditions ?? null,
        lastDecision: lastDecision ? { action: lastDecision.action, reason: lastDecision.reason } : null,
        swaps: hot.history.slice(-50),
      };
    },
    async infer(input, batch) {
      const t0 = performance.now();
      try {
        const r = await hot.infer(input, batch);
        mLatency.observe((performance.now() - t0) / 1000);
        mRequests.inc({ subnet: r.subnetId });
        mSamples.inc(batch);
        const classes = r.logits.length / batch;
        const indices: number[] = [];
        for (let i = 0; i < batch; i++) {
          let best = 0;
          for (let j = 1; j < classes; j++) if (r.logits[i * classes + j]! > r.logits[i * classes + best]!) best = j;
          indices.push(best);
        }
        return { ...r, indices, labels: indices.map((i) => labels?.[i] ?? String(i)), classes };
      } catch (err) {
        mErrors.inc({ code: err instanceof NestswapError ? err.code : 'ERR_INTERNAL' });
        throw err;
      }
    },
    on(event: 'swap' | 'telemetry', cb: (x: never) => void) {
      const f = cb as (...args: unknown[]) => void;
      events.on(event, f);
      return () => events.off(event, f);
    },
    async close() {
      if (closed) return;
      closed = true;
      await monitor?.stop();
      await precalibration;
      await server?.close();
      await hot.close();
      await pool?.close();
      await builder?.close();
      events.removeAllListeners();
      log.info('agent closed');
    },
  };

  let server: { url: string; close(): Promise<void> } | undefined;
  if (opts.listen) {
    const { startServer } = await import('./server.js');
    const so: { port: number; host?: string; maxBodyBytes?: number; logger: Logger } = { port: opts.listen.port, logger: log.child({ component: 'http' }) };
    if (opts.listen.host !== undefined) so.host = opts.listen.host;
    if (opts.listen.maxBodyBytes !== undefined) so.maxBodyBytes = opts.listen.maxBodyBytes;
    server = await startServer(handle, so);
    (handle as { url: string | null }).url = server.url;
    log.info({ url: server.url }, 'serving');
  }
  return handle;
}
