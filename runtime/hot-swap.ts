/**
 * Hot swap: replace the serving subnet without dropping or failing a request.
 *
 * A swap builds the candidate in the background (ONNX bytes from a cache by subnet id, else from
 * `build`, normally the materializer with its BN-statistics cache), creates its session, warms it
 * up, health-checks it (finite outputs of the expected shape on a fixed input; latency timed beside
 * the serving model when `latency` is asked for, a downgrade never failing for it; or an absolute
 * `maxLatencyMs`), then replaces one reference. Runs hold a reference count on the
 * model they started on, so in-flight runs on the old session finish before it is released.
 *
 * Swaps are serialized; while one is being built, a newer request replaces a queued older one (the
 * older is reported 'superseded'). A candidate that fails never replaces the serving model: the
 * swap resolves with outcome 'failed' and error code ERR_HEALTH_CHECK (expected failures are
 * values, not exceptions). Platform-neutral: no Node imports; the backend is injected.
 */
import { crashPoint } from './crash.js';
import { NestswapError, type ErrorCode } from './errors.js';
import { ModelSession, type Backend, type RunOutput, type SessionOptions } from './session.js';
import type { SubnetConfig } from './space.js';

/** How a candidate is warmed up and checked: given to `build`, for builders that check where they build. */
export interface CandidateCheck {
  /** one sample */
  input: Float32Array;
  /** [1, ...sampleShape] */
  dims: number[];
  warmupRuns: number;
  checkRuns: number;
}

export interface CheckedElsewhere {
  times: number[];
  output: { data: Float32Array; dims: readonly number[] };
}

/** A candidate's ONNX bytes and how to open them. */
export interface CandidateBytes {
  bytes: Uint8Array;
  /** session options for these bytes over the swapper's own (e.g. graph optimisation 'disabled' for a graph optimised where it was built) */
  sessionOptions?: Partial<SessionOptions>;
  /**
   * The candidate is warmed up and checked where it was built, with the swapper's CandidateCheck (it
   * may still be running while the session here opens): the check runs' times and the last one's
   * output. Here it then gets a single run (finite outputs of the serving model's shape), and its
   * checked latency is the median of `times`.
   */
  checked?: Promise<CheckedElsewhere> | CheckedElsewhere;
}

/** What the ONNX cache keeps of a build: its bytes, how to open them and its check (`checked`, or the build's own). */
function candidateOf(b: CandidateBytes, checked = b.checked): CandidateBytes {
  const c: CandidateBytes = { bytes: b.bytes };
  if (b.sessionOptions) c.sessionOptions = b.sessionOptions;
  if (checked) c.checked = checked;
  return c;
}

export type BuiltModel = {
  subnetId: string;
  /** BN statistics came from a cache (reported in the swap record) */
  statsCached?: boolean;
} & (
  | (CandidateBytes & { session?: undefined })
  /** a session the builder opened itself (e.g. materialized and loaded in a worker thread); not cached as bytes */
  | { session: ModelSession; bytes?: undefined }
);

export interface HotSwapOptions {
  backend: Backend;
  /** One sample's input dims, e.g. [1, 28, 28] (the package's input contract, stable across swaps). */
  sampleShape: readonly number[];
  /** Builds a subnet's ONNX bytes (materialize + BN statistics), or opens its session itself. */
  build: (cfg: SubnetConfig, check: CandidateCheck) => Promise<BuiltModel>;
  /** Canonical id of a config (used before building, to hit the ONNX cache). */
  idOf: (cfg: SubnetConfig) => string;
  session?: Partial<SessionOptions>;
  /** Warm-up runs before the health check (default 3). */
  warmupRuns?: number;
  /** Timed health-check runs; their median is the checked latency (default 5). */
  checkRuns?: number;
  /** Fixed health-check input (one sample); default: a deterministic pattern in [0, 1). */
  checkInput?: Float32Array;
  /** ONNX bytes kept by subnet id (LRU by total size; default 64 MB, 0 disables). */
  onnxCacheBytes?: number;
  /** Sessions kept open and warmed for cached candidates (`preopen`), oldest released first (default 0). */
  openedKeep?: number;
  /** Swap records kept (default 200). */
  historyLimit?: number;
  /** Test hook: sees (and may replace) the candidate's bytes before its session is created. */
  candidateHook?: (bytes: Uint8Array, subnetId: string) => Uint8Array;
  /** Called after every run with its time (ms; measured where it ran when the backend reports that,
   * else wall time), batch size and the subnet that answered. */
  onRun?: (ms: number, batch: number, subnetId: string) => void;
  now?: () => number;
}

