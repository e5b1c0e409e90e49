/**
 * The committed, trained fmnist-ofa package: PyTorch golden outputs reproduced by the materializer,
 * and its accuracy predictor agreeing with its measured accuracy table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { Materializer } from '../runtime/materializer.js';
import { ModelSession } from '../runtime/session.js';
import { ArchEncoder, type SubnetConfig } from '../runtime/space.js';
import { predictorToOnnx } from '../models/predictor-onnx.js';
import { mulberry32 } from '../runtime/random.js';
import { maxAbs, maxAbsDiff, repoPath } from './helpers.js';

const dir = repoPath('models', 'fmnist-ofa', 'package');

interface Golden {
  inputs: { shape: number[]; scale: number; data: number[] };
  subnets: { name: string; config: SubnetConfig; stored: number[][]; calibrated: number[][] }[];
}

test('fmnist-ofa is trained, has an accuracy predictor and a table of >= 1,002 measured subnets', async () => {
  const pkg = await loadPackageDir(dir);
  assert.equal(pkg.manifest.trained, true);
  assert.ok(pkg.fileByRole('accuracy-predictor'));
  const table = JSON.parse(new TextDecoder().decode(pkg.fileByRole('accuracy-table'))) as { rows: { id: string }[] };
  assert.ok(table.rows.length >= 1002);
  const ids = new Set(table.rows.map((r) => r.id));
  assert.ok(ids.has(pkg.space.id(pkg.space.min())) && ids.has(pkg.space.id(pkg.space.max())));
  assert.ok(pkg.space.size() >= 1e12);
});

test('fmnist-ofa: materialized subnets reproduce the PyTorch golden logits within 1e-4', async () => {
  const pkg = await loadPackageDir(dir);
  const golden = JSON.parse(new TextDecoder().decode(pkg.fileByRole('golden'))) as Golden;
  assert.ok(golden.subnets.length >= 5);
  const input = Float32Array.from(golden.inputs.data, (v) => v * golden.inputs.scale);
  const m = new Materializer(pkg, nodeBackend);
  for (const g of golden.subnets)
    for (const kind of ['stored', 'calibrated'] as const) {
      const r = await m.materialize(g.config, { calibrate: kind === 'calibrated' });
      const s = await ModelSession.create(nodeBackend, r.bytes);
      const out = (await s.runFirst(input, golden.inputs.shape)).data;
      await s.release();
      const exp = g[kind].flat();
      const d = maxAbsDiff(out, exp);
      assert.ok(d <= 1e-4 * Math.max(1, maxAbs(exp)), `${g.name} ${kind}: ${d}`);
    }
});

test('fmnist-ofa: the accuracy predictor agrees with the held-out table rows within the RMSE it reports', async () => {
  const pkg = await loadPackageDir(dir);
  const reported = (pkg.manifest.accuracy as { rmsePoints: number; holdout: number }).rmsePoints;
  const weights = JSON.parse(readFileSync(repoPath('models', 'fmnist-ofa', 'predictor-holdout.json'), 'utf8')) as { holdout_ids: string[] };
  const table = JSON.parse(new TextDecoder().decode(pkg.fileByRole('accuracy-table'))) as { rows: { id: string; config: SubnetConfig; accuracy: number }[] };
  const held = new Set(weights.holdout_ids);
  const rows = table.rows.filter((r) => held.has(r.id));
  assert.ok(rows.length >= 200);
  const enc = new ArchEncoder(pkg.space);
  const s = await ModelSession.create(nodeBackend, pkg.fileByRole('accuracy-predictor')!);
  const out = (await s.runFirst(enc.encodeBatch(rows.map((r) => r.config)), [rows.length, enc.nDim])).data;
  await s.release();
  const rmse = Math.sqrt(rows.reduce((a, r, i) => a + (out[i]! - r.accuracy) ** 2, 0) / rows.length) * 100;
  assert.ok(Math.abs(rmse - reported) < 1e-3, `RMSE ${rmse} vs reported ${reported}`);
});

test('a quadratic accuracy predictor becomes an ONNX model computing x\'Wx + w.x + b', async () => {
  const rng = mulberry32(5);
  const D = 7;
  const W = Array.from({ length: D }, () => Array.from({ length: D }, () => rng() - 0.5));
  const w = Array.from({ length: D }, () => rng() - 0.5);
  const q = { format: 'nestswap.quadratic/1' as const, n_dim: D, W, w, b: 0.9, holdout_ids: [] };
  const rows = Array.from({ length: 5 }, () => Array.from({ length: D }, () => (rng() < 0.4 ? 1 : 0)));
  const s = await ModelSession.create(nodeBackend, predictorToOnnx(q));
  const out = (await s.runFirst(Float32Array.from(rows.flat()), [rows.length, D])).data;
  await s.release();
  rows.forEach((x, n) => {
    let want = q.b;
    for (let i = 0; i < D; i++) {
      want += w[i]! * x[i]!;
      for (let j = 0; j < D; j++) want += x[i]! * W[i]![j]! * x[j]!;
    }
    assert.ok(Math.abs(out[n]! - want) < 1e-5, `row ${n}: ${out[n]} vs ${want}`);
  });
  assert.throws(() => predictorToOnnx({ ...q, w: w.slice(1) }), /W must be 7x7 and w 7 long/);
});
