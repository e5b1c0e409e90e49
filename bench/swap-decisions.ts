/**
 * The 100-swap bench's decisions mode (`node dist/bench/swap.js --decisions`): the swaps are budget
 * changes that the agent decides, not pinned switches, on two agents side by side in one run under the
 * same open-loop requests:
 *  - `search`: the path without a ladder (`--ladder-rungs 0`, and every agent before the ladder): a search
 *    per decision, no idle preparation (the search's picks are not known before the budget comes);
 *  - `ladder`: the Pareto ladder (64 rungs) with idle preparation of the 8 rungs nearest the serving one
 *    (statistics, built ONNX, sessions kept open).
 * Both agents start together and idle for the same time (until the ladder's 8 rungs are prepared) before
 * anything is timed; the same budget sequence (the latencies of those 8 rungs, in turn) is then sent to
 * each in alternating blocks. Per agent: budget changes that waited for BN calibration (statsCached false),
 * budget change → serving (setBudget wall time) and its phases, request errors and latency meanwhile.
 * fmnist-ofa with its own ONNX accuracy predictor; latency = 1 ms per million MACs (as bench/ladder.ts).
 */
import { startDaemon, type DaemonHandle } from '../agent/daemon.js';
import { ladderSearchSelector } from '../agent/core/ladder-selector.js';
import { searchSelector } from '../agent/core/search-selector.js';
import { packageSearchInputs } from '../agent/search-inputs.js';
import type { SwapRecord } from '../runtime/hot-swap.js';
import type { SupernetPackage } from '../runtime/package.js';
import { flatLatencyPredictor, macsModel, type EfficiencyModel } from '../runtime/search/index.js';
import { sendWhenDue } from './open-loop.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const q = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

interface Tally {
  records: SwapRecord[];
  wallMs: number[];
  lat: number[];
  late: number[];
  errors: number;
}

/** `n` requests open-loop at `intervalMs` to `d`, and the budgets in turn, evenly spaced and one after another. */
async function load(d: DaemonHandle, n: number, budgets: number[], intervalMs: number, x: Float32Array, into: Tally): Promise<void> {
  const every = Math.max(1, Math.floor(n / Math.max(1, budgets.length)));
  let chain: Promise<void> = Promise.resolve();
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    if (i % every === 0 && i / every < budgets.length) {
      const latencyMs = budgets[i / every]!;
      chain = chain.then(async () => {
        const t0 = performance.now();
        const rec = await d.setBudget({ latencyMs });
        into.wallMs.push(performance.now() - t0);
        into.records.push(rec);
      });
    }
    inflight.push((await sendWhenDue(() => d.infer(x, 1), start + i * intervalMs, into)).done);
    if (inflight.length >= 64) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  await chain;
}

function summary(t: Tally) {
  const swapped = t.records.filter((r) => r.outcome === 'swapped');
  const ph = (f: (r: SwapRecord) => number) => r3(q(swapped.map(f), 0.5));
  return {
    budgetChanges: t.records.length,
    outcomes: Object.fromEntries(['swapped', 'unchanged', 'failed', 'superseded'].map((o) => [o, t.records.filter((r) => r.outcome === o).length])),
    waitedForCalibration: t.records.filter((r) => r.statsCached === false).length,
    onnxRebuilt: swapped.filter((r) => !r.onnxCached).length,
    sessionOpenedAhead: swapped.filter((r) => r.openedAhead).length,
    budgetChangeToServingMs: { median: r3(q(t.wallMs, 0.5)), p99: r3(q(t.wallMs, 0.99)), max: r3(Math.max(...t.wallMs)) },
    // medians over the swaps: the decision (setBudget's two choices) is the wall time less the swap's own
    phasesMedianMs: {
      decide: r3(q(swapped.map((r) => t.wallMs[t.records.indexOf(r)]! - r.timings!.totalMs), 0.5)),
      build: ph((r) => r.timings!.buildMs),
      open: ph((r) => r.timings!.openMs - r.timings!.buildMs),
      warmAndCheck: ph((r) => r.timings!.checkMs - r.timings!.openMs),
      swap: ph((r) => r.timings!.totalMs - r.timings!.checkMs),
    },
    requests: t.lat.length + t.errors,
    errors: t.errors,
    requestLatencyMs: { p50: r3(q(t.lat, 0.5)), p99: r3(q(t.lat, 0.99)), fromScheduleP99: r3(q(t.late, 0.99)) },
  };
}

