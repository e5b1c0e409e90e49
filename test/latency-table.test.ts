import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseArch, scaleMbv3Arch } from '../runtime/arch.js';
import { isNestswapError, type ErrorCode } from '../runtime/errors.js';
import { flatLatencyModel, lookupLatencyMs, parseLatencyTable, serializeLatencyTable, subnetLatencyKeys } from '../runtime/latency-table.js';
import { mulberry32 } from '../runtime/random.js';
import { evaluateFlat } from '../runtime/search/efficiency.js';
import { Space, type SubnetConfig } from '../runtime/space.js';
import { readLatencyTableDir, writeLatencyTableDir } from '../agent/search-inputs.js';

const root = new URL('../../', import.meta.url);
const fixture = (p: string) => new URL(`test/fixtures/ofa-reference/${p}`, root).pathname;
const w10 = parseArch(JSON.parse(readFileSync(new URL('models/ofa-mbv3-w1.0/arch.json', root), 'utf8')));
const w12 = scaleMbv3Arch(w10, 1.2, 'ofa-mbv3-w1.2');
const note10 = await readLatencyTableDir(fixture('note10'));
const specialized = JSON.parse(readFileSync(fixture('ofa_specialized_archs.json'), 'utf8')) as { name: string; width_mult: number; arch: SubnetConfig }[];
const invalid = (code: ErrorCode = 'ERR_LATENCY_TABLE_INVALID') => (e: unknown) => isNestswapError(e, code);

test('summing the Note10 tables over note10_lat-30ms_top1-78.4_finetune-75 gives 29.97 ms', () => {
  const net = specialized.find((s) => s.name === 'note10_lat-30ms_top1-78.4_finetune-75')!;
  assert.equal(lookupLatencyMs(note10, w12, net.arch).toFixed(2), '29.97');
});

test('every key of every w1.2 specialized net at a tabled resolution is in the Note10 tables', () => {
  const nets = specialized.filter((s) => s.width_mult === 1.2 && note10.has(s.arch.image_size));
  assert.ok(nets.length > 0);
  for (const s of nets) for (const key of subnetLatencyKeys(w12, s.arch)) assert.ok(note10.get(s.arch.image_size)!.entries.has(key), `${s.name}: ${key}`);
});

test('every key of 200 random w1.2 subnets is in the Note10 tables', () => {
  const space = new Space({ ...Space.fromArch(w12).toJSON(), image_size_list: [...note10.keys()] });
  const rng = mulberry32(7);
  for (let i = 0; i < 200; i++) assert.doesNotThrow(() => lookupLatencyMs(note10, w12, space.sample(rng)));
});

test('the first key is the stem and the last four are the head, as OFA names them', () => {
  const keys = subnetLatencyKeys(w12, Space.fromArch(w12).uniform(3, 3, 2, 224));
  assert.equal(keys[0], 'Conv-input:224x224x3-output:112x112x24');
  assert.equal(keys[1], 'expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0');
  assert.deepEqual(keys.slice(-4), [
    'Conv_1-input:7x7x192-output:7x7x1152',
    'AvgPool2D-input:7x7x1152-output:1x1x1152',
    'Conv_2-input:1x1x1152-output:1x1x1536',
    'Logits-input:1x1x1536-output:1000',
  ]);
});

test('the flat table gives the same latency as the key sum', () => {
  const flat = flatLatencyModel(note10, w12);
  const space = new Space({ ...Space.fromArch(w12).toJSON(), image_size_list: flat.resolutions as number[] });
  const rng = mulberry32(3);
  for (let i = 0; i < 100; i++) {
    const c = space.sample(rng);
    assert.ok(Math.abs(evaluateFlat(flat, c) - lookupLatencyMs(note10, w12, c)) < 1e-9);
  }
});

