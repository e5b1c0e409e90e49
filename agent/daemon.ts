/**
 * The device agent under Node: the agent core (core/agent-core.ts: materializer, hot swapper,
 * constraint monitor and policy) with Node's adapters: onnxruntime-node sessions (on this thread
 * with a builder worker, or in worker threads), BN statistics on disk, /proc and /sys sensors,
 * Prometheus metrics, a measured-ladder selector when none is given, and optionally the local HTTP API.
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
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeDurable } from '../runtime/node/durable.js';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MemoryStatsStore, type CalibrateOptions } from '../runtime/calibrate.js';
import type { PreparationOptions } from './core/ladder-selector.js';
import { countMacs } from '../runtime/cost.js';
import type { BuiltModel, CandidateCheck, HotSwapOptions } from '../runtime/hot-swap.js';
import { Materializer } from '../runtime/materializer.js';
import { nchwcCalibration } from '../runtime/node/nchwc.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { workerBackend, type WorkerBackend } from '../runtime/node/ort-worker.js';
import type { SupernetPackage } from '../runtime/package.js';
import { evaluateFlat, staticMemoryModel } from '../runtime/search/efficiency.js';
import { ModelSession, ortSessionOptions, type Backend } from '../runtime/session.js';
import type { SubnetConfig } from '../runtime/space.js';
import type { BuildContext, MetricsSink, SessionAdapter } from './core/adapters.js';
import { startAgentCore, type AgentCore } from './core/agent-core.js';
import { validateUserBudget, type AgentHandle, type Selector, type SubnetChoice } from './core/types.js';
import { systemSensors, type Sensors } from './monitor.js';
import type { PolicyOptions, Prediction, UserBudget } from './policy.js';
import { ladderCachePath } from './daemon-cache.js';
import { diskStatsStore } from './stats-store.js';
import { VERSION } from '../runtime/node/version.js';

export type { BudgetState, DaemonInferResult, DaemonStatus, Selector, SubnetChoice, Telemetry } from './core/types.js';
export { validateUserBudget } from './core/types.js';

/**
 * Intra-op threads an agent's sessions get when none are asked for: with sessions on the main thread,
 * the cores less one, left to the builder that prepares swaps; with sessions in worker threads, 1 (two
 * workers each with a full thread pool oversubscribe small machines).
 */
