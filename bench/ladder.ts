/**
 * Pareto-ladder benchmark (prints JSON): fmnist-ofa with its own ONNX accuracy predictor and a
 * MACs-proportional latency model standing in for a device profile (1 ms per million MACs).
 *   node dist/bench/ladder.js [--swaps 100] [--sessions 8]   [--gap-ms 100]
 *   (--sessions: rung sessions kept open, 0 = none; --gap-ms: idle time between budget changes, less than a monitor window)
 * Figures, side by side in one run:
 *  - ladder build time (64 rungs: NSGA-II front + the default search at 12 budgets);
 *  - decision: the ladder selector's choose() over random budgets vs the search selector's on fresh budgets;
 *  - budget change → serving a prepared rung: an agent on the ladder prepares the rungs near the serving
 *    one at idle (BN statistics, built ONNX), then `swaps` budget changes among them; setBudget wall time,
 *    the time to the first answer of a request sent once it returns (from the new subnet), the swap's
 *    phases, and how many swaps waited for BN calibration (statsCached false) or rebuilt the ONNX.
 */
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { mulberry32 } from '../runtime/random.js';
import { flatLatencyPredictor, macsModel, type EfficiencyModel } from '../runtime/search/index.js';
import { startDaemon } from '../agent/daemon.js';
import { ladderSearchSelector } from '../agent/core/ladder-selector.js';
import { searchSelector } from '../agent/core/search-selector.js';
import { packageSearchInputs } from '../agent/search-inputs.js';

const { values } = parseArgs({ options: { swaps: { type: 'string', default: '100' }, sessions: { type: 'string', default: '8' }, 'gap-ms': { type: 'string', default: '100' } } });
const nSwaps = Number(values.swaps);
const dir = 'models/fmnist-ofa/package';
if (!existsSync(`${dir}/manifest.json`)) {
  process.stdout.write(`${JSON.stringify({ bench: 'ladder', skipped: `${dir} absent` })}\n`);
  process.exit(0);
}
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};
const stats = (xs: number[], d = 3) => {
  const f = 10 ** d;
  const r = (v: number) => Math.round(v * f) / f;
  return { n: xs.length, median: r(q(xs, 0.5)), p99: r(q(xs, 0.99)), max: r(Math.max(...xs)) };
};

const pkg = await loadPackageDir(dir);
const base = await packageSearchInputs(pkg);
const macs = macsModel(pkg.arch);
const latencyModel: EfficiencyModel = { ...macs, unit: 'ms', fixed: macs.fixed.map((v) => v / 1e6), slot: macs.slot.map((v) => v / 1e6) };
const inputs = { ...base, efficiency: { ...base.efficiency, latency: flatLatencyPredictor(latencyModel) } };

const t0 = performance.now();
const selector = await ladderSearchSelector(pkg, inputs, { profileDigest: 'macs', predictorDigest: 'pkg', rungs: 64 });
const buildMs = performance.now() - t0;
const ladder = selector.ladder!;
const lo = ladder.rungs[0]!.latencyMs;
const hi = ladder.rungs[ladder.rungs.length - 1]!.latencyMs;

// decisions: ladder vs search, on budgets spread over the ladder's range
const rng = mulberry32(1);
const ladderUs: number[] = [];
for (let i = 0; i < 10_000; i++) {
  const b = { latencyMs: lo + rng() * (hi - lo) };
  const s = performance.now();
  await selector.choose(b);
  ladderUs.push((performance.now() - s) * 1000);
}
const search = searchSelector(pkg, inputs);
const searchMs: number[] = [];
for (let i = 0; i < 10; i++) {
  const b = { latencyMs: lo + ((i + 0.5) / 10) * (hi - lo) };
  const s = performance.now();
  await search.choose(b);
  searchMs.push(performance.now() - s);
}