export type SwapOutcome = 'swapped' | 'unchanged' | 'failed' | 'superseded';

export interface SwapTimings {
  /** decision → ONNX bytes ready */
  buildMs: number;
  /** → session created (opened from the bytes, or by the builder) */
  openMs: number;
  /** → session created and warmed up */
  warmMs: number;
  /** → health check passed */
  checkMs: number;
  /** → new model serving (decision → serving in total) */
  totalMs: number;
}

export interface SwapRecord {
  seq: number;
  at: string;
  reason: string;
  from: string | null;
  to: string;
  outcome: SwapOutcome;
  timings: SwapTimings | null;
  /** ONNX bytes came from the cache by subnet id */
  onnxCached: boolean;
  /** the session was opened and run once ahead (`preopen`): the swap skipped opening it */
  openedAhead?: boolean;
  statsCached: boolean | null;
  /** median health-check latency (ms), when the check ran */
  checkLatencyMs: number | null;
  /** the serving model's median on the same input, timed beside the candidate (null: not compared) */
  servingLatencyMs: number | null;
  /** why the latency criterion passed or failed (null: no latency criterion asked for) */
  latencyVerdict: LatencyVerdict | null;
  error?: { code: ErrorCode; message: string };
}

/**
 * - `not-slower`: the candidate ran no slower than the serving model beside it (a downgrade): passes
 * - `within-limit`: slower than the serving model (an upgrade) but within `upgradeLimitMs`: passes
 * - `over-limit`: an upgrade over `upgradeLimitMs`, or any candidate over `maxLatencyMs`: fails
 */
export type LatencyVerdict = 'not-slower' | 'within-limit' | 'over-limit';

/** The relative latency criterion: the candidate is judged against what it replaces, measured the same way at the same moment. */
export interface RelativeLatencyCheck {
  /** a candidate slower than the serving model fails when its median exceeds this (ms, measured now) */
  upgradeLimitMs?: number;
  /** a candidate within this fraction of the serving model's median counts as not slower (default 0.1) */
  tolerance?: number;
  /** interleaved timed runs of each model (default max(3, checkRuns)) */
  pairs?: number;
}

interface CheckTimes {
  latencyMs: number;
  servingMs: number | null;
  verdict: LatencyVerdict | null;
}

export interface SwapRequest {
  reason?: string;
  /** absolute criterion: fails when the candidate's median check latency exceeds this, whatever it replaces */
  maxLatencyMs?: number;
  /** relative criterion: the candidate timed beside the serving model (ignored when nothing serves yet) */
  latency?: RelativeLatencyCheck;
  /** when the decision was taken (default: now); start of the timings */
  decidedAt?: number;
}

export interface InferResult {
  logits: Float32Array;
  dims: readonly number[];
  subnetId: string;
  config: SubnetConfig;
  /** the run's own time (ms): the backend's measure where it has one, else the wall time around the run */
  computeMs: number;
}

interface Loaded {
  subnetId: string;
  config: SubnetConfig;
  session: ModelSession;
  refs: number;
  retired: boolean;
  released: Promise<void> | undefined;
  outputDims: readonly number[];
}

