/**
 * The swap policy: from the monitor's windows to "hold", "downgrade" or "upgrade".
 *
 * Effective budget = user budget adjusted to the live device:
 *   latency  = user latency / slowdown  (× batterySaverFactor on battery below batterySaverPercent,
 *              × thermalFactor at or above thermalLimitC)
 *   memory   = min(user memory, available memory − memoryReserveMB + the serving subnet's own memory)
 * so a search under the effective budget runs against the device as it is now.
 *
 * Downgrade: the serving subnet violates the effective latency (by more than
 * `violationTolerance`) or memory budget for `downgradeWindows` consecutive windows → the best
 * subnet under the effective budget × (1 − downgradeMargin).
 * Upgrade: a better subnet fits the effective budget × (1 − upgradeMargin) for `upgradeWindows`
 * consecutive windows with traffic (a window where only the monitor's probes ran never upgrades
 * and runs no search). The gap between the tolerance above the budget and the margin below it is
 * the hysteresis band; after any swap nothing happens for `cooldownMs` and counters restart, so it
 * never flaps.
 *
 * Defaults (also returned by `DEFAULT_POLICY`):
 *   downgradeWindows 3, upgradeWindows 5, cooldownMs 5000, violationTolerance 0.05,
 *   downgradeMargin 0.10, upgradeMargin 0.10, minSamples 3, minSlowdown 1, maxSlowdown 50, slowdownDeadband 0.1,
 *   memoryReserveMB 256, batterySaverPercent 20, batterySaverFactor 0.7, thermalLimitC 85,
 *   thermalFactor 0.8.
 */
import type { LatencyWindow } from './monitor.js';

export interface PolicyOptions {
  /** consecutive violating windows before a downgrade */
  downgradeWindows: number;
  /** consecutive windows in which a better subnet fits with margin before an upgrade */
  upgradeWindows: number;
  /** no policy swap for this long after any swap */
  cooldownMs: number;
  /** the serving subnet violates latency when predicted × slowdown > budget × (1 + tolerance) */
  violationTolerance: number;
  /** a downgrade picks the best subnet under effective latency × (1 − margin) */
  downgradeMargin: number;
  /** an upgrade considers subnets under effective latency × (1 − margin) */
  upgradeMargin: number;
  /** windows with fewer single-sample runs are not evidence either way */
  minSamples: number;
  /** slowdown is clamped to [minSlowdown, maxSlowdown]; 1 means a fast device never raises the budget above the user's */
  minSlowdown: number;
  maxSlowdown: number;
  /**
   * the slowdown used for the effective budget moves only when the measured one differs from it by
   * more than this fraction: window-to-window noise then neither re-runs the search nor flaps
   */
  slowdownDeadband: number;
  /** memory kept free for everything else on the device */
  memoryReserveMB: number;
  batterySaverPercent: number;
  batterySaverFactor: number;
  thermalLimitC: number;
  thermalFactor: number;
}

export const DEFAULT_POLICY: Readonly<PolicyOptions> = Object.freeze({
  downgradeWindows: 3,
  upgradeWindows: 5,
  cooldownMs: 5000,
  violationTolerance: 0.05,
  downgradeMargin: 0.1,
  upgradeMargin: 0.1,
  minSamples: 3,
  minSlowdown: 1,
  slowdownDeadband: 0.1,
  maxSlowdown: 50,
  memoryReserveMB: 256,
  batterySaverPercent: 20,
  batterySaverFactor: 0.7,
  thermalLimitC: 85,
  thermalFactor: 0.8,
});

export interface UserBudget {
  latencyMs?: number;
  memoryMB?: number;
}

export interface Prediction {
  latencyMs: number | null;
  memoryMB: number | null;
  accuracy: number | null;
}

/** A subnet the selector proposes, with what it is predicted to cost and score. */
export interface Choice<C = unknown> {
  subnetId: string;
  config: C;
  predicted: Prediction;
  /** higher is better (predicted accuracy, or MACs as a proxy) */
  score: number;
  /** false when nothing fits and this is the cheapest subnet instead */
  feasible: boolean;
}

export interface EffectiveBudget {
  latencyMs?: number;
  memoryMB?: number;
  slowdown: number;
  /** which rules tightened it */
  rules: string[];
}

export type Action = 'hold' | 'downgrade' | 'upgrade';

export interface Decision<C = unknown> {
  action: Action;
  reason: string;
  effective: EffectiveBudget;
  target?: Choice<C>;
  /**
   * On a hold that counted towards a swap (see `leaning`): the subnet that swap would pick if it
   * were decided now, so the agent can build it ahead of the decision.
   */
  prospect?: Choice<C>;
}

export class Policy<C = unknown> {
  readonly opts: PolicyOptions;
  private violations = 0;
  private better = 0;
  private cooldownUntil = 0;
  private held: number | undefined;