// an agent on the ladder: prepare at idle, then budget changes among the prepared rungs
const mid = Math.floor(ladder.rungs.length / 2);
const d = await startDaemon({
  pkg,
  budget: { latencyMs: ladder.rungs[mid]!.latencyMs },
  selector,
  threads: 1,
  monitor: { intervalMs: 1000, probe: false },
  // hold the policy still: the bench decides the swaps
  policy: { cooldownMs: 1e9 },
  prepare: { rungs: 8, idleMs: 20, sessions: Number(values.sessions) },
});
const prepStart = performance.now();
for (let t = 0; t < 3000; t++) {
  const p = d.status().ladder!.prepared;
  if (p.statistics >= 8 && p.onnx >= 7) break;
  await new Promise((r) => setTimeout(r, 100));
}
const prepareMs = performance.now() - prepStart;
const prepared = d.status().ladder!.prepared;
const near = ladder.around(mid).slice(0, 8);
const swapMs: number[] = [];
const answerMs: number[] = [];
const phases = { build: [] as number[], open: [] as number[], warm: [] as number[], check: [] as number[], swap: [] as number[] };
const x = Float32Array.from({ length: pkg.manifest.input.shape.reduce((a, b) => a * b, 1) }, (_, i) => (i % 23) / 23);
let answeredByOther = 0;
let calibrationWaits = 0;
let onnxRebuilds = 0;
let openedAhead = 0;
let outcomes = 0;
for (let i = 0; i < nSwaps; i++) {
  // next rung: a different one among the prepared, alternating around the middle
  const target = ladder.rungs[near[(i % (near.length - 1)) + 1]!]!;
  const s = performance.now();
  // the budget is the rung's own latency: rungs can lie closer than any margin
  const rec = await d.setBudget({ latencyMs: target.latencyMs });
  swapMs.push(performance.now() - s);
  // the first request sent once the budget change returns: answered by the new subnet, timed from the change
  const a = await d.infer(x, 1);
  answerMs.push(performance.now() - s);
  if (a.subnetId !== target.id) answeredByOther++;
  const t = rec.timings;
  if (t) {
    phases.build.push(t.buildMs);
    phases.open.push(t.openMs - t.buildMs);
    phases.warm.push(t.warmMs - t.openMs);
    phases.check.push(t.checkMs - t.warmMs);
    phases.swap.push(t.totalMs - t.checkMs);
  }
  if (rec.outcome === 'swapped') outcomes++;
  if (rec.statsCached === false) calibrationWaits++;
  if (!rec.onnxCached) onnxRebuilds++;
  if (rec.openedAhead) openedAhead++;
  // the next swap back to it needs its ONNX again: let the idle preparation rebuild what the swap used
  for (let t = 0; t < 100 && d.status().ladder!.prepared.onnx < 7; t++) await new Promise((r) => setTimeout(r, 20));
  // budget changes follow live conditions, a monitor window (1 s) apart at most: the agent is idle meanwhile
  await new Promise((r) => setTimeout(r, Number(values['gap-ms'])));
}
await d.close();

process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'ladder',
      when: new Date().toISOString(),
      loadavg: loadavg().map((v) => Math.round(v * 100) / 100),
      supernet: 'fmnist-ofa (own ONNX predictor), latency = 1 ms per million MACs',
      ladder: { rungs: ladder.rungs.length, buildMs: Math.round(buildMs), latencyRangeMs: [lo, hi].map((v) => Math.round(v * 1000) / 1000) },
      decisionUs: { ladder: stats(ladderUs), search: stats(searchMs.map((v) => v * 1000), 0), ratio_search_over_ladder_median: Math.round(q(searchMs, 0.5) * 1000 / q(ladderUs, 0.5)) },
      preparation: { rungs: 8, sessionsKeptOpen: Number(values.sessions), wallMs: Math.round(prepareMs), ...prepared },
      gapBetweenChangesMs: Number(values['gap-ms']),
      budgetChangeToServingMs: stats(swapMs),
      budgetChangeToFirstAnswerMs: { ...stats(answerMs), answeredByAnotherSubnet: answeredByOther },
      // where a swap's time goes: ONNX from the cache, session opened, warm-up run, health check (finite outputs, timed beside the serving model), the swap
      phasesMs: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, v.length ? { median: Math.round(q(v, 0.5) * 1000) / 1000, p99: Math.round(q(v, 0.99) * 1000) / 1000 } : null])),
      swaps: { requested: nSwaps, swapped: outcomes, waitedForCalibration: calibrationWaits, rebuiltOnnx: onnxRebuilds, sessionOpenedAhead: openedAhead },
    },
    null,
    2,
  )}\n`,
);
