/**
 * The documentation's plots, drawn from the committed results (`npm run plots` writes docs/img/*.svg):
 *   accuracy-macs.svg      fmnist-ofa accuracy table (validation) and test results vs MACs
 *   memory-prediction.svg  predicted vs measured memory of bench/profile's subnets
 *   latency-prediction.svg bench/profile's latency-prediction error, per family and comparison
 *   swap-latency.svg       request latency p99, steady vs during swaps, per swap-path variant
 * Deterministic: the same JSON gives byte-identical SVG (test/docs.test.ts checks the committed files).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// ---------- a small SVG kit ----------

const W = 680;
const H = 420;
const M = { left: 64, right: 20, top: 44, bottom: 56 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

const f = (v: number) => (Math.round(v * 10) / 10).toString();
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Axis {
  min: number;
  max: number;
  log?: boolean;
  ticks: number[];
  label: string;
  format?: (v: number) => string;
}

function project(a: Axis, v: number, from: number, to: number): number {
  const t = a.log ? (Math.log(v) - Math.log(a.min)) / (Math.log(a.max) - Math.log(a.min)) : (v - a.min) / (a.max - a.min);
  return from + t * (to - from);
}

class Plot {
  private readonly parts: string[] = [];
  constructor(
    readonly x: Axis,
    readonly y: Axis,
    title: string,
  ) {
    this.parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
    this.parts.push(`<defs><clipPath id="frame"><rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}"/></clipPath></defs>`);
    this.parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`);
  }
  px(v: number): number {
    return project(this.x, v, M.left, W - M.right);
  }
  py(v: number): number {
    return project(this.y, v, H - M.bottom, M.top);
  }
  add(svg: string): void {
    this.parts.push(svg);
  }
  axes(xCategories?: string[]): void {
    const fy = this.y.format ?? String;
    for (const t of this.y.ticks) {
      const y = f(this.py(t));
      this.add(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
      this.add(`<text x="${M.left - 6}" y="${f(this.py(t) + 4)}" text-anchor="end" font-size="11">${esc(fy(t))}</text>`);
    }
    if (!xCategories) {
      const fx = this.x.format ?? String;
      for (const t of this.x.ticks) {
        const x = f(this.px(t));
        this.add(`<line x1="${x}" x2="${x}" y1="${M.top}" y2="${H - M.bottom}" stroke="#f0f0f0"/>`);
        this.add(`<text x="${x}" y="${H - M.bottom + 16}" text-anchor="middle" font-size="11">${esc(fx(t))}</text>`);
      }
    }
    this.add(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#888"/>`);
    this.add(`<text x="${(M.left + W - M.right) / 2}" y="${H - 14}" text-anchor="middle" font-size="12">${esc(this.x.label)}</text>`);
    this.add(`<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(this.y.label)}</text>`);
  }
  legend(items: { label: string; color: string; shape: 'dot' | 'cross' | 'bar' | 'line' }[], x = M.left + 10, y = M.top + 14): void {
    items.forEach((it, i) => {
      const cy = y + i * 16;
      if (it.shape === 'bar') this.add(`<rect x="${x}" y="${cy - 8}" width="12" height="10" fill="${it.color}"/>`);
      else if (it.shape === 'line') this.add(`<line x1="${x}" x2="${x + 12}" y1="${cy - 3}" y2="${cy - 3}" stroke="${it.color}" stroke-width="2" stroke-dasharray="4 3"/>`);
      else this.add(marker(it.shape, x + 6, cy - 3, it.color));
      this.add(`<text x="${x + 18}" y="${cy + 1}" font-size="11">${esc(it.label)}</text>`);
    });
  }
  toString(): string {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n${this.parts.join('\n')}\n</svg>\n`;
  }
}

function marker(shape: 'dot' | 'cross', x: number, y: number, color: string, r = 3.5): string {
  if (shape === 'dot') return `<circle cx="${f(x)}" cy="${f(y)}" r="${r}" fill="${color}"/>`;
  return `<path d="M${f(x - r)} ${f(y - r)}L${f(x + r)} ${f(y + r)}M${f(x - r)} ${f(y + r)}L${f(x + r)} ${f(y - r)}" stroke="${color}" stroke-width="2"/>`;
}

/** Grouped bars: one group per category, one bar per series; values drawn above the bars. */
function groupedBars(p: Plot, categories: string[], series: { label: string; values: number[] }[], fmt: (v: number) => string): void {
  const plotW = W - M.left - M.right;
  const groupW = plotW / categories.length;
  const barW = (groupW * 0.8) / series.length;
  const base = p.py(p.y.min);
  categories.forEach((c, i) => {
    const gx = M.left + i * groupW + groupW * 0.1;
    series.forEach((s, j) => {
      const v = s.values[i]!;
      const y = p.py(Math.max(v, p.y.min));
      p.add(`<rect x="${f(gx + j * barW)}" y="${f(y)}" width="${f(barW - 2)}" height="${f(base - y)}" fill="${COLORS[j % COLORS.length]}"/>`);
      p.add(`<text x="${f(gx + j * barW + (barW - 2) / 2)}" y="${f(y - 3)}" text-anchor="middle" font-size="9">${esc(fmt(v))}</text>`);
    });
    p.add(`<text x="${f(gx + groupW * 0.4)}" y="${H - M.bottom + 16}" text-anchor="middle" font-size="11">${esc(c)}</text>`);
  });
}

