/**
 * How many calibration images BN recalibration needs (fmnist-ofa) → JSON on stdout.
 *
 *   node dist/bench/calibration.js [--subnets 10] [--data .cache/fmnist]
 *
 * For the smallest, the largest and `--subnets` seeded random subnets: recalibrate BN on the first
 * N images of the package's calibration set (shuffled at export) for each N, fold, score on the
 * 5,000 validation images, and compare with N = all (OFA's 2,000). Reports per N the calibration
 * time (median over subnets) and the accuracy change against N = all (mean and max absolute, points).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { calibrateBn } from '../runtime/calibrate.js';
import { buildSubnet, SubnetWeights } from '../runtime/materialize.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { mulberry32 } from '../runtime/random.js';
import { ModelSession } from '../runtime/session.js';
import { loadFmnist } from '../models/fmnist-ofa/data.js';
import { scoreSession } from '../models/fmnist-ofa/accuracy-table.js';
import { summary, timeIt } from './stats.js';

const { values } = parseArgs({ options: { subnets: { type: 'string', default: '10' }, data: { type: 'string', default: '.cache/fmnist' } } });
const dir = 'models/fmnist-ofa/package';
if (!existsSync(`${dir}/manifest.json`) || !existsSync(values.data)) {
  process.stdout.write(`${JSON.stringify({ bench: 'calibration', skipped: `needs ${dir} and ${values.data} (node dist/models/fmnist-ofa/data.js ${values.data})` })}\n`);
  process.exit(0);
}
const pkg = await loadPackageDir(dir);
const w = new SubnetWeights(pkg);
const data = loadFmnist(values.data);
const total = pkg.manifest.calibration.count;
const sizes = [100, 250, 500, 1000, total].filter((n, i, a) => n <= total && a.indexOf(n) === i);
const rng = mulberry32(7);
const configs = [pkg.space.min(), pkg.space.max(), ...Array.from({ length: Number(values.subnets) }, () => pkg.space.sample(rng))];

const ms = new Map<number, number[]>(sizes.map((n) => [n, []]));
const acc = new Map<number, number[]>(sizes.map((n) => [n, []]));
for (const cfg of configs) {
  for (const n of sizes) {
    let stats!: Awaited<ReturnType<typeof calibrateBn>>;
    ms.get(n)!.push(await timeIt(async () => (stats = await calibrateBn(w, cfg, nodeBackend, { images: n }))));
    const s = await ModelSession.create(nodeBackend, buildSubnet(w, cfg, { mode: 'fold', stats }).bytes);
    acc.get(n)!.push(await scoreSession(s, data, 'val'));
    await s.release();
  }
}
const ref = acc.get(total)!;
const r = (v: number) => Math.round(v * 1000) / 1000;
const perSize = sizes.map((n) => {
  const d = acc.get(n)!.map((a, i) => Math.abs(a - ref[i]!) * 100);
  return {
    images: n,
    calibrationMs: summary(ms.get(n)!),
    accuracyChangePoints: { mean: r(d.reduce((a, b) => a + b, 0) / d.length), max: r(Math.max(...d)) },
    meanValAccuracy: r((acc.get(n)!.reduce((a, b) => a + b, 0) / configs.length) * 100),
  };
});
process.stdout.write(
  `${JSON.stringify({ bench: 'calibration', supernet: 'fmnist-ofa', subnets: configs.map((c) => pkg.space.id(c)), batch: pkg.manifest.calibration.batch, validationImages: 5000, perSize }, null, 2)}\n`,
);
