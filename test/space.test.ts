import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseArch, scaleMbv3Arch } from '../runtime/arch.js';
import { isNestswapError } from '../runtime/errors.js';
import { mulberry32 } from '../runtime/random.js';
import { ArchEncoder, Space } from '../runtime/space.js';
import { repoPath } from './helpers.js';

const mbv3 = parseArch(JSON.parse(readFileSync(repoPath('models', 'ofa-mbv3-w1.0', 'arch.json'), 'utf8')));
const space = Space.fromArch(mbv3);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isNestswapError(e) ? e.code : 'not-a-nestswap-error';
  }
  return undefined;
}

test('OFA-MBv3 space: 20 slots, 5 stages, 25 resolutions, 145-dim encoding', () => {
  assert.equal(space.nSlots, 20);
  assert.equal(space.n_stage, 5);
  assert.equal(space.image_size_list.length, 25);
  assert.equal(new ArchEncoder(space).nDim, 145);
});

test('space size counts every (depth, kernel, expand) choice per stage and every resolution', () => {
  const perStage = 9 ** 2 + 9 ** 3 + 9 ** 4;
  assert.equal(space.size(), perStage ** 5 * 25);
});

test('canonical id ignores inactive slots', () => {
  const a = space.parse({ ks: Array(20).fill(7), e: Array(20).fill(6), d: [2, 2, 2, 2, 2], image_size: 160 });
  const ks = Array(20).fill(7);
  ks[3] = 3; // slot 3 is inactive at depth 2
  const b = space.parse({ ks, e: Array(20).fill(6), d: [2, 2, 2, 2, 2], image_size: 160 });
  assert.equal(space.id(a), space.id(b));
  assert.deepEqual(a, b);
});

test('subnet id round-trips', () => {
  const rng = mulberry32(5);
  for (let i = 0; i < 50; i++) {
    const c = space.sample(rng);
    assert.deepEqual(space.fromId(space.id(c)), c);
  }
});

test('seeded sampling is deterministic', () => {
  const a = Array.from({ length: 5 }, ((r) => () => space.sample(r))(mulberry32(9)));
  const b = Array.from({ length: 5 }, ((r) => () => space.sample(r))(mulberry32(9)));
  assert.deepEqual(a, b);
});

test("OFA's own arch dicts (specialized networks) parse unchanged where their resolution is in the space", () => {
  const archs = JSON.parse(readFileSync(repoPath('test', 'fixtures', 'ofa-reference', 'ofa_specialized_archs.json'), 'utf8')) as { arch: unknown; width_mult: number }[];
  const inSpace = archs.filter((a) => space.image_size_list.includes((a.arch as { image_size: number }).image_size));
  assert.ok(inSpace.length > 10);
  for (const a of inSpace) space.parse(a.arch);
});

test('bad configs fail with ERR_CONFIG_INVALID naming the field', () => {
  const good = { ks: Array(20).fill(3), e: Array(20).fill(3), d: [2, 2, 2, 2, 2], image_size: 128 };
  const cases: [unknown, string][] = [
    [{ ...good, ks: Array(19).fill(3) }, "'ks'"],
    [{ ...good, e: [...Array(19).fill(3), 5] }, "'e[19]'"],
    [{ ...good, d: [2, 2, 2, 2, 1] }, "'d[4]'"],
    [{ ...good, image_size: 129 }, "'image_size'"],
    [{ ...good, image_size: 128.5 }, "'image_size'"],
    [{ ...good, wat: 1 }, "'wat'"],
    [{ ...good, ks: [...Array(19).fill(3), '3'] }, "'ks[19]'"],
    [{ ...good, ks: [...Array(19).fill(3), Number.NaN] }, "'ks[19]'"],
    [null, "'(root)'"],
    [[1, 2], "'(root)'"],
  ];
  for (const [cfg, field] of cases) {
    try {
      space.parse(cfg);
      assert.fail(`accepted ${JSON.stringify(cfg)}`);
    } catch (e) {
      assert.ok(isNestswapError(e, 'ERR_CONFIG_INVALID'), String(e));
      assert.ok(e.message.includes(field), `${e.message} should name ${field}`);
    }
  }
  assert.equal(code(() => space.parse({ ...good, image_size: 129 })), 'ERR_CONFIG_INVALID');
});

test('error for a bad choice lists the valid choices', () => {
  try {
    space.parse({ ks: Array(20).fill(4), e: Array(20).fill(3), d: [2, 2, 2, 2, 2], image_size: 128 });
  } catch (e) {
    assert.match((e as Error).message, /should be one of: 3, 5, 7/);
  }
});

test('encoding: one-hot resolution, then kernels per slot, then expands per slot; inactive blocks zero', () => {
  const enc = new ArchEncoder(space);
  const cfg = space.parse({ ks: Array(20).fill(5), e: Array(20).fill(4), d: [2, 3, 4, 2, 2], image_size: 132 });
  const f = enc.encode(cfg);
  assert.equal(f.reduce((s, v) => s + v, 0), 1 + 2 * (2 + 3 + 4 + 2 + 2));
  assert.equal(f[1], 1); // 132 is the second resolution
  assert.equal(f[25 + 0 * 3 + 1], 1); // slot 0, ks 5
  assert.equal(f[25 + 2 * 3 + 1], 0); // slot 2 inactive (stage 0 depth 2)
  assert.equal(f[25 + 60 + 0 * 3 + 1], 1); // slot 0, e 4
});

test('OFA-MBv3 w1.2 widths follow make_divisible as OFA computes them', () => {
  const w12 = scaleMbv3Arch(mbv3, 1.2, 'ofa-mbv3-w1.2');
  assert.equal(w12.stem.out, 24);
  assert.deepEqual(w12.stages.map((s) => s.width), [32, 48, 96, 136, 192]);
  assert.equal(w12.final_expand, 1152);
  assert.equal(w12.feature_mix, 1536);
});

test('malformed architectures are rejected with ERR_ARCH_INVALID', () => {
  assert.equal(code(() => parseArch({ ...mbv3, stages: [] })), 'ERR_ARCH_INVALID');
  assert.equal(code(() => parseArch({ ...mbv3, space: { ...mbv3.space, ks_list: [4] } })), 'ERR_ARCH_INVALID');
  assert.equal(code(() => parseArch({ ...mbv3, extra: 1 })), 'ERR_ARCH_INVALID');
});
