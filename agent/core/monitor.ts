/**
 * The constraint monitor (platform-neutral): every `intervalMs` it closes a window of observed
 * inference latency (median and p99 of single-sample runs on the serving subnet), compares it with
 * the prediction (the live slowdown factor), and reads the device's conditions from injected sensors
 * (agent/monitor.ts reads /proc and /sys; web/sensors.ts reads the browser's).
 */
import { systemClock, type Clock } from './clock.js';

export interface BatteryState {
  onBattery: boolean;
  /** charge, 0..100 */
  percent: number;
}

export interface SensorReading {
  /** share of all cores (0..1) busy with other processes since the last reading; null until two readings */
  othersCpu: number | null;
  availableMB: number | null;
  /** null when the device has no battery */
  battery: BatteryState | null;
  /** hottest readable thermal zone, °C; null when none is readable */
  temperatureC: number | null;
}

export interface Sensors {
  read(): SensorReading;
}

export interface LatencyWindow {
  at: string;
  subnetId: string | null;
  /** single-sample runs on the serving subnet in this window */
  samples: number;
  /** how many of those came from requests rather than the monitor's own probes (absent: unknown) */
  traffic?: number;
  p50Ms: number | null;
  p99Ms: number | null;
  predictedMs: number | null;
  /** p50 / predicted (null without samples or prediction) */
  slowdown: number | null;
  conditions: SensorReading;
}

export interface MonitorOptions {
  /** window length (default 1000 ms) */
  intervalMs?: number;
  sensors: Sensors;
  /** when a window has fewer single-sample runs than this, the monitor probes (default 3) */
  minSamples?: number;
  /** one single-sample run on the serving model, used when traffic is too thin to measure; an idle
   * window's probe starts with one extra run that warms the model up and is not counted */
  probe?: () => Promise<unknown>;
  /**
   * With no traffic at all, probe only every this many windows at first (default 10; see
   * `idleProbeMaxEvery` for the back-off): an idle agent then costs a few runs per 10 s instead of
   * a few per second. On the timer, the windows in between are skipped outright (no sensor reads,
   * no window event, no policy), so memory and battery rules react within the current probe gap
   * while idle. Thin but non-zero traffic is topped up every window.
   */
  idleProbeEvery?: number;
  /**
   * While the agent stays idle, the gap between probes doubles after each idle probe, from
   * `idleProbeEvery` up to this many windows (default 60: once a minute at 1 s windows). Nothing is
   * served meanwhile and an idle window never upgrades; the first request brings back a window
   * every interval. Set it equal to `idleProbeEvery` for a fixed period.
   */
  idleProbeMaxEvery?: number;
  /** predicted latency (ms) of a subnet */
  predictedMs: (subnetId: string) => number | null;
  /** the serving subnet */
  activeId: () => string | null;
  /** timers and wall time (default: the global timers) */
  clock?: Clock;
}

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export class Monitor {
  private samples: number[] = [];
  private sampleId: string | null = null;
  private timer: (() => void) | undefined;
  private ticking: Promise<void> | undefined;
  private readonly sensors: Sensors;
  private idleWindows = 0;
  /** the idle window (1-based count) at which the next idle probe runs, and the gap after it */
  private nextIdleProbe = 1;
  private idleGap: number;
  /** runs to leave out (the warm-up run of an idle probe) */
  private discard = 0;
  last: LatencyWindow | undefined;

  constructor(private readonly opts: MonitorOptions) {
    this.idleGap = this.idleEvery;
    this.sensors = opts.sensors;
    this.sensors.read(); // first CPU reading: the baseline of the first window
  }

  get intervalMs(): number {
    return this.opts.intervalMs ?? 1000;
  }

  /** idle windows per probe (`idleProbeEvery`, default 10) */
  private get idleEvery(): number {
    return Math.max(1, this.opts.idleProbeEvery ?? 10);
  }

  private get idleMaxEvery(): number {
    return Math.max(this.idleEvery, this.opts.idleProbeMaxEvery ?? 60);
  }

  /** Feeds one run (from the hot swapper's onRun hook). Batches are left out: predictions are per sample. */
  recordRun(ms: number, batch: number, subnetId: string): void {
    if (batch !== 1) return;
    if (this.discard > 0) {
      this.discard--;
      return;
    }
    if (subnetId !== this.sampleId) {
      // a new subnet starts a fresh window: its latency says nothing about the old prediction
      this.samples = [];
      this.sampleId = subnetId;
    }
    if (this.samples.length < 100_000) this.samples.push(ms);
  }

  start(onWindow: (w: LatencyWindow) => void | Promise<void>): void {
    if (this.timer) return;
    this.timer = (this.opts.clock ?? systemClock).every(this.intervalMs, () => {
      if (this.ticking) return; // a slow tick is never overlapped by the next
      if (this.skipIdleWindow()) return;
      this.ticking = this.tick()
        .then(onWindow)
        .catch(() => undefined)
        .finally(() => (this.ticking = undefined));
    });
  }

  /**
   * While idle (no traffic in the last window nor since), windows that would not probe are only
   * counted: no sensor reads, no window event, no policy. An idle agent then does its work only in
   * its probe windows (every `idleProbeEvery` intervals, backing off to `idleProbeMaxEvery`); the
   * first request brings back a window every interval.
   */
  private skipIdleWindow(): boolean {
    const every = this.idleEvery;
    if (!this.opts.probe || every === 1 || this.idleWindows === 0 || this.samples.length > 0) return false;
    if (this.idleWindows + 1 >= this.nextIdleProbe) return false;
    this.idleWindows++;
    return true;
  }

  async stop(): Promise<void> {
    this.timer?.();
    this.timer = undefined;
    await this.ticking;
  }

  /** Closes the current window (exposed for tests and for a manual check). */
  async tick(): Promise<LatencyWindow> {
    const active = this.opts.activeId();
    const min = this.opts.minSamples ?? 3;
    const traffic = this.sampleId === active ? this.samples.length : 0;
    if (this.opts.probe && active) {
      const every = this.idleEvery;
      if (traffic === 0) this.idleWindows++;
      else {
        this.idleWindows = 0;
        this.nextIdleProbe = 1;
        this.idleGap = every;
      }
      if (traffic > 0 || every === 1 || this.idleWindows >= this.nextIdleProbe) {
        if (traffic === 0) {
          // an idle probe: the next one comes `idleGap` windows later, and the gap doubles (capped)
          this.nextIdleProbe = this.idleWindows + this.idleGap;
          this.idleGap = Math.min(this.idleGap * 2, this.idleMaxEvery);
          // After idle time the first run is cold (threads asleep, caches gone): ~30% slower on
          // fmnist-ofa. Counted, it would read as a slowdown and could downgrade an idle agent.
          this.discard = 1;
          await this.opts.probe().catch(() => undefined);
          this.discard = 0;
        }
        for (let i = traffic; i < min; i++) await this.opts.probe().catch(() => undefined);
      }
    }
    const xs = this.sampleId === active ? this.samples.sort((a, b) => a - b) : [];
    this.samples = [];
    const p50 = xs.length ? quantile(xs, 0.5) : null;
    const predicted = active ? this.opts.predictedMs(active) : null;
    const w: LatencyWindow = {
      at: (this.opts.clock ?? systemClock).isoNow(),
      subnetId: active,
      samples: xs.length,
      traffic,
      p50Ms: p50,
      p99Ms: xs.length ? quantile(xs, 0.99) : null,
      predictedMs: predicted,
      slowdown: p50 !== null && predicted ? p50 / predicted : null,
      conditions: this.sensors.read(),
    };
    this.last = w;
    return w;
  }
}