test('a missing key is ERR_LATENCY_TABLE_INVALID naming the key', () => {
  const t = note10.get(224)!;
  const entries = new Map(t.entries);
  const key = 'Logits-input:1x1x1536-output:1000';
  entries.delete(key);
  const tables = new Map([[224, { resolution: 224, entries }]]);
  assert.throws(
    () => lookupLatencyMs(tables, w12, Space.fromArch(w12).uniform(3, 3, 2, 224)),
    (e: unknown) => isNestswapError(e, 'ERR_LATENCY_TABLE_INVALID') && e.message.includes(key) && e.details?.key === key,
  );
});

test('a w1.0 arch is rejected by the w1.2 tables with ERR_LATENCY_TABLE_INVALID', () => {
  assert.throws(() => flatLatencyModel(note10, w10), invalid());
});

test('a resolution without a table is ERR_LATENCY_TABLE_INVALID', () => {
  assert.throws(() => lookupLatencyMs(note10, w12, Space.fromArch(w12).uniform(3, 3, 2, 128)), invalid());
});

test('text that is not YAML is ERR_LATENCY_TABLE_INVALID', () => {
  assert.throws(() => parseLatencyTable('a: [1, 2\n  b: {', 224), invalid());
});

test('a YAML list instead of a mapping is ERR_LATENCY_TABLE_INVALID', () => {
  assert.throws(() => parseLatencyTable('- 1\n- 2\n', 224), invalid());
});

test('an entry without a numeric mean is ERR_LATENCY_TABLE_INVALID', () => {
  assert.throws(() => parseLatencyTable('Conv-input:224x224x3-output:112x112x24:\n  count: 3\n  mean: fast\n  var: 0\n', 224), invalid());
});

test('a negative mean is ERR_LATENCY_TABLE_INVALID', () => {
  assert.throws(() => parseLatencyTable('Conv-input:224x224x3-output:112x112x24:\n  count: 3\n  mean: -1\n', 224), invalid());
});

test('a key that is not an OFA part key is ERR_LATENCY_TABLE_INVALID', () => {
  assert.throws(() => parseLatencyTable('hello:\n  count: 3\n  mean: 1\n', 224), invalid());
});

test('an empty table is ERR_LATENCY_TABLE_INVALID', () => {
  assert.throws(() => parseLatencyTable('{}\n', 224), invalid());
});

test('entries with var (our format) and std (OFA published) both read', () => {
  const t = parseLatencyTable('Conv-input:8x8x3-output:4x4x8:\n  count: 2\n  mean: 0.5\n  var: 0.01\nLogits-input:1x1x8-output:10:\n  count: 2\n  mean: 0.1\n  std: 0.2\n', 8);
  assert.equal(t.entries.get('Conv-input:8x8x3-output:4x4x8')!.var, 0.01);
  assert.equal(t.entries.get('Logits-input:1x1x8-output:10')!.std, 0.2);
});

test('write then read a table directory round-trips means and counts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nestswap-lut-'));
  try {
    await writeLatencyTableDir(dir, note10);
    const back = await readLatencyTableDir(dir);
    assert.deepEqual([...back.keys()].sort(), [...note10.keys()].sort());
    for (const [r, t] of note10) {
      const b = back.get(r)!;
      assert.equal(b.entries.size, t.entries.size);
      for (const [k, e] of t.entries) {
        assert.equal(b.entries.get(k)!.mean, e.mean);
        assert.equal(b.entries.get(k)!.count, e.count);
        assert.ok(Math.abs(b.entries.get(k)!.var! - (e.std ?? 0) ** 2) < 1e-15);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('serialized text is valid input to the parser with metadata kept', () => {
  const t = parseLatencyTable('_nestswap:\n  threads: 2\nConv-input:8x8x3-output:4x4x8:\n  count: 2\n  mean: 0.5\n  var: 0.01\n', 8);
  const back = parseLatencyTable(serializeLatencyTable(t), 8);
  assert.deepEqual(back.meta, { _nestswap: { threads: 2 } });
  assert.deepEqual(back.entries.get('Conv-input:8x8x3-output:4x4x8'), { count: 2, mean: 0.5, var: 0.01 });
});
