/**
 * The agent's control loop, platform-neutral (no Node imports): first subnet, constraint monitor →
 * policy → selector → hot swap, background BN calibration, pushed commands (budget, switch, unpin),
 * telemetry. Sessions, storage, clock, sensors and transports are adapters (./adapters.ts); the Node
 * daemon (agent/daemon.ts) and the browser agent (web/agent.ts) supply them.
 */
import type { CalibrateOptions } from '../../runtime/calibrate.js';
import { countMacs } from '../../runtime/cost.js';
import { NestswapError } from '../../runtime/errors.js';
import { HotSwapper, type HotSwapOptions, type SwapRecord, type SwapRequest } from '../../runtime/hot-swap.js';
import { Materializer } from '../../runtime/materializer.js';
import type { SupernetPackage } from '../../runtime/package.js';
import type { SessionOptions } from '../../runtime/session.js';
import type { SubnetConfig } from '../../runtime/space.js';
import { Policy, type Decision, type EffectiveBudget, type PolicyOptions, type Prediction, type UserBudget } from '../policy.js';
import { DEFAULT_OPEN_SESSIONS, isLadderSelector, prepareRungs, type PreparationOptions } from './ladder-selector.js';
import { silentLogger, type CoreLogger, type MetricsSink, type SessionAdapter, type StorageAdapter, type TransportLink } from './adapters.js';
import { systemClock, type Clock } from './clock.js';
import { Emitter } from './emitter.js';
import { Monitor, type Sensors } from './monitor.js';
import { validateUserBudget, type AgentHandle, type BudgetState, type Selector, type SubnetChoice, type Telemetry } from './types.js';

export interface AgentCoreOptions {
  pkg: SupernetPackage;
  /** the software version reported in status() (the host knows it: package.json in Node) */
  version?: string;
  budget: UserBudget;
  selector: Selector;
  sessions: SessionAdapter;
  storage: StorageAdapter;
  sensors: Sensors;
  clock?: Clock;
  logger?: CoreLogger;
  metrics?: MetricsSink;
  /** options of every session (e.g. intra-op threads) */
  session?: Partial<SessionOptions>;
  monitor?: { intervalMs?: number; minSamples?: number; probe?: boolean; idleProbeEvery?: number; idleProbeMaxEvery?: number };
  policy?: Partial<PolicyOptions>;
  hotSwap?: Pick<HotSwapOptions, 'candidateHook' | 'warmupRuns' | 'checkRuns' | 'onnxCacheBytes'>;
  calibration?: CalibrateOptions;
  /** with a ladder selector: how many rungs near the current one are prepared at idle, and the ONNX bytes kept for them */
  prepare?: PreparationOptions;
  /** health check: a candidate slower than the serving model (timed beside it) fails above the user
   * latency budget × this (default 1.5); one no slower than the serving model never fails for latency */
  healthLatencySlack?: number;
}

export interface AgentCore extends AgentHandle {
  /** closes `link` with the agent (after the monitor stops, before sessions are released) */
  attach(link: TransportLink): void;
  /**
   * Decides from `next` from now on (e.g. a Pareto ladder once a background profile is ready): the
   * predictions of known subnets are redone with it, preparation starts over for it, and unless
   * pinned the budget is chosen again (`reason` in the swap record). Resolves to that swap, or null
   * when pinned or closed.
   */
  useSelector(next: Selector, reason?: string): Promise<SwapRecord | null>;
}

function macsScore(pkg: SupernetPackage, cfg: SubnetConfig, p: Prediction): number {
  return p.accuracy ?? countMacs(pkg.arch, cfg);
}

function infeasibleBudget(name: string, b: UserBudget, fastest: SubnetChoice): NestswapError {
  const p = fastest.predicted;
  const parts = [p.latencyMs !== null ? `${p.latencyMs.toFixed(3)} ms` : null, p.memoryMB !== null ? `${p.memoryMB.toFixed(1)} MB` : null].filter(Boolean).join(', ');
  return new NestswapError('ERR_BUDGET_INFEASIBLE', `No subnet of ${name} can meet ${JSON.stringify(b)}, even on a quiet machine: the cheapest is predicted at ${parts}.`, {
    details: { budget: b, minLatencyMs: p.latencyMs, minMemoryMB: p.memoryMB, subnetId: fastest.subnetId },
  });
}

