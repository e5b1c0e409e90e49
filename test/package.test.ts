import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync, rmSync, existsSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { isNestswapError } from '../runtime/errors.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import * as ort from 'onnxruntime-node';
import { nchwcSupport } from '../runtime/node/nchwc.js';
import { ModelProto } from '../runtime/onnx/proto.js';
import { maxAbs, maxAbsDiff, repoPath, tempDir, TINY } from './helpers.js';

const src = TINY;

async function loadCode(dir: string): Promise<string | undefined> {
  try {
    await loadPackageDir(dir);
  } catch (e) {
    return isNestswapError(e) ? e.code : `unexpected: ${String(e)}`;
  }
  return undefined;
}

function copy(tmp: string): string {
  const dir = join(tmp, 'pkg');
  cpSync(src, dir, { recursive: true });
  return dir;
}

test('a good package loads with every tensor and its calibration set', async () => {
  const pkg = await loadPackageDir(src);
  assert.equal(pkg.manifest.format, 'nestswap.package/1');
  assert.ok(pkg.tensors.size > 100);
  assert.equal(pkg.calibration.length, pkg.manifest.calibration.count * 144);
});

test('a flipped byte in the weights fails the digest check', async () => {
  using tmp = tempDir();
  const dir = copy(tmp.path);
  const f = join(dir, 'weights.bin');
  const b = readFileSync(f);
  b[1000] = b[1000]! ^ 0xff;
  writeFileSync(f, b);
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_DIGEST');
});

test('a truncated file fails the size check', async () => {
  using tmp = tempDir();
  const dir = copy(tmp.path);
  truncateSync(join(dir, 'calibration.u8'), 100);
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_SIZE');
});

test('a missing file is reported', async () => {
  using tmp = tempDir();
  const dir = copy(tmp.path);
  rmSync(join(dir, 'golden.json'));
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_MISSING');
});

test('no manifest at all is ERR_PACKAGE_MISSING', async () => {
  using tmp = tempDir();
  assert.equal(await loadCode(tmp.path), 'ERR_PACKAGE_MISSING');
});

test('a malformed manifest is ERR_PACKAGE_MANIFEST; one in a format this nestswap does not read is ERR_FORMAT_UNSUPPORTED', async () => {
  using tmp = tempDir();
  const dir = copy(tmp.path);
  writeFileSync(join(dir, 'manifest.json'), '{"format": "nestswap.package/1", ');
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_MANIFEST');
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ format: 'nestswap.package/1', name: 'x' }));
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_MANIFEST');
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ format: 'something-else' }));
  assert.equal(await loadCode(dir), 'ERR_FORMAT_UNSUPPORTED');
});

test('a manifest whose arch does not match the weights fails on the tensor index', async () => {
  using tmp = tempDir();
  const dir = copy(tmp.path);
  const index = JSON.parse(readFileSync(join(dir, 'weights.json'), 'utf8')) as { tensors: Record<string, { shape: number[] }> };
  index.tensors['stem.conv.weight']!.shape = [9999, 1, 3, 3];
  const bytes = Buffer.from(JSON.stringify(index));
  writeFileSync(join(dir, 'weights.json'), bytes);
  // keep the manifest consistent so the tensor check (not the digest) is what fails
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files: { path: string; bytes: number; sha256: string }[] };
  const entry = manifest.files.find((f) => f.path === 'weights.json')!;
  entry.bytes = bytes.length;
  entry.sha256 = (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_TENSOR');
});

test('materialize CLI: bad config exits non-zero with a code and writes nothing', () => {
  using tmp = tempDir();
  const out = join(tmp.path, 'x.onnx');
  const r = spawnSync(process.execPath, [repoPath('bin', 'nestswap.js'), 'materialize', '--supernet', src, '--subnet', '{"ks":[3],"e":[3],"d":[2,2],"image_size":12}', '--out', out], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /ERR_CONFIG_INVALID/);
  assert.equal(existsSync(out), false);
});

