/**
 * One session interface over onnxruntime-node and onnxruntime-web. Backends plug in as an `Ort`
 * module object (the onnxruntime-common API both packages export); options that change speed are
 * explicit and recorded, because latency profiles depend on them.
 */
import type * as OrtApi from 'onnxruntime-common';
import { NestswapError } from './errors.js';

export type Ort = Pick<typeof OrtApi, 'InferenceSession' | 'Tensor' | 'env'>;

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** Execution provider, e.g. 'cpu' (node), 'wasm' (web), 'webgpu'. */
  ep: string;
  /** Intra-op threads; 0 or undefined = the runtime's default. */
  threads?: number;
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** Let idle intra-op threads spin waiting for work (onnxruntime's default, true). A serving agent turns
   * it off: spinning costs CPU while idle and competes with the application between requests. */
  allowSpinning?: boolean;
}

export interface RecordedSessionOptions {
  backend: string;
  ep: string;
  threads: number;
  graphOptimizationLevel: GraphOptimizationLevel;
  ortVersion: string;
}

export interface Backend {
  /** 'node' or 'web' */
  readonly name: string;
  readonly ort: Ort;
  readonly version: string;
  readonly defaultEp: string;
}

/**
 * A backend may attach a run's own time (ms, measured where and when it actually ran: in a worker,
 * or on the main thread without the event loop's other work) to the result record under this key,
 * so monitors compare compute time with compute-time predictions.
 */
export const COMPUTE_MS = Symbol.for('nestswap.computeMs');

export interface RunOutput {
  data: Float32Array;
  dims: readonly number[];
  /** the run's own time where the backend measured it (node and worker backends); undefined otherwise */
  computeMs?: number;
}

/** onnxruntime session options for `opts` (execution provider, optimisation level, threads, spinning). */
export function ortSessionOptions(backend: Backend, opts: Partial<SessionOptions>): OrtApi.InferenceSession.SessionOptions {
  const o: OrtApi.InferenceSession.SessionOptions = {
    executionProviders: [opts.ep ?? backend.defaultEp],
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
  };
  if (opts.threads && opts.threads > 0) o.intraOpNumThreads = opts.threads;
  if (opts.allowSpinning === false) o.extra = { session: { 'intra_op.allow_spinning': '0', 'inter_op.allow_spinning': '0' } };
  return o;
}

export class ModelSession implements AsyncDisposable {
  private released = false;
  private constructor(
    private readonly inner: OrtApi.InferenceSession,
    private readonly ort: Ort,
    readonly options: RecordedSessionOptions,
  ) {}

  static create(backend: Backend, bytes: Uint8Array, opts: Partial<SessionOptions> = {}): Promise<ModelSession> {
    return ModelSession.open(backend, opts, (o) => backend.ort.InferenceSession.create(bytes, o));
  }

  /**
   * Opens a session through `make`, given onnxruntime session options built from `opts` (for backends
   * that create sessions their own way, e.g. a worker that materializes the subnet itself).
   */
  static async open(
    backend: Backend,
    opts: Partial<SessionOptions>,
    make: (o: OrtApi.InferenceSession.SessionOptions) => Promise<OrtApi.InferenceSession>,
  ): Promise<ModelSession> {
    const ep = opts.ep ?? backend.defaultEp;
    const level = opts.graphOptimizationLevel ?? 'all';
    const o = ortSessionOptions(backend, opts);
    let inner: OrtApi.InferenceSession;
    try {
      inner = await make(o);
    } catch (cause) {
      throw new NestswapError('ERR_SESSION', `onnxruntime-${backend.name} could not create a session with execution provider '${ep}': ${(cause as Error).message}`, { cause });
    }
    return new ModelSession(inner, backend.ort, {
      backend: backend.name,
      ep,
      threads: opts.threads ?? 0,
      graphOptimizationLevel: level,
      ortVersion: backend.version,
    });
  }

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /** Runs with one float32 input; returns the requested float32 outputs by name. */
  async run(input: Float32Array, dims: readonly number[], outputs: readonly string[] = this.inner.outputNames): Promise<Record<string, RunOutput>> {
    if (this.released) throw new NestswapError('ERR_SESSION', 'Session already released.');
    const feeds = { [this.inner.inputNames[0]!]: new this.ort.Tensor('float32', input, dims) };
    const res = await this.inner.run(feeds, outputs as string[]);
    const computeMs = (res as { [COMPUTE_MS]?: number })[COMPUTE_MS];
    const out: Record<string, RunOutput> = {};
    for (const name of outputs) {
      const t = res[name]!;
      const o: RunOutput = { data: t.data as Float32Array, dims: t.dims };
      if (computeMs !== undefined) o.computeMs = computeMs;
      out[name] = o;
    }
    return out;
  }

  /** Runs and returns the first output's data. */
  async runFirst(input: Float32Array, dims: readonly number[]): Promise<RunOutput> {
    const name = this.inner.outputNames[0]!;
    return (await this.run(input, dims, [name]))[name]!;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.inner.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
