import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { webBackend } from '../runtime/web/ort-web.js';
import { Materializer } from '../runtime/materializer.js';
import { ModelSession } from '../runtime/session.js';
import type { SubnetConfig } from '../runtime/space.js';
import { maxAbs, maxAbsDiff, TINY } from './helpers.js';

interface Golden {
  inputs: { shape: number[]; scale: number; data: number[] };
  subnets: { name: string; config: SubnetConfig; stored: number[][]; calibrated: number[][] }[];
}

const dir = TINY;
const golden = JSON.parse(readFileSync(`${dir}/golden.json`, 'utf8')) as Golden;
const input = Float32Array.from(golden.inputs.data, (v) => v * golden.inputs.scale);
const dims = golden.inputs.shape;

async function logits(bytes: Uint8Array, backend = nodeBackend): Promise<Float32Array> {
  const s = await ModelSession.create(backend, bytes);
  try {
    return (await s.runFirst(input, dims)).data;
  } finally {
    await s.release();
  }
}

function within(actual: Float32Array, expected: number[][], what: string): void {
  const flat = expected.flat();
  const tol = 1e-4 * Math.max(1, maxAbs(flat));
  const d = maxAbsDiff(actual, flat);
  assert.ok(d <= tol, `${what}: max |diff| ${d} > ${tol}`);
}

test('golden subnets include the smallest and the largest, and at least five in all', async () => {
  const pkg = await loadPackageDir(dir);
  const ids = golden.subnets.map((g) => pkg.space.id(pkg.space.parse(g.config)));
  assert.ok(ids.length >= 5);
  assert.ok(ids.includes(pkg.space.id(pkg.space.min())));
  assert.ok(ids.includes(pkg.space.id(pkg.space.max())));
});

test('materialized subnets with stored BN statistics equal the PyTorch reference within 1e-4', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  for (const g of golden.subnets) {
    const out = await m.materialize(g.config, { calibrate: false });
    within(await logits(out.bytes), g.stored, g.name);
  }
});

test('materialized subnets with recalibrated BN statistics equal the PyTorch reference within 1e-4', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  for (const g of golden.subnets) {
    const out = await m.materialize(g.config, { calibrate: true });
    assert.equal(out.calibrated, true);
    within(await logits(out.bytes), g.calibrated, g.name);
  }
});

test('folded and unfolded BatchNorm graphs agree', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  for (const g of golden.subnets.slice(0, 3)) {
    const folded = await logits((await m.materialize(g.config)).bytes);
    const unfolded = await logits((await m.materialize(g.config, { bn: 'unfold' })).bytes);
    assert.ok(maxAbsDiff(folded, unfolded) <= 1e-4 * Math.max(1, maxAbs(folded)));
  }
});

test('onnxruntime-node and onnxruntime-web give the same outputs for the same ONNX', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  for (const g of golden.subnets) {
    const bytes = (await m.materialize(g.config)).bytes;
    const a = await logits(bytes, nodeBackend);
    const b = await logits(bytes, webBackend);
    assert.ok(maxAbsDiff(a, b) <= 1e-4 * Math.max(1, maxAbs(a)), g.name);
  }
});

test('calibrated statistics are cached by subnet id', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  const cfg = golden.subnets[2]!.config;
  const first = await m.materialize(cfg);
  const second = await m.materialize(cfg);
  assert.equal(first.statsCached, false);
  assert.equal(second.statsCached, true);
  assert.deepEqual(second.bytes, first.bytes);
});
