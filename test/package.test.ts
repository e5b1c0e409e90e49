import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync, rmSync, existsSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { isNestswapError } from '../runtime/errors.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { repoPath, tempDir, TINY } from './helpers.js';

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

test('a malformed manifest is ERR_PACKAGE_MANIFEST', async () => {
  using tmp = tempDir();
  const dir = copy(tmp.path);
  writeFileSync(join(dir, 'manifest.json'), '{"format": "nestswap.package/1", ');
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_MANIFEST');
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ format: 'something-else' }));
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_MANIFEST');
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
});

test('a manifest whose architecture does not match the weights is rejected at load', async () => {
  using tmp = tempDir();
  const dir = copy(tmp.path);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { arch: { stages: { width: number }[] } };
  manifest.arch.stages[1]!.width = 24;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  assert.equal(await loadCode(dir), 'ERR_PACKAGE_TENSOR');
});