interface Pending {
  cfg: SubnetConfig;
  req: SwapRequest;
  decidedAt: number;
  resolve: (r: SwapRecord) => void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export class HotSwapper {
  private current: Loaded | undefined;
  private queued: Pending | undefined;
  private worker: Promise<void> | undefined;
  private readonly cache = new Map<string, CandidateBytes>();
  private prefetching: Promise<boolean> | undefined;
  /** sessions opened ahead from cached bytes and run once (finite outputs), by subnet id, oldest first */
  private readonly opened = new Map<string, { session: ModelSession; dims: readonly number[] }>();
  private opening: Promise<boolean> | undefined;
  private cacheBytes = 0;
  private seq = 0;
  private closed = false;
  private readonly retiring = new Set<Loaded>();
  readonly history: SwapRecord[] = [];
  private readonly listeners = new Set<(r: SwapRecord) => void>();
  private readonly perSample: number;
  private readonly checkInput: Float32Array;
  private readonly now: () => number;

  constructor(readonly opts: HotSwapOptions) {
    this.perSample = opts.sampleShape.reduce((a, b) => a * b, 1);
    this.now = opts.now ?? (() => performance.now());
    if (opts.checkInput && opts.checkInput.length !== this.perSample)
      throw new RangeError(`'checkInput' has ${opts.checkInput.length} values; one sample of [${opts.sampleShape.join(', ')}] has ${this.perSample}.`);
    // A fixed, deterministic input: the same candidate always sees the same check.
    this.checkInput = opts.checkInput ?? Float32Array.from({ length: this.perSample }, (_, i) => ((i * 7919) % 997) / 997);
  }

  /** The serving subnet, if any. */
  get active(): { subnetId: string; config: SubnetConfig } | undefined {
    return this.current ? { subnetId: this.current.subnetId, config: this.current.config } : undefined;
  }

  /** Values in one sample. */
  get sampleSize(): number {
    return this.perSample;
  }

  /** Bytes of built ONNX held by the cache. */
  get cachedBytes(): number {
    return this.cacheBytes;
  }

  /** Whether a swap is being built or queued. */
  get busy(): boolean {
    return this.worker !== undefined;
  }

  onSwap(cb: (r: SwapRecord) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /**
   * Requests a swap to `cfg`. Resolves with the record once the request is decided: served,
   * unchanged (already serving), failed (the old model keeps serving) or superseded by a newer one.
   */
  swapTo(cfg: SubnetConfig, req: SwapRequest = {}): Promise<SwapRecord> {
    if (this.closed) return Promise.reject(new NestswapError('ERR_SWAP', 'Hot swapper is closed.'));
    const decidedAt = req.decidedAt ?? this.now();
    return new Promise<SwapRecord>((resolve) => {
      const older = this.queued;
      this.queued = { cfg, req, decidedAt, resolve };
      if (older) this.finish(older, this.record(older, 'superseded', null, false, null, null));
      // One worker drains the queue; a second caller joins it instead of racing.
      if (!this.worker) this.worker = this.drain();
    });
  }

  /**
   * Builds `cfg` into the ONNX cache ahead of a swap that may follow (the policy leaning towards
   * it), so that swap only loads it. One at a time, and none while a swap is being built (they
   * share the builder); nothing when the cache is off or already holds it, or it is serving.
   * Resolves true when the candidate is in the cache. A failed build is not reported here: the swap,
   * if it comes, builds again and reports it.
   */
  prefetch(cfg: SubnetConfig): Promise<boolean> {
    const id = this.opts.idOf(cfg);
    if (this.closed || this.prefetching || this.worker || this.cacheCap() <= 0 || this.cache.has(id) || this.current?.subnetId === id) return Promise.resolve(false);
    const done = (async () => {
      try {
        const b = await this.opts.build(cfg, this.candidateCheck());
        if (b.session) {
          // a backend that opens sessions where they will serve has no bytes to keep
          await b.session.release().catch(() => undefined);
          return false;
        }
        // a candidate whose check failed where it was built is not kept: the swap builds it again and reports why
        const checked = b.checked ? await b.checked : undefined;
        if (checked && !checked.output.data.every(Number.isFinite)) return false;
        this.cachePut(id, candidateOf(b, checked));
        return this.cache.has(id);
      } catch {
        return false;
      } finally {
        this.prefetching = undefined;
      }
    })();
    this.prefetching = done;
    return done;
  }

  /** `openedKeep` as changed by setOpenedKeep */
  private openedCap: number | undefined;

  /**
   * Changes how many sessions are kept opened ahead (`openedKeep`, e.g. when the agent's selector is
   * replaced); the oldest beyond the new count are released now.
   */
  async setOpenedKeep(n: number): Promise<void> {
    this.openedCap = n;
    for (const [k, v] of this.opened) {
      if (this.opened.size <= Math.max(0, n)) break;
      this.opened.delete(k);
      await v.session.release().catch(() => undefined);
    }
  }

  /** Ids with a session opened ahead (`preopen`). */
  get openedIds(): string[] {
    return [...this.opened.keys()];
  }

  /** Whether built bytes of this subnet are in the cache. */
  isCached(cfg: SubnetConfig): boolean {
    return this.cache.has(this.opts.idOf(cfg));
  }

  /**
   * Opens a session for a candidate whose bytes are cached and runs it once on the check input, so a
   * swap to it skips opening and warming (its health check still runs). Kept up to `openedKeep`, the
   * oldest released first; nothing while a swap is being built. Resolves true when it is kept.
   */
  preopen(cfg: SubnetConfig): Promise<boolean> {
    const id = this.opts.idOf(cfg);
    const cap = this.openedCap ?? this.opts.openedKeep ?? 0;
    const built = this.cache.get(id);
    if (cap <= 0 || this.closed || this.worker || this.opening || !built || this.opened.has(id) || this.current?.subnetId === id) return Promise.resolve(false);
    const done = (async () => {
      let session: ModelSession | undefined;
      try {
        const bytes = this.opts.candidateHook ? this.opts.candidateHook(built.bytes, id) : built.bytes;
        session = await ModelSession.create(this.opts.backend, bytes, { ...(this.opts.session ?? {}), ...(built.sessionOptions ?? {}) });
        const out = await session.runFirst(this.checkInput, [1, ...this.opts.sampleShape]);
        if (!out.data.every(Number.isFinite) || this.closed || !this.cache.has(id)) return false;
        this.opened.set(id, { session, dims: out.dims });
        session = undefined;
        for (const [k, v] of this.opened) {
          if (this.opened.size <= cap) break;
          this.opened.delete(k);
          await v.session.release().catch(() => undefined);
        }
        return this.opened.has(id);
      } catch {
        return false;
      } finally {
        if (session) await session.release().catch(() => undefined);
        this.opening = undefined;
      }
    })();
    this.opening = done;
    return done;
  }

  /** Runs one batch on the serving model; in-flight runs keep their model alive across swaps. */
  async infer(input: Float32Array, batch: number): Promise<InferResult> {
    if (!Number.isInteger(batch) || batch < 1) throw new NestswapError('ERR_INPUT', `'batch' must be a positive integer (got ${batch}).`);
    if (input.length !== batch * this.perSample)
      throw new NestswapError('ERR_INPUT', `Input has ${input.length} values; ${batch} sample(s) of [${this.opts.sampleShape.join(', ')}] need ${batch * this.perSample}.`, {
        details: { expected: batch * this.perSample, actual: input.length },
      });
    const m = this.current;
    if (!m) throw new NestswapError('ERR_SWAP', 'No model is serving yet.');
    m.refs++;
    try {
      const t0 = this.now();
      const out = await m.session.runFirst(input, [batch, ...this.opts.sampleShape]);
      // the run's own time where the backend measured it, else the wall time here
      const computeMs = out.computeMs ?? this.now() - t0;
      this.opts.onRun?.(computeMs, batch, m.subnetId);
      return { logits: out.data, dims: out.dims, subnetId: m.subnetId, config: m.config, computeMs };
    } finally {
      m.refs--;
      if (m.retired && m.refs === 0) this.release(m);
    }
  }

  /** Waits for queued swaps, then releases every session (after their in-flight runs). */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.worker;
    this.closed = true;
    await this.prefetching; // its builder call finishes before the caller tears the builder down
    await this.opening;
    for (const [k, v] of this.opened) {
      this.opened.delete(k);
      await v.session.release().catch(() => undefined);
    }
    const m = this.current;
    this.current = undefined;
    if (m) {
      m.retired = true;
      if (m.refs === 0) this.release(m);
    }
    await Promise.all([...this.retiring].map((x) => x.released));
  }

  private async drain(): Promise<void> {
    // `worker` is cleared in the same tick the queue is seen empty: a caller resumed by `finish`
    // must either find the worker gone (and start one) or its request picked up by this loop.
    for (;;) {
      const p = this.queued;
      if (!p) {
        this.worker = undefined;
        return;
      }
      this.queued = undefined;
      let r: SwapRecord;
      try {
        r = await this.execute(p);
      } catch (err) {
        r = this.record(p, 'failed', null, false, null, null, err);
      }
      this.finish(p, r);
    }
  }

  private finish(p: Pending, r: SwapRecord): void {
    this.history.push(r);
    const limit = this.opts.historyLimit ?? 200;
    if (this.history.length > limit) this.history.splice(0, this.history.length - limit);
    p.resolve(r);
    for (const cb of this.listeners) {
      try {
        cb(r);
      } catch {
        // a listener's failure must not break swapping
      }
    }
  }

  private record(p: Pending, outcome: SwapOutcome, timings: SwapTimings | null, onnxCached: boolean, statsCached: boolean | null, check: CheckTimes | null, error?: unknown): SwapRecord {
    const r: SwapRecord = {
      seq: ++this.seq,
      at: new Date().toISOString(),
      reason: p.req.reason ?? 'request',
      from: this.current?.subnetId ?? null,
      to: this.opts.idOf(p.cfg),
      outcome,
      timings,
      onnxCached,
      statsCached,
      checkLatencyMs: check?.latencyMs ?? null,
      servingLatencyMs: check?.servingMs ?? null,
      latencyVerdict: check?.verdict ?? null,
    };
    if (error !== undefined) {
      const code: ErrorCode = error instanceof NestswapError ? error.code : 'ERR_SWAP';
      r.error = { code, message: error instanceof Error ? error.message : String(error) };
    }
    return r;
  }

  private async execute(p: Pending): Promise<SwapRecord> {
    const id = this.opts.idOf(p.cfg);
    if (this.current?.subnetId === id) return this.record(p, 'unchanged', null, false, null, null);
    let session: ModelSession | undefined;
    let onnxCached = false;
    let statsCached: boolean | null = null;
    let check: CheckTimes | null = null;
    const t0 = p.decidedAt;
    try {
      // a prefetch in flight holds the builder: a swap that must build waits for it (it may be this very
      // subnet); one whose bytes are cached needs no builder and goes ahead
      if (this.prefetching && !this.cache.has(id)) await this.prefetching;
      if (this.opening) await this.opening;
      let built = this.cacheGet(id);
      const ahead = built ? this.opened.get(id) : undefined;
      if (ahead) {
        // opened and run once ahead: the health check below still runs on it
        this.opened.delete(id);
        session = ahead.session;
      }
      if (built) onnxCached = true;
      else {
        const b = await this.opts.build(p.cfg, this.candidateCheck());
        statsCached = b.statsCached ?? null;
        if (b.session) session = b.session;
        else {
          built = candidateOf(b);
          this.cachePut(id, built);
        }
      }
      const tBuilt = this.now();
      if (!session) {
        const bytes = this.opts.candidateHook ? this.opts.candidateHook(built!.bytes, id) : built!.bytes;
        session = await ModelSession.create(this.opts.backend, bytes, { ...(this.opts.session ?? {}), ...(built!.sessionOptions ?? {}) });
      }
      const tOpen = this.now();
      const pre = built?.checked ? await built.checked : undefined;
      if (pre && !pre.output.data.every(Number.isFinite))
        throw new NestswapError('ERR_HEALTH_CHECK', `Candidate ${id} produced non-finite outputs on the check input where it was built.`, { details: { subnetId: id } });
      const out = await this.healthCheck(id, session, pre, p.req.latency);
      check = out.check;
      const tWarm = out.warmedAt;
      const want = this.current?.outputDims;
      if (want && (out.dims.length !== want.length || out.dims.some((d, i) => d !== want[i])))
        throw new NestswapError('ERR_HEALTH_CHECK', `Candidate ${id} outputs [${out.dims.join(', ')}]; the serving model outputs [${want.join(', ')}].`);
      check.verdict = this.latencyVerdict(p.req, check);
      if (check.verdict === 'over-limit') {
        const limitMs = p.req.maxLatencyMs !== undefined && check.latencyMs > p.req.maxLatencyMs ? p.req.maxLatencyMs : p.req.latency!.upgradeLimitMs!;
        const beside = check.servingMs === null ? '' : ` (the serving model ran in ${check.servingMs.toFixed(2)} ms beside it)`;
        throw new NestswapError('ERR_HEALTH_CHECK', `Candidate ${id} ran in ${check.latencyMs.toFixed(2)} ms${beside}; the limit is ${limitMs.toFixed(2)} ms.`, {
          details: { subnetId: id, latencyMs: check.latencyMs, servingLatencyMs: check.servingMs, limitMs },
        });
      }
      const tChecked = this.now();
      if (this.closed) throw new NestswapError('ERR_SWAP', 'Hot swapper closed during the swap.');
      const next: Loaded = { subnetId: id, config: p.cfg, session, refs: 0, retired: false, released: undefined, outputDims: out.dims };
      const rec = this.record(p, 'swapped', null, onnxCached, statsCached, check);
      if (ahead) rec.openedAhead = true;
      // The swap itself: one reference. Runs that already hold the old model finish on it.
      const old = this.current;
      crashPoint('swap');
      this.current = next;
      session = undefined;
      if (old) {
        old.retired = true;
        if (old.refs === 0) this.release(old);
      }
      const tServing = this.now();
      rec.timings = { buildMs: tBuilt - t0, openMs: tOpen - t0, warmMs: tWarm - t0, checkMs: tChecked - t0, totalMs: tServing - t0 };
      return rec;
    } catch (err) {
      if (session) await session.release().catch(() => undefined);
      this.cacheDrop(id); // never serve a failed candidate's bytes from the cache
      const e = err instanceof NestswapError && (err.code === 'ERR_HEALTH_CHECK' || err.code === 'ERR_SWAP') ? err : new NestswapError('ERR_HEALTH_CHECK', `Candidate ${id} could not be built or run: ${(err as Error).message}`, { cause: err });
      return this.record(p, 'failed', null, onnxCached, statsCached, check, e);
    }
  }

  /**
   * Runs the candidate on the check input: finite outputs always; its median time, and, when a
   * relative criterion is asked for and a model serves, the serving model's median from runs
   * interleaved with the candidate's (same input, same moment, alternating which goes first).
   */
  private async healthCheck(id: string, session: ModelSession, pre: CheckedElsewhere | undefined, rel: RelativeLatencyCheck | undefined): Promise<{ dims: readonly number[]; check: CheckTimes; warmedAt: number }> {
    const dims = [1, ...this.opts.sampleShape];
    const finite = (o: RunOutput) => {
      if (!o.data.every(Number.isFinite))
        throw new NestswapError('ERR_HEALTH_CHECK', `Candidate ${id} produced non-finite outputs on the check input.`, { details: { subnetId: id } });
    };
    const timed = async (s: ModelSession): Promise<{ out: RunOutput; ms: number }> => {
      const a = this.now();
      const out = await s.runFirst(this.checkInput, dims);
      return { out, ms: out.computeMs ?? this.now() - a };
    };
    const serving = this.current;
    if (rel && serving) {
      // side by side: a warm-up of the candidate here, then pairs in alternating order
      finite(await session.runFirst(this.checkInput, dims));
      const warmedAt = this.now();
      const pairs = rel.pairs ?? Math.max(3, this.opts.checkRuns ?? 5);
      const cand: number[] = [];
      const serv: number[] = [];
      let out: RunOutput | undefined;
      for (let i = 0; i < pairs; i++) {
        const first = i % 2 === 0;
        const s0 = first ? undefined : await timed(serving.session);
        const c = await timed(session);
        finite(c.out);
        out = c.out;
        cand.push(c.ms);
        serv.push((s0 ?? (await timed(serving.session))).ms);
      }
      return { dims: out!.dims, check: { latencyMs: median(cand), servingMs: median(serv), verdict: null }, warmedAt };
    }
    // checked where it was built: one run here is warm-up and check in one (finite outputs, right shape)
    const warmups = pre ? 0 : (this.opts.warmupRuns ?? 3);
    for (let i = 0; i < warmups; i++) await session.runFirst(this.checkInput, dims);
    const warmedAt = this.now();
    const times: number[] = [];
    let out: RunOutput | undefined;
    for (let i = 0; i < (pre ? 1 : Math.max(1, this.opts.checkRuns ?? 5)); i++) {
      const r = await timed(session);
      finite(r.out);
      out = r.out;
      times.push(r.ms);
    }
    return { dims: out!.dims, check: { latencyMs: median(pre && pre.times.length ? pre.times : times), servingMs: null, verdict: null }, warmedAt };
  }

  private latencyVerdict(req: SwapRequest, c: CheckTimes): LatencyVerdict | null {
    if (req.maxLatencyMs !== undefined && c.latencyMs > req.maxLatencyMs) return 'over-limit';
    const rel = req.latency;
    if (!rel || c.servingMs === null) return req.maxLatencyMs !== undefined ? 'within-limit' : null;
    if (c.latencyMs <= c.servingMs * (1 + (rel.tolerance ?? 0.1))) return 'not-slower';
    return rel.upgradeLimitMs !== undefined && c.latencyMs > rel.upgradeLimitMs ? 'over-limit' : 'within-limit';
  }

  private release(m: Loaded): void {
    if (m.released) return;
    this.retiring.add(m);
    m.released = m.session
      .release()
      .catch(() => undefined)
      .finally(() => this.retiring.delete(m));
  }

  private candidateCheck(): CandidateCheck {
    return { input: this.checkInput, dims: [1, ...this.opts.sampleShape], warmupRuns: this.opts.warmupRuns ?? 3, checkRuns: Math.max(1, this.opts.checkRuns ?? 5) };
  }

  private cacheGet(id: string): CandidateBytes | undefined {
    const b = this.cache.get(id);
    if (b) {
      // refresh LRU position
      this.cache.delete(id);
      this.cache.set(id, b);
    }
    return b;
  }

  private cacheDrop(id: string): void {
    const o = this.opened.get(id);
    if (o) {
      this.opened.delete(id);
      void o.session.release().catch(() => undefined);
    }
    const b = this.cache.get(id);
    if (!b) return;
    this.cache.delete(id);
    this.cacheBytes -= b.bytes.length;
  }

  private cacheCap(): number {
    return this.opts.onnxCacheBytes ?? 64 * 1024 * 1024;
  }

  private cachePut(id: string, c: CandidateBytes): void {
    const cap = this.cacheCap();
    if (cap <= 0 || c.bytes.length > cap) return;
    if (this.cache.has(id)) return;
    this.cache.set(id, c);
    this.cacheBytes += c.bytes.length;
    for (const [k, v] of this.cache) {
      if (this.cacheBytes <= cap) break;
      this.cache.delete(k);
      this.cacheBytes -= v.bytes.length;
    }
  }
}
