/**
 * The depthwise-as-MatMul lowering (runtime/materialize.ts, used by the browser agent on wasm): the
 * lowered graph computes what the plain one does, served, calibrated and as profiler parts, on
 * onnxruntime-node and onnxruntime-web's wasm; layers over the limits stay Conv.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { calibrateBn } from '../runtime/calibrate.js';
import { buildSubnet, SubnetWeights, WASM_DEPTHWISE_MATMUL, type DepthwiseMatMul } from '../runtime/materialize.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { buildPartGraph, enumerateParts } from '../runtime/parts.js';
import { ModelSession, type Backend } from '../runtime/session.js';
import { webBackend } from '../runtime/web/ort-web.js';
import { maxAbs, maxAbsDiff, TINY } from './helpers.js';
import { FMNIST } from './browser-fixtures.js';

async function run(backend: Backend, bytes: Uint8Array, input: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await ModelSession.create(backend, bytes, { threads: 1 });
  try {
    return Float32Array.from((await s.runFirst(input, dims)).data);
  } finally {
    await s.release();
  }
}

const inputOf = (n: number) => Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000);
const countOps = (bytes: Uint8Array, op: string) => Buffer.from(bytes).toString('latin1').split(op).length - 1;

for (const [name, dir] of [
  ['tiny', TINY],
  ['fmnist-ofa', FMNIST],
] as const) {
  test(`${name}: lowered subnets give the plain graph's logits (batch 1 and 3) on onnxruntime-node and -web`, async () => {
    const pkg = await loadPackageDir(dir);
    const w = new SubnetWeights(pkg);
    const sp = pkg.space;
    const mid = sp.uniform(sp.ks_list[sp.ks_list.length - 1]!, sp.expand_list[0]!, sp.depth_list[sp.depth_list.length - 1]!, sp.image_size_list[0]!);
    for (const cfg of [sp.min(), mid, sp.max()]) {
      for (const batch of [1, 3]) {
        const dims = [batch, ...pkg.manifest.input.shape];
        const x = inputOf(dims.reduce((a, b) => a * b, 1));
        const plain = buildSubnet(w, cfg, { mode: 'fold' }).bytes;
        const lowered = buildSubnet(w, cfg, { mode: 'fold', depthwiseMatMul: { maxPixels: 10_000, maxLayerBytes: 1 << 30 } }).bytes;
        assert.ok(countOps(lowered, 'MatMul') > 0, 'some depthwise convolution was lowered');
        const ref = await run(nodeBackend, plain, x, dims);
        const scale = Math.max(1, maxAbs(ref));
        const dn = maxAbsDiff(await run(nodeBackend, lowered, x, dims), ref);
        const dw = maxAbsDiff(await run(webBackend, lowered, x, dims), ref);
        assert.ok(dn <= 1e-5 * scale && dw <= 1e-5 * scale, `${sp.id(cfg)} batch ${batch}: node Δ ${dn}, web Δ ${dw}`);
      }
    }
  });
}

test('the limits hold: maps over maxPixels and layers over maxLayerBytes stay Conv; none at all without the option', async () => {
  const pkg = await loadPackageDir(FMNIST);
  const w = new SubnetWeights(pkg);
  const cfg = pkg.space.max();
  const convs = (o?: DepthwiseMatMul) => countOps(buildSubnet(w, cfg, { mode: 'fold', ...(o ? { depthwiseMatMul: o } : {}) }).bytes, 'MatMul');
  assert.equal(convs(), 0);
  assert.equal(convs({ maxPixels: 0, maxLayerBytes: 1 << 30 }), 0);
  assert.equal(convs({ maxPixels: 10_000, maxLayerBytes: 0 }), 0);
  const small = convs({ maxPixels: 16, maxLayerBytes: 1 << 30 });
  const some = convs(WASM_DEPTHWISE_MATMUL);
  const all = convs({ maxPixels: 10_000, maxLayerBytes: 1 << 30 });
  assert.ok(small > 0 && small < some && some < all, `lowered layers: ≤16 px ${small}, default ${some}, all ${all}`);
});

test('BN calibration on lowered graphs gives the plain graphs\' statistics', async () => {
  const pkg = await loadPackageDir(FMNIST);
  const w = new SubnetWeights(pkg);
  const cfg = pkg.space.max();
  const a = await calibrateBn(w, cfg, nodeBackend, { images: 64, threads: 1 });
  const b = await calibrateBn(w, cfg, nodeBackend, { images: 64, threads: 1, depthwiseMatMul: WASM_DEPTHWISE_MATMUL });
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [k, s] of a) {
    const t = b.get(k)!;
    assert.ok(maxAbsDiff(s.mean, t.mean) <= 1e-4 * Math.max(1, maxAbs(s.mean)), `${k} mean`);
    assert.ok(maxAbsDiff(s.var, t.var) <= 1e-4 * Math.max(1, maxAbs(s.var)), `${k} var`);
  }
});

test('profiler part graphs are lowered as the served subnet is (a block knows its input side)', async () => {
  const pkg = await loadPackageDir(FMNIST);
  const w = new SubnetWeights(pkg);
  const { parts } = enumerateParts(pkg.arch, [pkg.space.image_size_list[pkg.space.image_size_list.length - 1]!]);
  const small = parts.find((p) => p.kind === 'block' && p.inDims[2]! <= 7 && p.ks === 7)!;
  assert.ok(small, 'a block on a small map');
  const plain = buildPartGraph(w, small);
  const lowered = buildPartGraph(w, small, { depthwiseMatMul: WASM_DEPTHWISE_MATMUL });
  assert.equal(countOps(plain, 'MatMul'), 0);
  assert.ok(countOps(lowered, 'MatMul') > 0);
  const x = inputOf(small.inDims.reduce((a, b) => a * b, 1));
  const d = maxAbsDiff(await run(nodeBackend, lowered, x, small.inDims), await run(nodeBackend, plain, x, small.inDims));
  assert.ok(d <= 1e-5, `part Δ ${d}`);
});
