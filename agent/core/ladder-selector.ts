/**
 * The agent's selector on a Pareto ladder (runtime/ladder.ts): a decision is a binary search over
 * the rungs, no search runs. Until the first ladder is built (and whenever a budget falls below every
 * rung) the default search answers. The slowdown class the policy reports re-centres the rungs in the
 * background; at idle, the rungs nearest the current one get their BN statistics and, within a byte
 * budget, their built ONNX, nearest first. Platform-neutral.
 */
import type { CalibrateOptions } from '../../runtime/calibrate.js';
import type { HotSwapper } from '../../runtime/hot-swap.js';
import { buildLadder, Ladder, LadderKeeper, slowdownClass, type LadderKey, type LadderOptions, type Rung } from '../../runtime/ladder.js';
import type { Materializer } from '../../runtime/materializer.js';
import type { SupernetPackage } from '../../runtime/package.js';
import type { SearchInputs } from '../../runtime/search/inputs.js';
import type { SubnetConfig } from '../../runtime/space.js';
import type { UserBudget } from '../policy.js';
import type { CoreLogger } from './adapters.js';
import { searchSelector } from './search-selector.js';
import type { Selector, SubnetChoice } from './types.js';

export interface LadderStatus {
  rungs: number;
  /** index of the rung last chosen (0 = fastest), null before the first ladder decision */
  rung: number | null;
  chosen: { id: string; latencyMs: number; accuracy: number } | null;
  slowdownClass: number;
  builds: number;
  buildMs: number;
  /** rungs whose BN statistics are ready / whose ONNX is built, and the bytes of that ONNX */
  prepared: { statistics: number; onnx: number; onnxBytes: number };
}

export interface LadderSelector extends Selector {
  readonly ladder: Ladder | undefined;
  /** the live slowdown and user latency budget, from the policy; a new slowdown class rebuilds the rungs around user budget / slowdown */
  noteSlowdown(slowdown: number, userLatencyMs: number | undefined): void;
  ladderStatus(): LadderStatus | null;
  /** rungs nearest first around the current one whose BN statistics are not ready yet */
  toPrepare(): Rung[];
  markPrepared(id: string, what: 'statistics' | 'onnx', bytes?: number): void;
}

export function isLadderSelector(s: Selector): s is LadderSelector {
  return typeof (s as Partial<LadderSelector>).ladderStatus === 'function';
}

export interface LadderSelectorOptions extends LadderOptions {
  /** digests the ladder is keyed by */
  profileDigest: string;
  predictorDigest: string;
  logger?: CoreLogger;
}

