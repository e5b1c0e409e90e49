/** BN statistics on disk: what is read back is the floats that were written (not their bytes as numbers). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { decodeStats, encodeStats, type BnStatsMap } from '../runtime/calibrate.js';
import { diskStatsStore } from '../runtime/node/stats-store.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { Materializer } from '../runtime/materializer.js';
import { FAST, TINY, tempDir } from './helpers.js';

function sample(): BnStatsMap {
  // an odd offset into a shared buffer, as calibration results can be views
  const buf = new Float32Array(11).map((_, i) => (i - 3) * 0.37 + 1e-3);
  return new Map([
    ['stem.bn', { mean: buf.subarray(1, 6), var: Float32Array.from([0.5, 1.25, 3e-5, 7, 0.1]) }],
    ['blocks.0.bn', { mean: Float32Array.from([-2.5]), var: Float32Array.from([4]) }],
  ]);
}

function assertSameStats(got: BnStatsMap | undefined, want: BnStatsMap): void {
  assert.ok(got);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, v] of want) {
    const g: { mean: Float32Array; var: Float32Array } = got.get(k)!;
    assert.ok(g.mean instanceof Float32Array && g.var instanceof Float32Array, `${k}: Float32Array`);
    assert.deepEqual(Array.from(g.mean), Array.from(v.mean), `${k} mean`);
    assert.deepEqual(Array.from(g.var), Array.from(v.var), `${k} var`);
  }
}

test('encodeStats/decodeStats round-trip float values and lengths exactly', () => {
  const s = sample();
  assertSameStats(decodeStats(encodeStats(s)), s);
});

test('statistics written by the earlier encoder (a packed Float32Array) decode to the same floats', () => {
  const s = sample();
  const old: Record<string, [Float32Array, Float32Array]> = {};
  for (const [k, v] of s) old[k] = [v.mean, v.var];
  assertSameStats(decodeStats(pack(old)), s);
});

test('diskStatsStore: a fresh store over the same directory reads back the floats that were stored', async () => {
  using dir = tempDir();
  const s = sample();
  await diskStatsStore(dir.path).set('abc/r28-d2/n64', s);
  assertSameStats(await diskStatsStore(dir.path).get('abc/r28-d2/n64'), s);
});

test('diskStatsStore: a damaged entry is a miss (recomputed), never garbage statistics', async () => {
  using dir = tempDir();
  const store = diskStatsStore(dir.path);
  await store.set('k', sample());
  const [name] = readdirSync(dir.path);
  writeFileSync(join(dir.path, name!), pack({ 'stem.bn': [new Uint8Array(7), new Uint8Array(8)] }));
  assert.equal(await diskStatsStore(dir.path).get('k'), undefined);
});

test('a subnet materialized from statistics cached on disk is byte-identical to the freshly calibrated one', async () => {
  using dir = tempDir();
  const pkg = await loadPackageDir(TINY);
  const cfg = pkg.space.max();
  const first = await new Materializer(pkg, nodeBackend, diskStatsStore(dir.path)).materialize(cfg, FAST);
  assert.equal(first.statsCached, false);
  const again = await new Materializer(pkg, nodeBackend, diskStatsStore(dir.path)).materialize(cfg, FAST);
  assert.equal(again.statsCached, true, 'second materializer found the statistics on disk');
  assert.ok(Buffer.from(again.bytes).equals(Buffer.from(first.bytes)), "same ONNX bytes");
});