export function defaultSessionThreads(sessionHost: 'main' | 'worker' = 'main'): number {
  return sessionHost === 'worker' ? 1 : Math.max(1, availableParallelism() - 1);
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
   * swap step runs here, but each request then crosses a thread (bench/swap figures for both: docs/benchmarks.md#hot-swap).
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
  listen?: { port: number; host?: string; maxBodyBytes?: number; socket?: string };
  hotSwap?: Pick<HotSwapOptions, 'candidateHook' | 'warmupRuns' | 'checkRuns' | 'onnxCacheBytes'>;
  calibration?: CalibrateOptions;
  /** with a Pareto-ladder selector: rungs prepared at idle and the ONNX bytes kept for them */
  prepare?: PreparationOptions;
  /** health check: a candidate slower than the serving model (timed beside it) fails above the user
   * latency budget × this (default 1.5); one no slower than the serving model never fails for latency */
  healthLatencySlack?: number;
  /** measured-ladder size when no selector is given (default 8) */
  ladderSize?: number;
}

/** The Node daemon: the agent core plus its local HTTP API URL and Prometheus registry. */
export interface DaemonHandle extends AgentHandle, Pick<AgentCore, 'useSelector'> {
  readonly url: string | null;
  readonly metrics: Registry;
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
  validateUserBudget(opts.budget);
  const threads = opts.threads ?? 0;
  const sampleShape = pkg.manifest.input.shape;

  let selector: Selector;
  if (opts.selector) selector = opts.selector;
  else if (opts.chooseSubnet && opts.predict) selector = { kind: 'injected', choose: opts.chooseSubnet, predict: opts.predict };
  else {
    const t0 = performance.now();
    const ladderOpts: LadderOptions = { size: opts.ladderSize ?? 8, threads };
    if (opts.dataDir) ladderOpts.cacheFile = ladderCachePath(opts.dataDir, pkg.weightsDigest);
    selector = await ladderSelector(pkg, measuring, ladderOpts);
    log.info({ selector: selector.kind, ms: Math.round(performance.now() - t0) }, 'selector ready');
  }

  const { metrics, sink } = promMetrics();
  const stats = opts.dataDir ? diskStatsStore(join(opts.dataDir, 'bn-stats')) : new MemoryStatsStore();
  const sessions = nodeSessions(pkg, backend, pool, builder, !!opts.backend);
  const monOpts = opts.monitor ?? {};
  const { sensors: monSensors, ...monitorRest } = monOpts;
  const core = await startAgentCore({
    version: VERSION,
    pkg,
    budget: opts.budget,
    selector,
    sessions,
    storage: { stats },
    sensors: monSensors ?? systemSensors(),
    logger: log,
    metrics: sink,
    session: threads > 0 ? { threads } : {},
    monitor: monitorRest,
    ...(opts.policy ? { policy: opts.policy } : {}),
    ...(opts.hotSwap ? { hotSwap: opts.hotSwap } : {}),
    ...(opts.calibration ? { calibration: opts.calibration } : {}),
    ...(opts.prepare ? { prepare: opts.prepare } : {}),
    ...(opts.healthLatencySlack !== undefined ? { healthLatencySlack: opts.healthLatencySlack } : {}),
  });
  const handle: DaemonHandle = { ...core, url: null, sampleShape, metrics };

  if (opts.listen) {
    const { startServer } = await import('./server.js');
    const so: { port: number; host?: string; maxBodyBytes?: number; socket?: string; logger: Logger } = { port: opts.listen.port, logger: log.child({ component: 'http' }) };
    if (opts.listen.socket !== undefined) so.socket = opts.listen.socket;
    if (opts.listen.host !== undefined) so.host = opts.listen.host;
    if (opts.listen.maxBodyBytes !== undefined) so.maxBodyBytes = opts.listen.maxBodyBytes;
    const server = await startServer(handle, so);
    core.attach(server);
    (handle as { url: string | null }).url = server.url;
    log.info({ url: server.url, ...(server.socket ? { socket: server.socket } : {}) }, 'serving');
  }
  return handle;
}

/**
 * Sessions under Node: on this thread with a builder worker that calibrates, materializes, optimises
 * and checks candidates ('main'), or hosted in worker threads ('worker'), or on an injected backend.
 */
function nodeSessions(pkg: SupernetPackage, backend: Backend, pool: WorkerBackend | undefined, builder: WorkerBackend | undefined, injected: boolean): SessionAdapter {
  return {
    backend,
    // calibration sessions run in the builder when there is one (~1 s of compute per subnet), with
    // onnxruntime's default threads: a subnet is most often calibrated for a downgrade, i.e. while other
    // processes load the cores, where one thread got a third of the CPU time and took twice as long
    // (test/contention: 2.7-5.6 s instead of 2.2-2.7 s)
    calibrationBackend: builder ?? backend,
    // on onnxruntime-node's CPU provider (not an injected backend) in the NCHWc layout where this onnxruntime has it
    ...(injected ? {} : { calibrationLayout: nchwcCalibration }),
    // worker host: the worker rebuilds ONNX in a few ms off this thread; cached bytes would only be copied across
    ...(pool ? { hotSwap: { onnxCacheBytes: 0 } } : {}),
    ...(pool || builder
      ? {
          async build(cfg: SubnetConfig, check: CandidateCheck, { materializer, calibration, sessionOptions }: BuildContext): Promise<BuiltModel> {
            if (pool) {
              // worker host: the worker that will serve the candidate materializes it and loads it, so
              // neither step stalls this thread (statistics come from the cache, or are computed once)
              const { stats, cached } = await materializer.statistics(cfg, calibration);
              const session = await ModelSession.open(pool, sessionOptions, (o) => pool.openSubnet(pkg, cfg, stats, o));
              return { subnetId: pkg.space.id(cfg), session, statsCached: cached };
            }
            const { stats, cached } = await materializer.statistics(cfg, calibration);
            const p = await builder!.prepareSubnet(pkg, cfg, stats, ortSessionOptions(backend, sessionOptions), check);
            return {
              subnetId: pkg.space.id(cfg),
              bytes: p.bytes,
              statsCached: cached,
              // optimised in the builder, for this machine and these options
              ...(p.optimized ? { sessionOptions: { graphOptimizationLevel: 'disabled' as const } } : {}),
              checked: p.checked,
            };
          },
        }
      : {}),
    ...(builder ? { warm: () => builder.warm(pkg) } : {}),
    async close() {
      await pool?.close();
      await builder?.close();
    },
  };
}

/** The daemon's Prometheus registry and the core's metrics sink that feeds it. */
function promMetrics(): { metrics: Registry; sink: MetricsSink } {
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

  const sink: MetricsSink = {
    inferred(seconds, subnetId, batch) {
      mLatency.observe(seconds);
      mRequests.inc({ subnet: subnetId });
      mSamples.inc(batch);
    },
    inferFailed: (code) => mErrors.inc({ code }),
    swap(r, p) {
      mSwaps.inc({ outcome: r.outcome });
      if (r.outcome !== 'swapped') return;
      if (r.timings) mSwapTime.observe(r.timings.totalMs / 1000);
      gActive.reset();
      gActive.set({ subnet: r.to }, 1);
      if (p) for (const k of ['latencyMs', 'memoryMB', 'accuracy'] as const) if (p[k] !== null) gPredicted.set({ metric: k }, p[k]);
    },
    window(w) {
      if (w.slowdown !== null) gSlowdown.set(w.slowdown);
      if (w.p50Ms !== null) gObserved.set({ quantile: '0.5' }, w.p50Ms);
      if (w.p99Ms !== null) gObserved.set({ quantile: '0.99' }, w.p99Ms);
      if (w.conditions.othersCpu !== null) gOthersCpu.set(w.conditions.othersCpu);
      if (w.conditions.availableMB !== null) gAvailMem.set(w.conditions.availableMB);
    },
    budget(budget, eff) {
      gBudget.reset();
      if (budget.latencyMs !== undefined) gBudget.set({ kind: 'user', metric: 'latency_ms' }, budget.latencyMs);
      if (budget.memoryMB !== undefined) gBudget.set({ kind: 'user', metric: 'memory_mb' }, budget.memoryMB);
      if (eff?.latencyMs !== undefined) gBudget.set({ kind: 'effective', metric: 'latency_ms' }, eff.latencyMs);
      if (eff?.memoryMB !== undefined) gBudget.set({ kind: 'effective', metric: 'memory_mb' }, eff.memoryMB);
    },
    pinned: (p) => gPinned.set(p ? 1 : 0),
  };
  return { metrics, sink };
}