export async function budgetDecisions(pkg: SupernetPackage, o: { swaps: number; requests: number; blocks: number; rate: number; threads: number }) {
  const base = await packageSearchInputs(pkg);
  const macs = macsModel(pkg.arch);
  const latencyModel: EfficiencyModel = { ...macs, unit: 'ms', fixed: macs.fixed.map((v) => v / 1e6), slot: macs.slot.map((v) => v / 1e6) };
  const inputs = { ...base, efficiency: { ...base.efficiency, latency: flatLatencyPredictor(latencyModel) } };
  const ladderSel = await ladderSearchSelector(pkg, inputs, { profileDigest: 'macs', predictorDigest: 'pkg', rungs: 64 });
  const ladder = ladderSel.ladder!;
  const mid = Math.floor(ladder.rungs.length / 2);
  const near = ladder.around(mid).slice(0, 8).map((i) => ladder.rungs[i]!.latencyMs);
  const common = { pkg, budget: { latencyMs: ladder.rungs[mid]!.latencyMs }, threads: o.threads, monitor: { intervalMs: 1000 }, policy: { cooldownMs: 1e9 } };
  const agents = {
    search: await startDaemon({ ...common, selector: searchSelector(pkg, inputs) }),
    ladder: await startDaemon({ ...common, selector: ladderSel, prepare: { rungs: 8 } }),
  };
  try {
    const idle0 = performance.now();
    for (let t = 0; t < 1200; t++) {
      const p = agents.ladder.status().ladder!.prepared;
      if (p.statistics >= 8 && p.onnx >= 7) break;
      await sleep(100);
    }
    const idleMs = performance.now() - idle0;
    const prepared = agents.ladder.status().ladder!.prepared;
    const x = Float32Array.from({ length: pkg.manifest.input.shape.reduce((a, b) => a * b, 1) }, (_, i) => (i % 23) / 23);
    const budgets = Array.from({ length: o.swaps }, (_, i) => near[(i + 1) % near.length]!);
    const tally = { search: { records: [], wallMs: [], lat: [], late: [], errors: 0 } as Tally, ladder: { records: [], wallMs: [], lat: [], late: [], errors: 0 } as Tally };
    const per = Math.ceil(o.swaps / o.blocks);
    for (let b = 0; b < o.blocks; b++) {
      const chunk = budgets.slice(b * per, (b + 1) * per);
      // alternate which agent goes first: both see the same machine
      for (const k of b % 2 ? (['ladder', 'search'] as const) : (['search', 'ladder'] as const))
        await load(agents[k], Math.floor(o.requests / 2 / o.blocks), chunk, 1000 / o.rate, x, tally[k]);
    }
    const end = agents.ladder.status().ladder!;
    return {
      mode: 'decisions',
      supernet: `${pkg.name} (own ONNX predictor), latency = 1 ms per million MACs`,
      // builds > 1: the live slowdown changed class during the run and the ladder was rebuilt (on the serving thread)
      ladder: { rungs: ladder.rungs.length, prepared: { rungs: 8, ...prepared }, idleBeforeTimingMs: Math.round(idleMs), builds: end.builds, slowdownClassAtEnd: end.slowdownClass, preparedAtEnd: end.prepared },
      budgets: near.map(r3),
      ratePerSecond: r3(o.rate),
      search: summary(tally.search),
      ladderAgent: summary(tally.ladder),
    };
  } finally {
    await agents.search.close();
    await agents.ladder.close();
  }
}
