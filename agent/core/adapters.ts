/**
 * What the agent core needs from its platform. The Node daemon (agent/daemon.ts) and the browser
 * agent (web/agent.ts) each supply these; the core never asks which platform it is on.
 */
import type { CalibrateOptions, StatsStore } from '../../runtime/calibrate.js';
import type { BuiltModel, CandidateCheck, HotSwapOptions, SwapRecord } from '../../runtime/hot-swap.js';
import type { Materializer, MaterializeOptions } from '../../runtime/materializer.js';
import type { Backend, SessionOptions } from '../../runtime/session.js';
import type { SubnetConfig } from '../../runtime/space.js';
import type { EffectiveBudget, Prediction, UserBudget } from '../policy.js';
import type { LatencyWindow } from './monitor.js';
import type { AgentHandle } from './types.js';

export type { Clock } from './clock.js';
export type { Sensors, SensorReading } from './monitor.js';

export interface BuildContext {
  materializer: Materializer;
  calibration: CalibrateOptions;
  sessionOptions: Partial<SessionOptions>;
}

/** Where sessions are created and candidates built. */
export interface SessionAdapter {
  /** the backend the hot swapper serves from */
  readonly backend: Backend;
  /** where BN calibration runs (default: `backend`) */
  readonly calibrationBackend?: Backend;
  /** see Materializer's `calibrationLayout` */
  readonly calibrationLayout?: ConstructorParameters<typeof Materializer>[3];
  /** how subnet graphs are written for this backend (e.g. the wasm provider's depthwise lowering); default plain */
  readonly graph?: Pick<MaterializeOptions, 'depthwiseMatMul'>;
  /** hot-swap options the host implies (e.g. no ONNX cache when a worker rebuilds it) */
  readonly hotSwap?: Partial<Pick<HotSwapOptions, 'onnxCacheBytes'>>;
  /** builds a candidate; default: materialize (+ calibrate) here and return the bytes */
  build?(cfg: SubnetConfig, check: CandidateCheck, ctx: BuildContext): Promise<BuiltModel>;
  /** a swap may follow soon: get the builder up (the core prefetches cached picks when this exists) */
  warm?(): Promise<void>;
  close?(): Promise<void>;
}

/** Persistent state the core keeps: BN statistics (disk, IndexedDB, memory). */
export interface StorageAdapter {
  stats: StatsStore;
}

/** A way the agent is driven from outside (local HTTP API, registry WebSocket); closed with the agent. */
export interface TransportLink {
  readonly url?: string | null;
  close(): Promise<void>;
}
export type Transport = (agent: AgentHandle) => Promise<TransportLink>;

type LogFn = (obj: unknown, msg?: string) => void;
/** pino's shape (a pino logger fits) */
export interface CoreLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
}

export const silentLogger: CoreLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

/** Where the core reports what it measures (Prometheus under Node; nothing or telemetry in a page). */
export interface MetricsSink {
  inferred?(seconds: number, subnetId: string, batch: number): void;
  inferFailed?(code: string): void;
  swap?(r: SwapRecord, predicted: Prediction | undefined): void;
  window?(w: LatencyWindow): void;
  budget?(user: UserBudget, effective: EffectiveBudget | undefined): void;
  pinned?(pinned: boolean): void;
}
