/**
 * How noisy is one row of the accuracy table? The predictor is scored against the table, so a row's
 * own measurement noise is a floor under any predictor's RMSE. Two sources, measured on a seeded
 * sample of the table's subnets:
 *  - the calibration draw: the same subnet recalibrated on other 2,000-image draws from the train
 *    split (the package's set is draw 0) scores differently on the same validation images;
 *  - the validation sample: each row's score on two seeded halves of the validation split; the
 *    spread of (half A - half B) across subnets, halved, is the subnet-specific part of a
 *    full-split score's sampling error (the part shared by all subnets cancels out of A - B).
 * Prints JSON; draw 0 must reproduce the table's own accuracy (checked).
 *
 *   node dist/models/fmnist-ofa/table-noise.js [--package models/fmnist-ofa/package] [--subnets 24] [--draws 3]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Materializer } from '../../runtime/materializer.js';
import { loadPackageDir } from '../../runtime/node/fs-source.js';
import { nchwcCalibration } from '../../runtime/node/nchwc.js';
import { nodeBackend } from '../../runtime/node/ort-node.js';
import type { SupernetPackage } from '../../runtime/package.js';
import { variance } from '../../runtime/profile.js';
import { mulberry32, shuffled } from '../../runtime/random.js';
import { ModelSession } from '../../runtime/session.js';
import { scoreSession, type TableRow } from './accuracy-table.js';
import { IMAGE_PIXELS, indicesOf, loadFmnist, type FmnistData } from './data.js';

const { values } = parseArgs({
  options: {
    package: { type: 'string', default: 'models/fmnist-ofa/package' },
    data: { type: 'string', default: '.cache/fmnist' },
    subnets: { type: 'string', default: '24' },
    draws: { type: 'string', default: '3' },
    seed: { type: 'string', default: '7' },
  },
});
const nSubnets = Number(values.subnets);
const nDraws = Math.max(2, Number(values.draws));
const seed = Number(values.seed);

/** The package with its calibration set replaced by `count` seeded train images (draw > 0). */
function withCalibrationDraw(pkg: SupernetPackage, data: FmnistData, draw: number): SupernetPackage {
  if (draw === 0) return pkg;
  const count = pkg.manifest.calibration.count;
  const picked = shuffled(mulberry32(seed * 1000 + draw), indicesOf(data, 'train')).slice(0, count);
  const images = new Uint8Array(count * IMAGE_PIXELS);
  picked.forEach((idx, k) => images.set(data.images.subarray(idx * IMAGE_PIXELS, (idx + 1) * IMAGE_PIXELS), k * IMAGE_PIXELS));
  return Object.create(pkg, { calibration: { value: images } }) as SupernetPackage;
}

const std = (xs: readonly number[]) => Math.sqrt(variance(xs));
const round = (v: number, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

const pkg = await loadPackageDir(values.package);
const data = loadFmnist(values.data);
const table = JSON.parse(readFileSync(join(values.package, 'accuracy-table.json'), 'utf8')) as { rows: TableRow[] };
const rows = shuffled(mulberry32(seed), table.rows).slice(0, nSubnets);
const val = indicesOf(data, 'val');
const halves = (() => {
  const p = shuffled(mulberry32(seed + 1), val);
  return [p.slice(0, p.length / 2), p.slice(p.length / 2)] as const;
})();

const materializers = Array.from({ length: nDraws }, (_, d) => new Materializer(withCalibrationDraw(pkg, data, d), nodeBackend, undefined, nchwcCalibration));
const per: { id: string; table: number; draws: { a: number; b: number; all: number }[] }[] = [];
for (const row of rows) {
  const draws: { a: number; b: number; all: number }[] = [];
  for (const m of materializers) {
    const r = await m.materialize(row.config, { calibration: { threads: 1 } });
    const s = await ModelSession.create(nodeBackend, r.bytes, { threads: 1 });
    const a = await scoreSession(s, data, halves[0]);
    const b = await scoreSession(s, data, halves[1]);
    await s.release();
    draws.push({ a, b, all: (a + b) / 2 });
  }
  if (Math.abs(draws[0]!.all - row.accuracy) > 1e-9) throw new Error(`${row.id}: draw 0 scores ${draws[0]!.all}, the table says ${row.accuracy}`);
  per.push({ id: row.id, table: row.accuracy, draws });
  process.stderr.write(`${per.length}/${rows.length} ${row.id} ${draws.map((d) => (d.all * 100).toFixed(2)).join(' ')}\n`);
}

// calibration draw: pooled within-subnet standard deviation of the full-split score across draws
const pooledVar = per.reduce((acc, p) => acc + variance(p.draws.map((d) => d.all)), 0) / per.length;
const sigmaCalibration = Math.sqrt(pooledVar) * 100;
// validation sample, per calibration draw: std over subnets of (A - B) / 2, averaged over draws
const sigmaValidation = (materializers.map((_, d) => std(per.map((p) => p.draws[d]!.a - p.draws[d]!.b)) / 2).reduce((a, b) => a + b, 0) / nDraws) * 100;
const floor = Math.hypot(sigmaCalibration, sigmaValidation);
const predictor = pkg.manifest.accuracy as { rmsePoints?: number } | undefined;
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'accuracy-table-noise',
      package: pkg.name,
      subnets: per.length,
      calibrationDraws: nDraws,
      validationHalves: halves[0].length,
      tableSpreadPoints: round(std(table.rows.map((r) => r.accuracy)) * 100),
      sigmaCalibrationPoints: round(sigmaCalibration),
      sigmaValidationPoints: round(sigmaValidation),
      rowNoiseFloorPoints: round(floor),
      predictorHoldoutRmsePoints: predictor?.rmsePoints === undefined ? null : round(predictor.rmsePoints),
      rows: per.map((p) => ({ id: p.id, table: p.table, draws: p.draws.map((d) => ({ a: round(d.a, 4), b: round(d.b, 4), all: round(d.all, 4) })) })),
    },
    null,
    1,
  )}\n`,
);
