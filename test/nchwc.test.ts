/**
 * The materializer's NCHWc form (runtime/node/nchwc.ts): on x86 it must be exactly what onnxruntime's
 * 'all' optimisation computes, for every kind of part, with and without channel padding, and a wrong
 * block size must be caught before any graph is served.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parseArch } from '../runtime/arch.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nchwcCalibration, nchwcSupport, verifyNchwc, verifyNchwcCalibration } from '../runtime/node/nchwc.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { calibrateBn } from '../runtime/calibrate.js';
import { buildSubnet, reorderFilter, SubnetWeights } from '../runtime/materialize.js';
import { ModelProto } from '../runtime/onnx/proto.js';
import { mulberry32 } from '../runtime/random.js';
import { generatePackage } from '../models/generate.js';
import { maxAbs, maxAbsDiff, repoPath, tempDir, TINY } from './helpers.js';

const x86 = process.arch === 'x64' || process.arch === 'ia32';

test('reorderFilter writes MLAS orders: OIHWBiBo for blocked inputs, OIHWBo otherwise, zero padding', () => {
  // O=3, I=2, 1x1, block 2 -> padded to 4 outputs, 2 inputs; w[o][i] = 10*o + i + 1
  const w = Float32Array.from([1, 2, 11, 12, 21, 22]);
  // blocked: [ob][ib][bi][bo]
  assert.deepEqual(Array.from(reorderFilter(w, [3, 2, 1, 1], 4, 2, 2, true)), [1, 11, 2, 12, 21, 0, 22, 0]);
  // plain input: [ob][i][bo]; same as above for 1x1 with Ip = I
  assert.deepEqual(Array.from(reorderFilter(w, [3, 2, 1, 1], 4, 2, 2, false)), [1, 11, 2, 12, 21, 0, 22, 0]);
  // depthwise 3x3 of 3 channels, block 2: [ob][1][kh][kw][bo]
  const dw = Float32Array.from({ length: 27 }, (_, i) => i + 1);
  const r = reorderFilter(dw, [3, 1, 3, 3], 4, 1, 2, false);
  assert.equal(r.length, 36);
  for (let o = 0; o < 4; o++) for (let s = 0; s < 9; s++) assert.equal(r[(Math.floor(o / 2) * 9 + s) * 2 + (o % 2)], o < 3 ? dw[o * 9 + s] : 0);
  // blocked 3x3 with padded inputs: O=2, I=3, block 2 -> Ip=4
  const w3 = Float32Array.from({ length: 2 * 3 * 9 }, (_, i) => i + 1);
  const b3 = reorderFilter(w3, [2, 3, 3, 3], 2, 4, 2, true);
  for (let o = 0; o < 2; o++)
    for (let i = 0; i < 4; i++)
      for (let s = 0; s < 9; s++) assert.equal(b3[((Math.floor(i / 2) * 9 + s) * 2 + (i % 2)) * 2 + o], i < 3 ? w3[(o * 3 + i) * 9 + s] : 0);
});

test('this onnxruntime reports its NCHWc block size (x86) or why it has none', async () => {
  const s = await nchwcSupport();
  if (x86) assert.ok(s.block === 8 || s.block === 16, `block ${s.block}: ${'reason' in s ? s.reason : ''}`);
  else assert.match((s as { reason: string }).reason, /x86/);
});

/** a tiny-like package whose widths are not multiples of any block (12, 20, 36, 44) and whose input has 3 channels */
function oddPackage(dir: string): string {
  const a = JSON.parse(readFileSync(join(TINY, '..', 'arch.json'), 'utf8'));
  Object.assign(a, { family: 'tiny-odd', channel_divisible: 4, final_expand: 36, feature_mix: 44 });
  Object.assign(a.input, { channels: 3, mean: [0.5, 0.4, 0.3], std: [0.25, 0.2, 0.3] });
  a.stem.out = 12;
  a.first_block.out = 12;
  a.stages[0].width = 12;
  a.stages[1].width = 20;
  return generatePackage(parseArch(a, 'tiny-odd'), join(dir, 'tiny-odd'));
}

