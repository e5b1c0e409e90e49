/**
 * Test-split report of the trained fmnist-ofa supernet: the smallest and largest subnets and the
 * Pareto-best subnets of the accuracy table (validation accuracy vs MACs), each materialized by
 * nestswap (BN recalibrated) and scored on the 10,000 test images; plus an SVG plot. Subnets trained
 * alone from scratch (models/fmnist-ofa/scratch.sh → scratch/<name>.json) are put beside the same
 * configs taken from the supernet.
 *
 *   node dist/models/fmnist-ofa/report.js [--package models/fmnist-ofa/package] [--out models/fmnist-ofa]
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Materializer } from '../../runtime/materializer.js';
import { loadPackageDir } from '../../runtime/node/fs-source.js';
import { nchwcCalibration } from '../../runtime/node/nchwc.js';
import { nodeBackend } from '../../runtime/node/ort-node.js';
import { ModelSession } from '../../runtime/session.js';
import type { SubnetConfig } from '../../runtime/space.js';
import { loadFmnist } from './data.js';
import { scoreSession, type TableRow } from './accuracy-table.js';

const { values } = parseArgs({
  options: {
    package: { type: 'string', default: 'models/fmnist-ofa/package' },
    data: { type: 'string', default: '.cache/fmnist' },
    out: { type: 'string', default: 'models/fmnist-ofa' },
  },
});
const pkg = await loadPackageDir(values.package);
const table = JSON.parse(new TextDecoder().decode(pkg.fileByRole('accuracy-table'))) as { rows: TableRow[] };
const rows = table.rows;
// Pareto front: no other row has fewer (or equal) MACs and higher validation accuracy.
const sorted = [...rows].sort((a, b) => a.macs - b.macs || b.accuracy - a.accuracy);
const front: TableRow[] = [];
let best = -1;
for (const r of sorted)
  if (r.accuracy > best) {
    front.push(r);
    best = r.accuracy;
  }
const data = loadFmnist(values.data);
const m = new Materializer(pkg, nodeBackend, undefined, nchwcCalibration);
const minId = pkg.space.id(pkg.space.min());
const maxId = pkg.space.id(pkg.space.max());
const pick = new Map<string, TableRow>();
for (const r of [...front, ...rows.filter((r) => r.id === minId || r.id === maxId)]) pick.set(r.id, r);
const results: { id: string; role: string; macs: number; params: number; valAccuracy: number; testAccuracy: number }[] = [];
for (const r of pick.values()) {
  const mat = await m.materialize(r.config);
  const s = await ModelSession.create(nodeBackend, mat.bytes);
  const testAccuracy = await scoreSession(s, data, 'test');
  await s.release();
  const role = r.id === minId ? 'smallest' : r.id === maxId ? 'largest' : 'pareto';
  results.push({ id: r.id, role, macs: r.macs, params: r.params, valAccuracy: r.accuracy, testAccuracy });
}
results.sort((a, b) => a.macs - b.macs);

interface Scratch {
  name: string;
  config: SubnetConfig;
  test_accuracy: number;
  epochs: number;
}
const scratchDir = join(values.out, 'scratch');
const fromScratch: { name: string; id: string; macs: number; epochs: number; scratchTestAccuracy: number; supernetTestAccuracy: number; deltaPoints: number }[] = [];
if (existsSync(scratchDir))
  for (const f of readdirSync(scratchDir).filter((f) => f.endsWith('.json')).sort()) {
    const sc = JSON.parse(readFileSync(join(scratchDir, f), 'utf8')) as Scratch;
    const mat = await m.materialize(sc.config);
    const s = await ModelSession.create(nodeBackend, mat.bytes);
    const supernetTestAccuracy = await scoreSession(s, data, 'test');
    await s.release();
    fromScratch.push({
      name: sc.name,
      id: mat.subnetId,
      macs: mat.macs,
      epochs: sc.epochs,
      scratchTestAccuracy: sc.test_accuracy,
      supernetTestAccuracy,
      deltaPoints: Math.round((supernetTestAccuracy - sc.test_accuracy) * 10000) / 100,
    });
  }
fromScratch.sort((a, b) => a.macs - b.macs);
writeFileSync(join(values.out, 'results.json'), `${JSON.stringify({ split: 'test (10,000 images)', table: rows.length, results, fromScratch }, null, 1)}\n`);

// SVG: all table rows (validation) in grey, the Pareto front's test accuracy in blue.
const W = 640;
const H = 400;
const pad = 50;
const xs = rows.map((r) => r.macs / 1e6);
const ys = rows.map((r) => r.accuracy * 100).concat(results.map((r) => r.testAccuracy * 100));
const x0 = Math.min(...xs);
const x1 = Math.max(...xs);
const y0 = Math.floor(Math.min(...ys));
const y1 = Math.ceil(Math.max(...ys));
const px = (v: number) => pad + ((v - x0) / (x1 - x0)) * (W - 2 * pad);
const py = (v: number) => H - pad - ((v - y0) / (y1 - y0)) * (H - 2 * pad);
const dots = rows.map((r) => `<circle cx="${px(r.macs / 1e6).toFixed(1)}" cy="${py(r.accuracy * 100).toFixed(1)}" r="1.6" fill="#bbb"/>`).join('');
const fr = results.filter((r) => r.role !== 'largest' || front.some((f) => f.id === r.id));
const line = fr.map((r) => `${px(r.macs / 1e6).toFixed(1)},${py(r.testAccuracy * 100).toFixed(1)}`).join(' ');
const marks = results.map((r) => `<circle cx="${px(r.macs / 1e6).toFixed(1)}" cy="${py(r.testAccuracy * 100).toFixed(1)}" r="3.5" fill="${r.role === 'pareto' ? '#1f77b4' : '#d62728'}"/>`).join('');
const ticks = [];
for (let y = y0; y <= y1; y++) ticks.push(`<text x="${pad - 8}" y="${py(y) + 4}" text-anchor="end" font-size="11">${y}%</text><line x1="${pad}" x2="${W - pad}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/>`);
for (let i = 0; i <= 5; i++) {
  const v = x0 + ((x1 - x0) * i) / 5;
  ticks.push(`<text x="${px(v)}" y="${H - pad + 16}" text-anchor="middle" font-size="11">${v.toFixed(1)}</text>`);
}
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${ticks.join('')}${dots}<polyline points="${line}" fill="none" stroke="#1f77b4"/>${marks}<text x="${W / 2}" y="${H - 10}" text-anchor="middle" font-size="12">MACs (millions)</text><text x="14" y="${H / 2}" transform="rotate(-90 14 ${H / 2})" text-anchor="middle" font-size="12">top-1 accuracy</text><text x="${W / 2}" y="20" text-anchor="middle" font-size="13">fmnist-ofa: ${rows.length} random subnets (grey, validation); Pareto-best on the test split (blue), smallest/largest (red)</text></svg>\n`;
writeFileSync(join(values.out, 'pareto.svg'), svg);
process.stdout.write(`${JSON.stringify({ front: front.length, results, fromScratch }, null, 1)}\n`);
