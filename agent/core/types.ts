/** The agent's public shapes, shared by the Node daemon and the browser agent. */
import { NestswapError } from '../../runtime/errors.js';
import type { InferResult, SwapRecord } from '../../runtime/hot-swap.js';
import type { SubnetConfig } from '../../runtime/space.js';
import type { Choice, EffectiveBudget, Prediction, UserBudget } from '../policy.js';
import type { LatencyWindow } from './monitor.js';
import type { LadderStatus } from './ladder-selector.js';

export type SubnetChoice = Choice<SubnetConfig>;

/** Which subnet is best for a budget, and what a subnet is predicted to cost. */
export interface Selector {
  /** e.g. 'profile+search', 'measured-ladder', 'injected' */
  readonly kind: string;
  choose(budget: UserBudget): Promise<SubnetChoice>;
  predict(cfg: SubnetConfig): Prediction;
  /** subnets it is likely to choose: their BN statistics are computed in the background at start */
  readonly candidates?: readonly { config: SubnetConfig }[];
}

export interface DaemonStatus {
  /** the software version serving (nestswap's package.json version in Node; null when the host gives none) */
  version: string | null;
  supernet: string;
  /** the version of the supernet's package serving (a fleet agent moves to a newer one without a restart) */
  packageVersion: string;
  subnet: { id: string; config: SubnetConfig } | null;
  predicted: { latencyMs: number | null; accuracy: number | null; memoryMB: number | null };
  observed: { p50Ms: number | null; p99Ms: number | null; slowdown: number | null; samples: number; at: string | null };
  budget: UserBudget;
  effectiveBudget: EffectiveBudget | null;
  /** whether the serving subnet meets the budget under the live slowdown (null: no budget, or not yet known) */
  budgetState: BudgetState;
  pinned: boolean;
  selector: string;
  /** the ladder position when the selector is a Pareto ladder (else null) */
  ladder: LadderStatus | null;
  conditions: LatencyWindow['conditions'] | null;
  lastDecision: { action: string; reason: string } | null;
  swaps: SwapRecord[];
}

export interface BudgetState {
  met: boolean | null;
  /** why not, when it is not met */
  reason: string | null;
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

/** What every agent (Node daemon, browser tab) offers its transports and its application. */
export interface AgentHandle {
  readonly pkg: import('../../runtime/package.js').SupernetPackage;
  readonly sampleShape: readonly number[];
  setBudget(b: UserBudget): Promise<SwapRecord>;
  switchTo(cfg: unknown, opts?: { pin?: boolean }): Promise<SwapRecord>;
  unpin(): Promise<SwapRecord>;
  status(): DaemonStatus;
  infer(input: Float32Array, batch: number): Promise<DaemonInferResult>;
  on(event: 'swap', cb: (r: SwapRecord) => void): () => void;
  on(event: 'telemetry', cb: (t: Telemetry) => void): () => void;
  close(): Promise<void>;
}

/** Checks a budget from outside (HTTP, CLI, fleet, a page); ERR_BUDGET_INVALID otherwise. */
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