test('NCHWc graphs load with optimisation off and answer as onnxruntime optimises the plain graph (fmnist-ofa, tiny, padded channels)', { skip: !x86 && 'NCHWc kernels are x86 only' }, async () => {
  const { block } = await nchwcSupport();
  assert.ok(block > 0);
  using dir = tempDir();
  for (const path of [repoPath('models', 'fmnist-ofa', 'package'), TINY, oddPackage(dir.path)]) {
    const pkg = await loadPackageDir(path);
    const w = new SubnetWeights(pkg);
    const rand = mulberry32(5);
    const { channels: c, height: h, width: wd } = pkg.arch.input;
    const x = Float32Array.from({ length: 2 * c * h * wd }, () => rand());
    const dims = [2, c, h, wd];
    for (const cfg of [pkg.space.min(), pkg.space.max(), ...Array.from({ length: 3 }, () => pkg.space.sample(rand))]) {
      const plain = await ort.InferenceSession.create(buildSubnet(w, cfg, { mode: 'fold' }).bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
      const bytes = buildSubnet(w, cfg, { mode: 'fold', nchwcBlock: block }).bytes;
      const model = ModelProto.toObject(ModelProto.decode(bytes)) as { graph: { node: { domain?: string; op_type: string }[] } };
      const convs = model.graph.node.filter((n) => n.op_type === 'Conv');
      assert.ok(convs.length > 0 && convs.every((n) => n.domain === 'com.microsoft.nchwc'), 'every convolution is an NchwcConv');
      const blocked = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
      const feed = (s: ort.InferenceSession) => s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, dims) });
      const a = (await feed(plain))[plain.outputNames[0]!]!;
      const b = (await feed(blocked))[blocked.outputNames[0]!]!;
      assert.deepEqual(b.dims, a.dims);
      const d = maxAbsDiff(a.data as Float32Array, b.data as Float32Array);
      assert.ok(d <= 1e-4 * maxAbs(a.data as Float32Array), `${pkg.name} ${pkg.space.id(cfg)}: differs by ${d}`);
      await plain.release();
      await blocked.release();
    }
    assert.equal(await verifyNchwc(w, block), null);
  }
});

test('a package whose NCHWc graphs do not match onnxruntime (wrong block size) is refused with the reason', { skip: !x86 && 'NCHWc kernels are x86 only' }, async () => {
  const { block } = await nchwcSupport();
  const w = new SubnetWeights(await loadPackageDir(TINY));
  const reason = await verifyNchwc(w, block === 8 ? 16 : 8);
  assert.ok(reason, 'refused');
  assert.match(reason!, /^subnet r\d+/);
  assert.throws(() => buildSubnet(w, w.pkg.space.min(), { mode: 'unfold', nchwcBlock: block }), /folded or calibrating BatchNorm/);
  const calib = await verifyNchwcCalibration(w, block === 8 ? 16 : 8);
  assert.ok(calib, 'calibration graph refused too');
  assert.match(calib!, /^subnet r\d+/);
});

test('NCHWc calibration graphs give the batch statistics of the plain calibration graph (fmnist-ofa, tiny, padded channels)', { skip: !x86 && 'NCHWc kernels are x86 only' }, async () => {
  const { block } = await nchwcSupport();
  using dir = tempDir();
  for (const path of [repoPath('models', 'fmnist-ofa', 'package'), TINY, oddPackage(dir.path)]) {
    const pkg = await loadPackageDir(path);
    const w = new SubnetWeights(pkg);
    const rand = mulberry32(9);
    const c = pkg.manifest.calibration;
    const opts = { images: Math.min(c.count, 2 * c.batch, 300), batch: Math.min(c.batch, 150) }; // a short last batch too
    for (const cfg of [pkg.space.min(), pkg.space.max(), pkg.space.sample(rand), pkg.space.sample(rand)]) {
      const bytes = buildSubnet(w, cfg, { mode: 'calibrate', nchwcBlock: block }).bytes;
      const model = ModelProto.toObject(ModelProto.decode(bytes)) as { graph: { node: { domain?: string; op_type: string }[] } };
      assert.ok(!model.graph.node.some((n) => n.op_type === 'BatchNormalization'), 'no BatchNormalization left to reorder around');
      const plain = await calibrateBn(w, cfg, nodeBackend, opts);
      const blocked = await calibrateBn(w, cfg, nodeBackend, { ...opts, nchwcBlock: block });
      assert.deepEqual([...blocked.keys()], [...plain.keys()]);
      for (const [bn, s] of plain) {
        const o = blocked.get(bn)!;
        assert.equal(o.mean.length, s.mean.length, bn);
        for (let i = 0; i < s.mean.length; i++) {
          const sd = Math.sqrt(s.var[i]!);
          assert.ok(Math.abs(o.mean[i]! - s.mean[i]!) <= 1e-4 * sd + 1e-7, `${pkg.name} ${pkg.space.id(cfg)} ${bn}[${i}] mean ${o.mean[i]} vs ${s.mean[i]}`);
          assert.ok(Math.abs(o.var[i]! - s.var[i]!) <= 1e-4 * s.var[i]! + 1e-9, `${pkg.name} ${pkg.space.id(cfg)} ${bn}[${i}] var ${o.var[i]} vs ${s.var[i]}`);
        }
      }
    }
    assert.equal(await verifyNchwcCalibration(w, block), null);
    assert.deepEqual(await nchwcCalibration(w), { nchwcBlock: block });
  }
});
