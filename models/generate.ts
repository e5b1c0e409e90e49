/**
 * Generates a seeded, untrained supernet package from an arch.json: the same tensor names and
 * shapes the PyTorch recipe (models/supernet.py) writes, He-normal convolutions, identity kernel
 * transformation matrices, neutral BN statistics, and seeded synthetic calibration images.
 * Used for ofa-mbv3-w1.0, whose weights are too large to commit and exist to measure latency,
 * memory, search and swap at real edge scale. The manifest says `trained: false`.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArch, supernetTensorShapes, type Arch } from '../runtime/arch.js';
import { mulberry32 } from '../runtime/random.js';

export const MODELS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models');

function fill(name: string, shape: number[], out: Float32Array, rand: () => number): void {
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  if (/\.m\d+to\d+$/.test(name)) {
    const n = shape[0]!;
    for (let i = 0; i < n; i++) out[i * n + i] = 1;
  } else if (name.endsWith('.weight') && shape.length === 1) out.fill(1); // BN gamma
  else if (name.endsWith('running_var')) out.fill(1);
  else if (shape.length === 1) out.fill(0); // biases, BN beta, running_mean
  else {
    // He-normal over fan-out, as OFA initialises convolutions.
    const fanOut = shape[0]! * shape.slice(2).reduce((a, b) => a * b, 1) / (name.endsWith('.dw') || name.includes('dw.weight') ? shape[0]! : 1);
    const std = name === 'classifier.weight' ? 0.01 : Math.sqrt(2 / Math.max(1, fanOut));
    for (let i = 0; i < out.length; i++) out[i] = gauss() * std;
  }
}

export interface GenerateOptions {
  seed?: number;
  calibrationImages?: number;
  calibrationBatch?: number;
  version?: string;
}

/** Writes the package atomically (temp dir + rename) and returns its directory. */
export function generatePackage(arch: Arch, outDir: string, opts: GenerateOptions = {}): string {
  const seed = opts.seed ?? 1;
  const rand = mulberry32(seed);
  const shapes = supernetTensorShapes(arch);
  const names = [...shapes.keys()].sort();
  let total = 0;
  const index: Record<string, { dtype: 'float32'; shape: number[]; offset: number; length: number }> = {};
  for (const n of names) {
    const count = shapes.get(n)!.reduce((a, b) => a * b, 1);
    index[n] = { dtype: 'float32', shape: shapes.get(n)!, offset: total, length: count * 4 };
    total += count * 4;
  }
  const blob = new Float32Array(total / 4);
  for (const n of names) fill(n, shapes.get(n)!, blob.subarray(index[n]!.offset / 4, (index[n]!.offset + index[n]!.length) / 4), rand);
  const { channels: c, height: h, width: w } = arch.input;
  const count = opts.calibrationImages ?? 200;
  const calib = new Uint8Array(count * c * h * w);
  for (let i = 0; i < calib.length; i++) calib[i] = Math.floor(rand() * 256);

  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const files: [string, string, Uint8Array][] = [
    ['weights.bin', 'weights', new Uint8Array(blob.buffer)],
    ['weights.json', 'weights-index', new TextEncoder().encode(JSON.stringify({ format: 'nestswap.tensors/1', byteOrder: 'little', tensors: index }))],
    ['calibration.u8', 'calibration', calib],
  ];
  for (const [p, , bytes] of files) writeFileSync(join(tmp, p), bytes);
  const manifest = {
    format: 'nestswap.package/1',
    name: arch.family,
    version: opts.version ?? '1.0.0',
    family: arch.family,
    trained: false,
    producer: `models/generate.ts (seed ${seed}): untrained, deterministic weights for latency, memory, search and swap measurements`,
    arch,
    input: { shape: [c, h, w], dtype: 'float32', range: [0, 1], layout: 'NCHW', mean: arch.input.mean, std: arch.input.std, labels: arch.input.labels ?? null },
    calibration: { file: 'calibration.u8', count, batch: Math.min(opts.calibrationBatch ?? 100, count), dtype: 'uint8', scale: 1 / 255, shape: [c, h, w] },
    files: files.map(([path, role, bytes]) => ({ path, role, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') })),
  };
  writeFileSync(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 1));
  rmSync(outDir, { recursive: true, force: true });
  renameSync(tmp, outDir);
  return outDir;
}

/** Families whose package is generated on first use (untrained, too large to commit). */
export const GENERATED_FAMILIES: readonly string[] = Object.freeze(['ofa-mbv3-w1.0']);

/** The bundled package of a family, generating it first when the family is generated rather than committed. */
export function ensureFamilyPackage(family: string): string {
  const dir = join(MODELS_DIR, family, 'package');
  if (existsSync(join(dir, 'manifest.json')) || !GENERATED_FAMILIES.includes(family)) return dir;
  const archPath = join(MODELS_DIR, family, 'arch.json');
  if (!existsSync(archPath)) return dir;
  const arch = parseArch(JSON.parse(readFileSync(archPath, 'utf8')), archPath);
  return generatePackage(arch, dir);
}
