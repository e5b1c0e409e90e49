/**
 * `nestswap import ofa` as a function: checkpoint file + net id + calibration images -> a
 * nestswap.package/1 directory. Reading, mapping and checking happen before anything is written.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCheckpoint } from '../checkpoint/index.js';
import { NestswapError } from '../errors.js';
import { importOfaStateDict } from '../import/ofa.js';
import { packageFiles } from '../import/package-files.js';
import type { Manifest } from '../package.js';
import { Space } from '../space.js';
import { loadCalibrationSet } from './calibration-images.js';
import { loadOnnxAccuracyPredictor } from './search-inputs.js';
import { writePackageDir } from './package-writer.js';

/** ImageNet's 1,000 class names in class-index order (models/imagenet-classes.txt). */
export function imagenetLabels(): string[] {
  const path = fileURLToPath(new URL('../../../models/imagenet-classes.txt', import.meta.url));
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0);
}

/** `128..224:4` (first..last:step) or `160,176,192`. */
export function parseSizeList(text: string, flag = '--image-size-list'): number[] {
  const range = /^(\d+)\.\.(\d+)(?::(\d+))?$/.exec(text.trim());
  let sizes: number[];
  if (range) {
    const [a, b, step] = [Number(range[1]), Number(range[2]), Number(range[3] ?? 1)];
    if (!(step > 0) || b < a) throw new NestswapError('ERR_USAGE', `${flag} ${text}: expected first..last:step with first <= last and step > 0.`);
    sizes = [];
    for (let r = a; r <= b; r += step) sizes.push(r);
  } else sizes = text.split(',').map((s) => Number(s.trim()));
  if (!sizes.length || sizes.some((r) => !Number.isInteger(r) || r < 8 || r > 2048))
    throw new NestswapError('ERR_USAGE', `${flag} ${text}: expected sizes 8..2048 as first..last:step (e.g. 128..224:4) or a comma list.`);
  return [...new Set(sizes)].sort((x, y) => x - y);
}

export interface ImportOfaOptions {
  checkpoint: string;
  net: string;
  calibration: string;
  out: string;
  labels?: string;
  imageSizeList?: number[];
  /** an ONNX accuracy predictor, and the resolutions it encodes when fewer than the space's */
  predictor?: { bytes: Uint8Array; imageSizeList?: number[] };
  name?: string;
  version?: string;
  calibrationImages?: number;
  /** called as each step starts (read, map, calibration, write) and when done: steps done of 4, the next step's name */
  onProgress?: (done: number, total: number, step: string) => void;
}

export interface ImportOfaResult {
  out: string;
  manifest: Manifest;
  tensors: number;
  unusedTensors: string[];
  calibrationImages: number;
  timings: { readMs: number; mapMs: number; calibrationMs: number; writeMs: number; totalMs: number };
}

export async function importOfaCheckpoint(o: ImportOfaOptions): Promise<ImportOfaResult> {
  const t0 = performance.now();
  const step = (done: number, name: string) => o.onProgress?.(done, 4, name);
  step(0, 'reading checkpoint');
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(o.checkpoint));
  } catch (cause) {
    throw new NestswapError('ERR_USAGE', `Cannot read --checkpoint ${o.checkpoint}: ${(cause as Error).message}`, { cause });
  }
  const sd = readCheckpoint(bytes, basename(o.checkpoint));
  const t1 = performance.now();
  step(1, 'mapping tensors');
  let labels: string[] | null = null;
  if (o.labels) labels = readFileSync(o.labels, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const cls = sd.get('classifier.linear.weight')?.shape[0];
  if (!labels && cls === 1000) labels = imagenetLabels();
  if (labels && cls !== undefined && labels.length !== cls)
    throw new NestswapError('ERR_USAGE', `--labels ${o.labels} names ${labels.length} classes; the checkpoint's classifier has ${cls}.`);
  const family = o.name ?? o.net.replaceAll('_', '-').toLowerCase();
  const imported = importOfaStateDict(sd, o.net, { source: basename(o.checkpoint), labels, family, ...(o.imageSizeList ? { imageSizeList: o.imageSizeList } : {}) });
  const t2 = performance.now();
  step(2, 'calibration set');
  const calib = loadCalibrationSet(o.calibration, imported.arch.input.height, o.calibrationImages);
  const t3 = performance.now();
  step(3, 'writing package');
  let predictorSizes: readonly number[] | undefined;
  if (o.predictor) {
    // checked now, against the imported space: a predictor that does not fit is refused before anything is written
    const space = Space.fromArch(imported.arch);
    const { encoder } = await loadOnnxAccuracyPredictor(o.predictor.bytes, space, o.predictor.imageSizeList ? [o.predictor.imageSizeList] : []);
    predictorSizes = encoder.imageSizeList;
  }
  const extra = new Map<string, { role: string; bytes: Uint8Array }>();
  if (o.predictor) extra.set('predictor.onnx', { role: 'accuracy-predictor', bytes: o.predictor.bytes });
  const { manifest, files } = await packageFiles({
    name: family,
    ...(o.version ? { version: o.version } : {}),
    trained: true,
    producer: `nestswap import ofa (${o.net} from ${basename(o.checkpoint)})`,
    arch: imported.arch,
    tensors: imported.tensors,
    calibration: calib.data,
    extra,
    ...(predictorSizes ? { accuracy: { predictor_image_size_list: [...predictorSizes] } } : {}),
    dataset: { calibration: { source: calib.source, images: calib.count, preprocessing: calib.source === 'images' ? 'resize shorter side to ceil(size/0.875), centre crop (OFA ImageNet evaluation)' : 'raw uint8 NCHW as given' } },
  });
  const out = writePackageDir(o.out, manifest, files);
  const t4 = performance.now();
  step(4, 'imported');
  return {
    out,
    manifest,
    tensors: imported.tensors.size,
    unusedTensors: imported.unused,
    calibrationImages: calib.count,
    timings: { readMs: t1 - t0, mapMs: t2 - t1, calibrationMs: t3 - t2, writeMs: t4 - t3, totalMs: t4 - t0 },
  };
}
