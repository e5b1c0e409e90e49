/**
 * A daemon handle that outlives the daemon behind it: a fleet agent serves a new package version by
 * starting a second daemon on it and moving this handle over (`replace`), while the local API,
 * telemetry and pushed commands keep the same handle. Calls made before the move finish on the old
 * daemon; `replace` resolves the old daemon once none is in flight on it, for the caller to close.
 */
import type { Registry } from 'prom-client';
import type { SwapRecord } from '../runtime/hot-swap.js';
import { Emitter } from './core/emitter.js';
import type { DaemonHandle } from './daemon.js';
import type { DaemonInferResult, DaemonStatus, Selector, Telemetry } from './core/types.js';
import type { UserBudget } from './policy.js';

export class LiveDaemon implements DaemonHandle {
  private current: DaemonHandle;
  private readonly events = new Emitter();
  private unsubscribe: () => void;
  /** calls in flight per daemon */
  private readonly inFlight = new Map<DaemonHandle, { n: number; idle?: () => void }>();
  /** the local API's address (set by its owner; the daemons behind run without a listener) */
  url: string | null = null;

  constructor(first: DaemonHandle) {
    this.current = first;
    this.unsubscribe = this.forward(first);
  }

  get daemon(): DaemonHandle {
    return this.current;
  }
  get pkg(): DaemonHandle['pkg'] {
    return this.current.pkg;
  }
  get sampleShape(): readonly number[] {
    return this.current.sampleShape;
  }
  get metrics(): Registry {
    return this.current.metrics;
  }

  private forward(d: DaemonHandle): () => void {
    const offSwap = d.on('swap', (r) => this.events.emit('swap', r));
    const offTel = d.on('telemetry', (t) => this.events.emit('telemetry', t));
    return () => {
      offSwap();
      offTel();
    };
  }

  /** Runs `f` on the serving daemon, counted as in flight there until it settles. */
  private async call<T>(f: (d: DaemonHandle) => Promise<T>): Promise<T> {
    const d = this.current;
    let c = this.inFlight.get(d);
    if (!c) this.inFlight.set(d, (c = { n: 0 }));
    c.n++;
    try {
      return await f(d);
    } finally {
      if (--c.n === 0) c.idle?.();
    }
  }

  /** Moves every later call to `next`; resolves the previous daemon once nothing is in flight on it. */
  async replace(next: DaemonHandle): Promise<DaemonHandle> {
    const prev = this.current;
    this.unsubscribe();
    this.current = next;
    this.unsubscribe = this.forward(next);
    const c = this.inFlight.get(prev);
    if (c && c.n > 0) await new Promise<void>((r) => (c.idle = r));
    this.inFlight.delete(prev);
    return prev;
  }

  setBudget(b: UserBudget): Promise<SwapRecord> {
    return this.call((d) => d.setBudget(b));
  }
  switchTo(cfg: unknown, opts?: { pin?: boolean }): Promise<SwapRecord> {
    return this.call((d) => d.switchTo(cfg, opts));
  }
  unpin(): Promise<SwapRecord> {
    return this.call((d) => d.unpin());
  }
  useSelector(next: Selector, reason?: string): Promise<SwapRecord | null> {
    return this.call((d) => d.useSelector(next, reason));
  }
  infer(input: Float32Array, batch: number): Promise<DaemonInferResult> {
    return this.call((d) => d.infer(input, batch));
  }
  status(): DaemonStatus {
    return this.current.status();
  }
  on(event: 'swap', cb: (r: SwapRecord) => void): () => void;
  on(event: 'telemetry', cb: (t: Telemetry) => void): () => void;
  on(event: 'swap' | 'telemetry', cb: (x: never) => void): () => void {
    return this.events.on(event, cb as (x: unknown) => void);
  }
  async close(): Promise<void> {
    this.unsubscribe();
    this.events.clear();
    await this.current.close();
  }
}
