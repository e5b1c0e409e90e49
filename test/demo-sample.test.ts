/**
 * The Fashion-MNIST test sample that ships with nestswap (models/fmnist-ofa/test-sample.bin): it is the
 * demo's even selection of the test split, byte for byte, and a damaged file is refused with its code.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { IMAGE_PIXELS } from '../models/fmnist-ofa/data.js';
import { decodeSample, encodeSample, evenTestSelection, readTestSample, SAMPLE_PATH, SAMPLE_SIZE } from '../models/fmnist-ofa/test-sample.js';
import { NestswapError } from '../runtime/errors.js';
import { repoPath } from './helpers.js';

test('the shipped sample is the even selection of the test split made from the fashion-mnist package', () => {
  const shipped = readTestSample();
  const made = evenTestSelection(SAMPLE_SIZE);
  assert.equal(shipped.count, SAMPLE_SIZE);
  assert.deepEqual(shipped.labels, made.labels);
  assert.ok(Buffer.from(shipped.images).equals(Buffer.from(made.images)), 'same pixels');
  const perClass = new Array(10).fill(0);
  for (const l of shipped.labels) perClass[l]++;
  assert.deepEqual(perClass, new Array(10).fill(SAMPLE_SIZE / 10), 'every class equally');
});

test('a damaged sample file is refused with ERR_DATA_INVALID, saying what is wrong', () => {
  const good = new Uint8Array(readFileSync(SAMPLE_PATH));
  const bad: [Uint8Array, RegExp][] = [
    [good.subarray(0, good.length - 1), /truncated/],
    [Uint8Array.from([...good.subarray(0, 16 + SAMPLE_SIZE + IMAGE_PIXELS), 1]), /truncated or padded/],
    [new TextEncoder().encode('not a sample at all'), /not a Fashion-MNIST sample/],
    [encodeSample({ count: 1, labels: Uint8Array.of(12), images: new Uint8Array(IMAGE_PIXELS) }), /label outside/],
  ];
  for (const [bytes, why] of bad)
    assert.throws(() => decodeSample(bytes), (e: unknown) => e instanceof NestswapError && e.code === 'ERR_DATA_INVALID' && why.test(e.message));
});

test('fashion-mnist (149 MB) is a development dependency; the sample is in the published files', () => {
  const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string>; files: string[] };
  assert.equal(pkg.dependencies['fashion-mnist'], undefined);
  assert.ok(pkg.devDependencies['fashion-mnist']);
  assert.ok(pkg.files.includes('models/fmnist-ofa/test-sample.bin'));
});