// ---------- the plots ----------

interface TableRow {
  macs: number;
  accuracy: number;
}
interface Results {
  results: { role: string; macs: number; testAccuracy: number }[];
  fromScratch: { name: string; macs: number; scratchTestAccuracy: number }[];
}

function accuracyVsMacs(root: string): string {
  const table = readJson<{ rows: TableRow[] }>(root, 'models/fmnist-ofa/package/accuracy-table.json').rows;
  const res = readJson<Results>(root, 'models/fmnist-ofa/results.json');
  const p = new Plot(
    { min: 2, max: 24, log: true, ticks: [2, 3, 5, 10, 20], label: 'MMACs (log scale)' },
    { min: 89, max: 94, ticks: [89, 90, 91, 92, 93, 94], label: 'top-1 accuracy', format: (v) => `${v}%` },
    `fmnist-ofa: accuracy vs MACs (${table.length} table subnets, validation; test results)`,
  );
  p.axes();
  for (const r of table) p.add(marker('dot', p.px(r.macs / 1e6), p.py(r.accuracy * 100), '#bbbbbb', 1.6));
  const front = res.results.slice().sort((a, b) => a.macs - b.macs);
  p.add(`<polyline fill="none" stroke="${COLORS[0]}" stroke-width="1.5" points="${front.map((r) => `${f(p.px(r.macs / 1e6))},${f(p.py(r.testAccuracy * 100))}`).join(' ')}"/>`);
  for (const r of front) p.add(marker('dot', p.px(r.macs / 1e6), p.py(r.testAccuracy * 100), COLORS[0]!));
  for (const s of res.fromScratch) p.add(marker('cross', p.px(s.macs / 1e6), p.py(s.scratchTestAccuracy * 100), COLORS[1]!, 5));
  p.legend(
    [
      { label: 'accuracy table: random subnets, validation (nestswap-materialized, BN recalibrated)', color: '#bbbbbb', shape: 'dot' },
      { label: 'smallest, validation-Pareto and largest subnets: test', color: COLORS[0]!, shape: 'dot' },
      { label: 'the same configs trained alone from scratch: test', color: COLORS[1]!, shape: 'cross' },
    ],
    M.left + 10,
    H - M.bottom - 40,
  );
  return p.toString();
}

interface ProfileBench {
  results: {
    family: string;
    memory: { samples: { measuredMB: number; predictedMB: number }[]; mape: number };
    profileValidation: Stats;
    latency: Stats;
    latencyDriftCorrected: Stats;
    repeatability: Stats;
  }[];
}
interface Stats {
  mape: number;
  within10: number;
  kendallTau: number;
}

function memoryPrediction(root: string): string {
  const bench = readJson<ProfileBench>(root, 'bench/results/profile.json');
  const all = bench.results.flatMap((r) => r.memory.samples.flatMap((s) => [s.measuredMB, s.predictedMB]));
  const lo = Math.min(...all) * 0.8;
  const hi = Math.max(...all) * 1.25;
  const ticks = [1, 2, 5, 10, 20, 50, 100, 200].filter((t) => t >= lo && t <= hi);
  const axis = (label: string): Axis => ({ min: lo, max: hi, log: true, ticks, label });
  const p = new Plot(axis('measured resident-memory increase, MB (log)'), axis('predicted, MB (log)'), 'Memory: predicted vs measured (bench/profile, 10 subnets per family)');
  p.axes();
  const band = (k: number) => `${f(p.px(lo))},${f(p.py(lo * k))} ${f(p.px(hi))},${f(p.py(hi * k))}`;
  p.add(`<polyline fill="none" stroke="#999" clip-path="url(#frame)" points="${band(1)}"/>`);
  p.add(`<polyline fill="none" stroke="#999" stroke-dasharray="4 3" clip-path="url(#frame)" points="${band(1.15)}"/>`);
  p.add(`<polyline fill="none" stroke="#999" stroke-dasharray="4 3" clip-path="url(#frame)" points="${band(1 / 1.15)}"/>`);
  bench.results.forEach((r, i) => {
    for (const s of r.memory.samples) p.add(marker('dot', p.px(s.measuredMB), p.py(s.predictedMB), COLORS[i]!));
  });
  p.legend([
    ...bench.results.map((r, i) => ({ label: `${r.family}: MAPE ${(r.memory.mape * 100).toFixed(1)}%`, color: COLORS[i]!, shape: 'dot' as const })),
    { label: '±15% (target)', color: '#999', shape: 'line' },
  ]);
  return p.toString();
}

