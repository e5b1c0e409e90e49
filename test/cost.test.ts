import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseArch, scaleMbv3Arch } from '../runtime/arch.js';
import { countMacs, countParams } from '../runtime/cost.js';
import { Space } from '../runtime/space.js';

const root = new URL('../../', import.meta.url);
const w10 = parseArch(JSON.parse(readFileSync(new URL('models/ofa-mbv3-w1.0/arch.json', root), 'utf8')));
const space = Space.fromArch(w10);

test('largest w1.0 subnet (k7 e6 d4 r224) has 566.17 M MACs', () => {
  assert.equal((countMacs(w10, space.uniform(7, 6, 4, 224)) / 1e6).toFixed(2), '566.17');
});

test('largest w1.0 subnet has 7,613,280 conv/linear weights', () => {
  assert.equal(countParams(w10, space.uniform(7, 6, 4, 224)), 7_613_280);
});

test('smallest w1.0 subnet (k3 e3 d2 r128) has 41.48 M MACs', () => {
  assert.equal((countMacs(w10, space.uniform(3, 3, 2, 128)) / 1e6).toFixed(2), '41.48');
});

test('smallest w1.0 subnet has 3,395,856 conv/linear weights', () => {
  assert.equal(countParams(w10, space.uniform(3, 3, 2, 128)), 3_395_856);
});

test('parameters do not depend on the resolution', () => {
  assert.equal(countParams(w10, space.uniform(5, 4, 3, 128)), countParams(w10, space.uniform(5, 4, 3, 224)));
});

test("OFA's published flops-389M, -482M, -595M w1.2 networks count within 1% of their names", () => {
  const specs = JSON.parse(readFileSync(new URL('test/fixtures/ofa-reference/ofa_specialized_archs.json', root), 'utf8')) as {
    name: string;
    width_mult: number;
    arch: { ks: number[]; e: number[]; d: number[]; image_size: number };
  }[];
  const w12 = scaleMbv3Arch(w10, 1.2, 'ofa-mbv3-w1.2');
  for (const target of [389, 482, 595]) {
    const s = specs.find((x) => x.name.startsWith(`flops-${target}M`));
    assert.ok(s, `flops-${target}M in fixtures`);
    const m = countMacs(w12, s.arch) / 1e6;
    assert.ok(Math.abs(m - target) / target < 0.01, `${s.name}: ${m.toFixed(1)} M`);
  }
});
