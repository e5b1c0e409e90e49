/**
 * Once-for-All's way to a deployable subnet (PyTorch: extract, recalibrate BN on 2,000 images,
 * torch.onnx.export) against `nestswap materialize` (calibrate + build) for the same configs, in one
 * run, on the fmnist-ofa package. Prints JSON with medians and the ratio.
 *
 *   node dist/bench/ofa-baseline.js [--n 5] [--threads 2]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Materializer } from '../runtime/materializer.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { mulberry32 } from '../runtime/random.js';
import { resolveSupernetDir } from '../agent/packages.js';
import { median, summary } from './stats.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '5' }, threads: { type: 'string', default: '2' }, supernet: { type: 'string', default: 'fmnist-ofa' } } });
const dir = resolveSupernetDir(values.supernet);
const pkg = await loadPackageDir(dir);
const rng = mulberry32(11);
const configs = [pkg.space.min(), pkg.space.max(), ...Array.from({ length: Number(values.n) - 2 }, () => pkg.space.sample(rng))];
const tmp = mkdtempSync(join(tmpdir(), 'nestswap-bench-'));
writeFileSync(join(tmp, 'configs.json'), JSON.stringify(configs));

const py = spawnSync('/usr/bin/python3', ['models/ofa_baseline.py', '--package', dir, '--configs', join(tmp, 'configs.json'), '--threads', values.threads], { encoding: 'utf8', maxBuffer: 1 << 26 });
if (py.status !== 0) throw new Error(`PyTorch baseline failed: ${py.stderr}`);
const torch = JSON.parse(py.stdout) as { torch: string; results: { totalMs: number; calibrateMs: number; exportMs: number; extractMs: number }[] };

const ours: { totalMs: number; calibrationMs: number; buildMs: number }[] = [];
for (const cfg of configs) {
  const m = new Materializer(pkg, nodeBackend); // fresh: no cached statistics
  const t0 = performance.now();
  const r = await m.materialize(cfg, { calibration: { threads: Number(values.threads) } });
  ours.push({ totalMs: performance.now() - t0, calibrationMs: r.calibrationMs, buildMs: r.buildMs });
}
const cachedBuild: number[] = [];
const m = new Materializer(pkg, nodeBackend);
for (const cfg of configs) await m.materialize(cfg);
for (const cfg of configs) {
  const t0 = performance.now();
  await m.materialize(cfg);
  cachedBuild.push(performance.now() - t0);
}
const pt = torch.results.map((r) => r.totalMs);
const ns = ours.map((r) => r.totalMs);
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'ofa-baseline',
      supernet: pkg.name,
      configs: configs.map((c) => pkg.space.id(c)),
      threads: Number(values.threads),
      pytorch: { torch: torch.torch, totalMs: summary(pt), calibrateMs: summary(torch.results.map((r) => r.calibrateMs)), exportMs: summary(torch.results.map((r) => r.exportMs)), extractMs: summary(torch.results.map((r) => r.extractMs)) },
      nestswap: { ort: nodeBackend.version, totalMs: summary(ns), calibrationMs: summary(ours.map((r) => r.calibrationMs)), buildMs: summary(ours.map((r) => r.buildMs)), cachedStatsTotalMs: summary(cachedBuild) },
      speedup: { fresh: Math.round((median(pt) / median(ns)) * 100) / 100, cachedStats: Math.round((median(pt) / median(cachedBuild)) * 100) / 100 },
    },
    null,
    2,
  )}\n`,
);