/** FNV-1a of a string, as hex: a cache key, not a security digest. */
export function keyDigest(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

export async function ladderSearchSelector(pkg: SupernetPackage, inputs: SearchInputs, opts: LadderSelectorOptions): Promise<LadderSelector> {
  const fallback = searchSelector(pkg, inputs);
  const problem = { arch: inputs.arch, predictor: inputs.predictor, encoder: inputs.encoder, ...inputs.efficiency };
  let focusMs: number | undefined;
  const keeper = new LadderKeeper((key: LadderKey) => buildLadder(problem, pkg.space, key, { ...opts, ...(focusMs !== undefined ? { focusMs } : {}) }));
  let key: LadderKey = { profile: opts.profileDigest, predictor: opts.predictorDigest, slowdownClass: 0 };
  await keeper.ensure(key);
  if (!keeper.current) throw keeper.lastError ?? new Error('ladder build failed');
  let lastRung: number | null = null;
  const stats = new Set<string>();
  const onnx = new Map<string, number>();
  const choiceOf = (r: Rung): SubnetChoice => ({
    subnetId: r.id,
    config: r.subnet,
    predicted: { latencyMs: r.latencyMs, memoryMB: r.memoryMB, accuracy: r.accuracy },
    score: r.accuracy,
    feasible: true,
  });
  return {
    kind: 'pareto-ladder',
    predict: (cfg: SubnetConfig) => fallback.predict(cfg),
    get ladder() {
      return keeper.current;
    },
    get candidates() {
      return keeper.current ? keeper.current.around(lastRung ?? keeper.current.rungs.length - 1).map((i) => ({ config: keeper.current!.rungs[i]!.subnet })) : [];
    },
    choose(budget: UserBudget): Promise<SubnetChoice> {
      const ladder = keeper.current;
      if (!ladder) return fallback.choose(budget);
      const i = ladder.rungFor(budget);
      if (i < 0) return fallback.choose(budget); // below every rung: the search says what fits, if anything
      lastRung = i;
      return Promise.resolve(choiceOf(ladder.rungs[i]!));
    },
    noteSlowdown(slowdown: number, userLatencyMs: number | undefined) {
      const cls = slowdownClass(slowdown);
      if (cls === key.slowdownClass) return;
      key = { ...key, slowdownClass: cls };
      focusMs = userLatencyMs !== undefined ? userLatencyMs / 2 ** cls : undefined;
      opts.logger?.info({ slowdownClass: cls, focusMs }, 'slowdown class changed: rebuilding the ladder in the background');
      void keeper.ensure(key);
    },
    ladderStatus(): LadderStatus | null {
      const l = keeper.current;
      if (!l) return null;
      const r = lastRung === null ? undefined : l.rungs[lastRung];
      const bytes = [...onnx.values()].reduce((a, b) => a + b, 0);
      return {
        rungs: l.rungs.length,
        rung: lastRung,
        chosen: r ? { id: r.id, latencyMs: r.latencyMs, accuracy: r.accuracy } : null,
        slowdownClass: l.key.slowdownClass,
        builds: keeper.builds,
        buildMs: Math.round(l.builtMs),
        prepared: { statistics: l.rungs.filter((x) => stats.has(x.id)).length, onnx: l.rungs.filter((x) => onnx.has(x.id)).length, onnxBytes: bytes },
      };
    },
    toPrepare(): Rung[] {
      const l = keeper.current;
      if (!l) return [];
      return l.around(lastRung ?? l.rungs.length - 1).map((i) => l.rungs[i]!).filter((r) => !stats.has(r.id));
    },
    markPrepared(id: string, what: 'statistics' | 'onnx', bytes = 0) {
      if (what === 'statistics') stats.add(id);
      else onnx.set(id, bytes);
    },
  };
}

export interface PreparationOptions {
  /** rungs around the current one to prepare (default 8) */
  rungs?: number;
  /** built ONNX kept for them (default 16 MB; within the hot swapper's cache) */
  onnxBytes?: number;
  /** sessions kept open and run once for the nearest prepared rungs, so a swap to one skips opening it (default 8, as many as the rungs prepared; the hot swapper's `openedKeep`) */
  sessions?: number;
  /** pause between idle checks (ms, default 250) */
  idleMs?: number;
}

/**
 * At idle (no swap being built), prepares the rungs nearest the current one: BN statistics first,
 * then the built ONNX while the byte budget lasts. Runs until `closed()`; never blocks a swap.
 */
export async function prepareRungs(
  sel: LadderSelector,
  parts: { materializer: Materializer; hot: HotSwapper; calibration: CalibrateOptions; sleep: (ms: number) => Promise<void>; closed: () => boolean; log: CoreLogger },
  o: PreparationOptions = {},
): Promise<void> {
  const nRungs = o.rungs ?? 8;
  const maxBytes = o.onnxBytes ?? 16 * 1024 * 1024;
  const built = new Set<string>();
  while (!parts.closed()) {
    if (parts.hot.busy) {
      await parts.sleep(20);
      continue;
    }
    const l = sel.ladder;
    const near = l ? l.around(sel.ladderStatus()?.rung ?? l.rungs.length - 1).slice(0, nRungs).map((i) => l.rungs[i]!) : [];
    const pending = new Set(sel.toPrepare().map((r) => r.id));
    const todo = near.find((r) => pending.has(r.id));
    if (todo) {
      try {
        await parts.materializer.statistics(todo.subnet, parts.calibration);
        sel.markPrepared(todo.id, 'statistics');
      } catch (err) {
        parts.log.warn({ err, subnet: todo.id }, 'background BN calibration of a rung failed');
        sel.markPrepared(todo.id, 'statistics'); // not retried in a loop
      }
      continue;
    }
    const next = near.find((r) => !built.has(r.id) && r.id !== parts.hot.active?.subnetId);
    if (next && parts.hot.cachedBytes < maxBytes) {
      const before = parts.hot.cachedBytes;
      built.add(next.id);
      if (await parts.hot.prefetch(next.subnet)) sel.markPrepared(next.id, 'onnx', Math.max(0, parts.hot.cachedBytes - before));
      continue;
    }
    // then sessions for the nearest rungs whose bytes are cached (a swap back releases one: reopened here)
    const keep = o.sessions ?? DEFAULT_OPEN_SESSIONS;
    const opened = new Set(parts.hot.openedIds);
    const open = keep > 0 ? near.filter((r) => r.id !== parts.hot.active?.subnetId).slice(0, keep).find((r) => !opened.has(r.id) && parts.hot.isCached(r.subnet)) : undefined;
    if (open && (await parts.hot.preopen(open.subnet))) continue;
    await parts.sleep(o.idleMs ?? 250);
  }
}

export const DEFAULT_OPEN_SESSIONS = 8;