/** Does the serving subnet meet the user budget as things run now (its prediction × the live slowdown)? */
function budgetState(b: UserBudget, p: SubnetChoice['predicted'] | null, slowdown: number, last: SwapRecord | undefined): BudgetState {
  if (b.latencyMs === undefined && b.memoryMB === undefined) return { met: null, reason: null };
  if (!p) return { met: null, reason: null };
  const why: string[] = [];
  const s = slowdown;
  if (b.latencyMs !== undefined && p.latencyMs !== null && p.latencyMs * s > b.latencyMs)
    why.push(`the serving subnet is predicted at ${p.latencyMs.toFixed(3)} ms × slowdown ${s.toFixed(2)} = ${(p.latencyMs * s).toFixed(3)} ms > ${b.latencyMs} ms`);
  if (b.memoryMB !== undefined && p.memoryMB !== null && p.memoryMB > b.memoryMB) why.push(`the serving subnet needs ${p.memoryMB.toFixed(1)} MB > ${b.memoryMB} MB`);
  if (why.length && last?.outcome === 'failed') why.push(`the last swap (to ${last.to}) failed: ${last.error?.message ?? 'failed'}`);
  return why.length ? { met: false, reason: why.join('; ') } : { met: true, reason: null };
}

/** Choices memoized per budget rounded to 2% steps: the policy asks every window. */
function memoChooser(selector: Selector, log: CoreLogger): (b: UserBudget) => Promise<SubnetChoice> {
  const memo = new Map<string, Promise<SubnetChoice>>();
  const q = (x: number | undefined) => (x === undefined ? undefined : Math.exp(Math.round(Math.log(x) / Math.log(1.02)) * Math.log(1.02)));
  return (b: UserBudget): Promise<SubnetChoice> => {
    const qb: UserBudget = {};
    const l = q(b.latencyMs);
    const m = q(b.memoryMB);
    if (l !== undefined) qb.latencyMs = l;
    if (m !== undefined) qb.memoryMB = m;
    const key = `${qb.latencyMs ?? '-'}/${qb.memoryMB ?? '-'}`;
    let p = memo.get(key);
    if (!p) {
      log.debug({ budget: qb }, 'selector: search for a new budget');
      p = selector.choose(qb);
      p.catch(() => memo.delete(key));
      if (memo.size > 512) memo.delete(memo.keys().next().value!);
      memo.set(key, p);
    }
    return p;
  };
}