  constructor(opts: Partial<PolicyOptions> = {}, private readonly now: () => number = () => Date.now()) {
    this.opts = { ...DEFAULT_POLICY, ...opts };
    for (const [k, v] of Object.entries(this.opts))
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`Policy option '${k}' must be a finite number >= 0 (got ${String(v)}).`);
  }

  /** Call after every swap (from any source): counters restart and the cooldown begins. */
  swapped(): void {
    this.violations = 0;
    this.better = 0;
    this.cooldownUntil = this.now() + this.opts.cooldownMs;
  }

  reset(): void {
    this.violations = 0;
    this.better = 0;
  }

  /** Whether the last windows are counting towards a swap (a violation or a better fit seen, not yet enough). */
  get leaning(): boolean {
    return this.violations > 0 || this.better > 0;
  }

  /** The slowdown in force: the clamped measurement, held until it moves by more than the deadband. */
  slowdownOf(w: LatencyWindow | undefined): number {
    const o = this.opts;
    if (w?.slowdown === null || w?.slowdown === undefined) return this.held ?? Math.max(1, o.minSlowdown);
    const s = Math.min(o.maxSlowdown, Math.max(o.minSlowdown, w.slowdown));
    if (this.held === undefined || Math.abs(s / this.held - 1) > o.slowdownDeadband) this.held = s;
    return this.held;
  }

  /** The budget a search should use now. */
  effective(user: UserBudget, w: LatencyWindow | undefined, active: Prediction | undefined): EffectiveBudget {
    const o = this.opts;
    const slowdown = this.slowdownOf(w);
    const rules: string[] = [];
    const eff: EffectiveBudget = { slowdown, rules };
    if (user.latencyMs !== undefined) {
      let l = user.latencyMs / slowdown;
      if (slowdown > 1) rules.push('slowdown');
      const bat = w?.conditions.battery;
      if (bat?.onBattery && bat.percent < o.batterySaverPercent) {
        l *= o.batterySaverFactor;
        rules.push('battery-saver');
      }
      const t = w?.conditions.temperatureC;
      if (t !== null && t !== undefined && t >= o.thermalLimitC) {
        l *= o.thermalFactor;
        rules.push('thermal');
      }
      eff.latencyMs = l;
    }
    let mem = user.memoryMB;
    const avail = w?.conditions.availableMB;
    if (avail !== null && avail !== undefined) {
      const cap = avail - o.memoryReserveMB + (active?.memoryMB ?? 0);
      if (mem === undefined || cap < mem) {
        mem = Math.max(1, cap);
        rules.push('memory-pressure');
      }
    }
    if (mem !== undefined) eff.memoryMB = mem;
    return eff;
  }

  /**
   * One window's decision. `choose` proposes the best subnet under a budget (it may be called
   * once per window; memoize it if it is expensive).
   */
  async decide(
    user: UserBudget,
    w: LatencyWindow,
    active: Choice<C>,
    choose: (b: { latencyMs?: number; memoryMB?: number }) => Promise<Choice<C>>,
  ): Promise<Decision<C>> {
    const o = this.opts;
    const eff = this.effective(user, w, active.predicted);
    const hold = (reason: string): Decision<C> => ({ action: 'hold', reason, effective: eff });
    if (this.now() < this.cooldownUntil) return hold('cooldown');
    if (w.subnetId !== active.subnetId) return hold('window from another subnet');
    if (w.samples < o.minSamples) return hold('too few samples');

    const scaled = (f: number) => {
      const b: { latencyMs?: number; memoryMB?: number } = {};
      if (eff.latencyMs !== undefined) b.latencyMs = eff.latencyMs * f;
      if (eff.memoryMB !== undefined) b.memoryMB = eff.memoryMB;
      return b;
    };
    const p = active.predicted;
    const latViolated = eff.latencyMs !== undefined && p.latencyMs !== null && p.latencyMs > eff.latencyMs * (1 + o.violationTolerance);
    const memViolated = eff.memoryMB !== undefined && p.memoryMB !== null && p.memoryMB > eff.memoryMB;
    if (latViolated || memViolated) {
      this.better = 0;
      this.violations++;
      const what = [latViolated && 'latency', memViolated && 'memory'].filter(Boolean).join('+');
      const target = await choose(scaled(1 - o.downgradeMargin));
      const none = target.subnetId === active.subnetId || !cheaper(target.predicted, p);
      if (this.violations < o.downgradeWindows) {
        const d = hold(`${what} violated (${this.violations}/${o.downgradeWindows})`);
        return none ? d : { ...d, prospect: target };
      }
      if (none) return hold(`${what} violated; no cheaper subnet`);
      return { action: 'downgrade', reason: `${what} budget violated for ${this.violations} windows`, effective: eff, target };
    }
    this.violations = 0;
    // An idle agent (only the monitor's probes ran) holds: an upgrade helps no request yet, and each
    // search an idle window would run costs CPU; the first window with traffic looks again.
    if (w.traffic === 0) {
      this.better = 0;
      return hold('idle: upgrades wait for traffic');
    }
    const target = await choose(scaled(1 - o.upgradeMargin));
    if (!target.feasible || target.subnetId === active.subnetId || target.score <= active.score) {
      this.better = 0;
      return hold('within budget');
    }
    this.better++;
    if (this.better < o.upgradeWindows) return { ...hold(`better subnet fits (${this.better}/${o.upgradeWindows})`), prospect: target };
    return { action: 'upgrade', reason: `better subnet fits with margin for ${this.better} windows`, effective: eff, target };
  }
}

function cheaper(a: Prediction, b: Prediction): boolean {
  if (a.latencyMs !== null && b.latencyMs !== null && a.latencyMs < b.latencyMs) return true;
  return a.memoryMB !== null && b.memoryMB !== null && a.memoryMB < b.memoryMB;
}