test('materialize CLI: unknown family exits non-zero with ERR_PACKAGE_MISSING', () => {
  const r = spawnSync(process.execPath, [repoPath('bin', 'nestswap.js'), 'materialize', '--supernet', 'no-such-family', '--subnet', '{}', '--out', '/tmp/never.onnx'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /ERR_PACKAGE_MISSING/);
});

test('materialize CLI --json reports id, bytes, params, MACs and writes a model', () => {
  using tmp = tempDir();
  const out = join(tmp.path, 'm.onnx');
  const cfg = JSON.stringify({ ks: Array(8).fill(5), e: Array(8).fill(4), d: [3, 2], image_size: 12 });
  const r = spawnSync(process.execPath, [repoPath('bin', 'nestswap.js'), 'materialize', '--supernet', src, '--subnet', cfg, '--out', out, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, unknown>;
  for (const k of ['out', 'subnetId', 'bytes', 'params', 'macs', 'calibrated', 'wallMs']) assert.ok(k in j, k);
  assert.equal(j.bytes, readFileSync(out).length);
  assert.equal(j.calibrated, true);
  assert.equal(j.layout, 'plain');
});

test('materialize CLI --nchwc writes the NCHWc layout where onnxruntime has it, else fails with the reason and writes nothing', async () => {
  using tmp = tempDir();
  const out = join(tmp.path, 'm.onnx');
  const cfg = JSON.stringify({ ks: Array(8).fill(5), e: Array(8).fill(4), d: [3, 2], image_size: 12 });
  const r = spawnSync(process.execPath, [repoPath('bin', 'nestswap.js'), 'materialize', '--supernet', src, '--subnet', cfg, '--out', out, '--nchwc', '--json'], { encoding: 'utf8' });
  const { block } = await nchwcSupport();
  if (!block) {
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /ERR_SESSION.*--nchwc/s);
    assert.ok(!existsSync(out));
    return;
  }
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { layout: string }).layout, `nchwc${block}`);
  const bytes = readFileSync(out);
  const model = ModelProto.toObject(ModelProto.decode(bytes)) as { graph: { node: { domain?: string; op_type: string }[] } };
  assert.ok(model.graph.node.some((n) => n.domain === 'com.microsoft.nchwc' && n.op_type === 'Conv'));
  // it runs unoptimised and answers as the portable graph does under onnxruntime's optimisation
  const plainOut = join(tmp.path, 'p.onnx');
  assert.equal(spawnSync(process.execPath, [repoPath('bin', 'nestswap.js'), 'materialize', '--supernet', src, '--subnet', cfg, '--out', plainOut], { encoding: 'utf8' }).status, 0);
  const x = Float32Array.from({ length: 12 * 12 }, (_, i) => (i % 13) / 13);
  const logits = async (file: string, level: 'all' | 'disabled') => {
    const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: level });
    const o = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, [1, 1, 12, 12]) });
    await s.release();
    return o[s.outputNames[0]!]!.data as Float32Array;
  };
  const a = await logits(plainOut, 'all');
  const b = await logits(out, 'disabled');
  assert.ok(maxAbsDiff(a, b) <= 1e-4 * maxAbs(a), `differs by ${maxAbsDiff(a, b)}`);
  const bad = spawnSync(process.execPath, [repoPath('bin', 'nestswap.js'), 'materialize', '--supernet', src, '--subnet', cfg, '--out', join(tmp.path, 'u.onnx'), '--nchwc', '--unfolded'], { encoding: 'utf8' });
  assert.equal(bad.status, 2, bad.stderr);
  assert.ok(!existsSync(join(tmp.path, 'u.onnx')));
});

test('a manifest whose architecture does not match the weights is rejected at load', async () => {
  using tmp = tempDir();
  const dir = copy(tmp.path);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { arch: { stages: { width: number }[] } };
  manifest.arch.stages[1]!.width = 24;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_TENSOR');
});