function latencyPrediction(root: string): string {
  const bench = readJson<ProfileBench>(root, 'bench/results/profile.json');
  const kinds: { label: string; pick: (r: ProfileBench['results'][number]) => Stats }[] = [
    { label: "profile's held-out check", pick: (r) => r.profileValidation },
    { label: 'vs independent measurement', pick: (r) => r.latency },
    { label: 'the same, level taken out', pick: (r) => r.latencyDriftCorrected },
    { label: 'two measured passes (repeatability)', pick: (r) => r.repeatability },
  ];
  const values = kinds.map((k) => bench.results.map((r) => k.pick(r).mape * 100));
  const top = Math.max(10, ...values.flat()) * 1.15;
  const step = top > 40 ? 10 : 5;
  const p = new Plot(
    { min: 0, max: 1, ticks: [], label: 'family (bench/profile, last run; 100 random subnets, 10 for the held-out check)' },
    { min: 0, max: top, ticks: Array.from({ length: Math.floor(top / step) + 1 }, (_, i) => i * step), label: 'latency MAPE', format: (v) => `${v}%` },
    'Latency prediction error (lower is better; target MAPE ≤ 5%)',
  );
  p.axes([]);
  groupedBars(
    p,
    bench.results.map((r) => r.family),
    kinds.map((k, i) => ({ label: k.label, values: values[i]! })),
    (v) => `${v.toFixed(1)}%`,
  );
  const y5 = f(p.py(5));
  p.add(`<line x1="${M.left}" x2="${W - M.right}" y1="${y5}" y2="${y5}" stroke="#333" stroke-dasharray="4 3"/>`);
  p.legend(kinds.map((k, i) => ({ label: k.label, color: COLORS[i]!, shape: 'bar' as const })));
  return p.toString();
}

interface SwapBench {
  sessionHost: string;
  buildOnMainThread: boolean;
  latencyMs: { steady: { p99: number }; duringSwaps: { p99: number }; fromSchedule: { steady: { p99: number }; duringSwaps: { p99: number } } };
}

function swapLatency(root: string): string {
  const variants = [
    { file: 'swap.json', label: 'default' },
    { file: 'swap-worker.json', label: '--session-host worker' },
    { file: 'swap-onnx-cache.json', label: 'ONNX cache kept' },
    { file: 'swap-inline.json', label: 'builder off (inline)' },
  ].map((v) => ({ ...v, data: readJson<SwapBench>(root, `bench/results/${v.file}`) }));
  const series = [
    { label: 'steady p99 (from the call)', values: variants.map((v) => v.data.latencyMs.steady.p99) },
    { label: 'during swaps p99 (from the call)', values: variants.map((v) => v.data.latencyMs.duringSwaps.p99) },
    { label: 'steady p99 (from the due time)', values: variants.map((v) => v.data.latencyMs.fromSchedule.steady.p99) },
    { label: 'during swaps p99 (from the due time)', values: variants.map((v) => v.data.latencyMs.fromSchedule.duringSwaps.p99) },
  ];
  const p = new Plot(
    { min: 0, max: 1, ticks: [], label: 'swap path (bench/swap: 10,000 requests, 100 swaps; the three variants are earlier runs, before NCHWc candidates)' },
    { min: 1, max: 100, log: true, ticks: [1, 2, 5, 10, 20, 50, 100], label: 'request latency p99, ms (log)' },
    'Request latency around swaps (fmnist-ofa, 4 subnets min → max)',
  );
  p.axes([]);
  groupedBars(
    p,
    variants.map((v) => v.label),
    series,
    (v) => v.toFixed(1),
  );
  p.legend(series.map((s, i) => ({ label: s.label, color: COLORS[i]!, shape: 'bar' as const })));
  return p.toString();
}

// ---------- entry ----------

function readJson<T>(root: string, rel: string): T {
  return JSON.parse(readFileSync(join(root, rel), 'utf8')) as T;
}

/** Every plot as (file name under docs/img, SVG text). */
export function renderPlots(root: string): Map<string, string> {
  return new Map([
    ['accuracy-macs.svg', accuracyVsMacs(root)],
    ['memory-prediction.svg', memoryPrediction(root)],
    ['latency-prediction.svg', latencyPrediction(root)],
    ['swap-latency.svg', swapLatency(root)],
  ]);
}

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const out = join(REPO_ROOT, 'docs', 'img');
  mkdirSync(out, { recursive: true });
  for (const [name, svg] of renderPlots(REPO_ROOT)) {
    writeFileSync(join(out, name), svg);
    process.stdout.write(`${JSON.stringify({ wrote: `docs/img/${name}`, bytes: svg.length })}\n`);
  }
}