export async function startAgentCore(opts: AgentCoreOptions): Promise<AgentCore> {
  const { pkg, sessions } = opts;
  let selector = opts.selector;
  const log = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const sink: MetricsSink = opts.metrics ?? {};
  let budget = validateUserBudget(opts.budget);
  const sampleShape = pkg.manifest.input.shape;
  const labels = pkg.manifest.input.labels ?? pkg.arch.input.labels ?? null;
  const events = new Emitter();
  const links: TransportLink[] = [];

  // a ladder decides in microseconds and its rungs can lie closer than the memo's 2% steps (a rounded
  // budget would miss the rung it names, or pick one above it): it answers every budget as given
  const chooserOf = (sel: Selector) => (isLadderSelector(sel) ? (b: UserBudget) => sel.choose(b) : memoChooser(sel, log));
  let choose = chooserOf(selector);
  const known = new Map<string, SubnetChoice>();
  const choiceOf = (cfg: SubnetConfig): SubnetChoice => {
    const id = pkg.space.id(cfg);
    const hit = known.get(id);
    if (hit) return hit;
    const predicted = selector.predict(cfg);
    return { subnetId: id, config: cfg, predicted, score: macsScore(pkg, cfg, predicted), feasible: true };
  };

  const openedKeepOf = (sel: Selector) => (isLadderSelector(sel) ? (opts.prepare?.sessions ?? DEFAULT_OPEN_SESSIONS) : 0);

  // --- runtime parts -------------------------------------------------------------------------
  const materializer = new Materializer(pkg, sessions.calibrationBackend ?? sessions.backend, opts.storage.stats, sessions.calibrationLayout);
  const calibration: CalibrateOptions = opts.calibration ?? {};
  const sessionOptions: Partial<SessionOptions> = opts.session ?? {};
  const ctx = { materializer, calibration, sessionOptions };
  let monitor: Monitor | undefined;
  const hot = new HotSwapper({
    backend: sessions.backend,
    sampleShape,
    idOf: (cfg) => pkg.space.id(cfg),
    build: async (cfg, check) => {
      if (sessions.build) return sessions.build(cfg, check, ctx);
      const r = await materializer.materialize(cfg, { calibration, ...(sessions.graph ?? {}) });
      return { subnetId: r.subnetId, bytes: r.bytes, statsCached: r.statsCached };
    },
    ...(sessions.hotSwap ?? {}),
    // on a ladder, sessions of the nearest prepared rungs are kept open (prepareRungs)
    openedKeep: openedKeepOf(selector),
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
    if (r.outcome === 'swapped') policy.swapped();
    sink.swap?.(r, r.outcome === 'swapped' ? known.get(r.to)?.predicted : undefined);
    const level = r.outcome === 'failed' ? 'warn' : 'info';
    log[level]({ swap: r }, `swap ${r.outcome}: ${r.from ?? '-'} -> ${r.to} (${r.reason})`);
    events.emit('swap', r);
  });

  const setBudgetGauges = (eff: EffectiveBudget | undefined) => sink.budget?.(budget, eff);
  const setPinned = (p: boolean) => {
    pinned = p;
    sink.pinned?.(p);
  };

  const swapTo = async (c: SubnetChoice, reason: string, check: boolean): Promise<SwapRecord> => {
    known.set(c.subnetId, c);
    const req: SwapRequest = { reason };
    // judged against the serving model timed beside it: a downgrade is never refused for being slow
    // under contention; an upgrade is when it would break the budget as things run now
    if (check && budget.latencyMs !== undefined) req.latency = { upgradeLimitMs: budget.latencyMs * (opts.healthLatencySlack ?? 1.5) };
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
    await sessions.close?.();
    throw new NestswapError('ERR_HEALTH_CHECK', `The first subnet ${first.subnetId} could not be served: ${rec0.error?.message ?? rec0.outcome}`, { details: { swap: rec0 } });
  }
  setBudgetGauges(undefined);

  // Keep BN recalibration off the swap path: precompute statistics of the likely subnets, one at a
  // time, in the background (a swap that needs one meanwhile shares the same computation). A swap
  // goes first: the next subnet waits until no swap is being built (the builder is one thread).
  // One preparation per selector: a replaced selector's stops at its next step.
  const preparations: Promise<void>[] = [];
  const prepare = async (sel: Selector) => {
    const over = () => closed || sel !== selector;
    if (isLadderSelector(sel)) return prepareRungs(sel, { materializer, hot, calibration, sleep: (ms) => clock.sleep(ms), closed: over, log }, opts.prepare);
    for (const c of sel.candidates ?? []) {
      while (hot.busy && !over()) await clock.sleep(20);
      if (over()) return;
      try {
        await materializer.statistics(c.config, calibration);
      } catch (err) {
        log.warn({ err, subnet: pkg.space.id(c.config) }, 'background BN calibration failed');
      }
    }
  };
  preparations.push(prepare(selector));

  // --- monitor + policy loop ---------------------------------------------------------------------
  const probeInput = Float32Array.from({ length: hot.sampleSize }, (_, i) => ((i * 31) % 101) / 101);
  const monOpts = opts.monitor ?? {};
  monitor = new Monitor({
    intervalMs: monOpts.intervalMs ?? 1000,
    minSamples: monOpts.minSamples ?? policy.opts.minSamples,
    sensors: opts.sensors,
    clock,
    ...(monOpts.idleProbeEvery !== undefined ? { idleProbeEvery: monOpts.idleProbeEvery } : {}),
    ...(monOpts.idleProbeMaxEvery !== undefined ? { idleProbeMaxEvery: monOpts.idleProbeMaxEvery } : {}),
    ...(monOpts.probe === false ? {} : { probe: () => hot.infer(probeInput, 1) }),
    predictedMs: (id) => known.get(id)?.predicted.latencyMs ?? null,
    activeId: () => hot.active?.subnetId ?? null,
  });
  monitor.start(async (w) => {
    if (closed) return;
    sink.window?.(w);
    const active = hot.active;
    let decision: Decision<SubnetConfig>;
    if (!active) return;
    if (pinned) decision = { action: 'hold', reason: 'pinned', effective: effectiveNow() };
    else if (hot.busy) decision = { action: 'hold', reason: 'swap in progress', effective: effectiveNow() };
    else decision = await policy.decide(budget, w, choiceOf(active.config), choose);
    lastDecision = decision;
    if (isLadderSelector(selector)) selector.noteSlowdown(decision.effective.slowdown, budget.latencyMs);
    // A swap may follow in a few windows: have the builder up by then (it ends after 30 s without work),
    // and when the subnet that swap would pick now has its statistics cached, build it into the ONNX
    // cache so the decision only loads it. Never a calibration: the pick can still change while the
    // slowdown moves, and a swap to another subnet would wait behind seconds of stale calibration.
    const warm = sessions.warm?.bind(sessions);
    if (warm && decision.action === 'hold' && !pinned && policy.leaning) {
      const next = decision.prospect;
      void (async () => {
        if (next && (await materializer.hasStatistics(next.config, calibration))) {
          if (await hot.prefetch(next.config)) log.debug({ subnet: next.subnetId }, 'prefetched the subnet a swap would pick');
        } else await warm();
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
  return {
    pkg,
    sampleShape,
    attach(link) {
      links.push(link);
    },
    async useSelector(next, reason = `selector ${next.kind}`) {
      if (closed) return null;
      const from = selector.kind;
      selector = next;
      choose = chooserOf(next);
      for (const [id, c] of known) {
        const predicted = next.predict(c.config);
        known.set(id, { ...c, predicted, score: macsScore(pkg, c.config, predicted) });
      }
      await hot.setOpenedKeep(openedKeepOf(next));
      preparations.push(prepare(next));
      log.info({ from, to: next.kind }, 'selector replaced');
      if (pinned) return null;
      policy.reset();
      return reselect(reason);
    },
    async setBudget(b) {
      const next = validateUserBudget(b);
      // refused only when no subnet could meet it even on a quiet machine; one the live
      // conditions prevent now is accepted, served as well as it can be, and reported
      const quiet = await choose(next);
      if (!quiet.feasible) throw infeasibleBudget(pkg.name, next, quiet);
      budget = next;
      setPinned(false);
      policy.reset();
      log.info({ budget }, 'budget set');
      return reselect('budget');
    },
    async switchTo(cfg, o = {}) {
      const parsed = pkg.space.parse(cfg);
      const r = await swapTo(choiceOf(parsed), o.pin === false ? 'switch' : 'switch (pinned)', false);
      if (r.outcome === 'swapped' || r.outcome === 'unchanged') setPinned(o.pin !== false);
      return r;
    },
    async unpin() {
      setPinned(false);
      policy.reset();
      return reselect('unpin');
    },
    status() {
      const a = hot.active;
      const p = a ? choiceOf(a.config).predicted : { latencyMs: null, memoryMB: null, accuracy: null };
      const w = monitor?.last;
      return {
        version: opts.version ?? null,
        supernet: pkg.name,
        packageVersion: pkg.manifest.version,
        subnet: a ? { id: a.subnetId, config: a.config } : null,
        predicted: { latencyMs: p.latencyMs, accuracy: p.accuracy, memoryMB: p.memoryMB },
        observed: { p50Ms: w?.p50Ms ?? null, p99Ms: w?.p99Ms ?? null, slowdown: w?.slowdown ?? null, samples: w?.samples ?? 0, at: w?.at ?? null },
        budget: { ...budget },
        effectiveBudget: lastDecision?.effective ?? null,
        budgetState: budgetState(budget, a ? p : null, lastDecision?.effective.slowdown ?? 1, hot.history[hot.history.length - 1]),
        pinned,
        selector: selector.kind,
        ladder: isLadderSelector(selector) ? selector.ladderStatus() : null,
        conditions: w?.conditions ?? null,
        lastDecision: lastDecision ? { action: lastDecision.action, reason: lastDecision.reason } : null,
        swaps: hot.history.slice(-50),
      };
    },
    async infer(input, batch) {
      const t0 = clock.now();
      try {
        const r = await hot.infer(input, batch);
        sink.inferred?.((clock.now() - t0) / 1000, r.subnetId, batch);
        const classes = r.logits.length / batch;
        const indices: number[] = [];
        for (let i = 0; i < batch; i++) {
          let best = 0;
          for (let j = 1; j < classes; j++) if (r.logits[i * classes + j]! > r.logits[i * classes + best]!) best = j;
          indices.push(best);
        }
        return { ...r, indices, labels: indices.map((i) => labels?.[i] ?? String(i)), classes };
      } catch (err) {
        sink.inferFailed?.(err instanceof NestswapError ? err.code : 'ERR_INTERNAL');
        throw err;
      }
    },
    on(event: 'swap' | 'telemetry', cb: (x: never) => void) {
      return events.on(event, cb as (x: unknown) => void);
    },
    async close() {
      if (closed) return;
      closed = true;
      await monitor?.stop();
      await Promise.all(preparations);
      for (const l of links) await l.close();
      await hot.close();
      await sessions.close?.();
      events.clear();
      log.info('agent closed');
    },
  };
}
