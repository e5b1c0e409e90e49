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
import { blockSlots, midChannels, parseArch, seChannels, type Arch } from '../runtime/arch.js';
import { mulberry32 } from '../runtime/random.js';

export const MODELS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models');

export function supernetTensorShapes(arch: Arch): Map<string, number[]> {
  const t = new Map<string, number[]>();
  const bn = (name: string, c: number) => {
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) t.set(`${name}.${k}`, [c]);
  };
  const cin = arch.input.channels;
  t.set('stem.conv.weight', [arch.stem.out, cin, arch.stem.kernel, arch.stem.kernel]);
  bn('stem.bn', arch.stem.out);
  t.set('first.dw.weight', [arch.stem.out, 1, arch.first_block.kernel, arch.first_block.kernel]);
  bn('first.dw_bn', arch.stem.out);
  t.set('first.proj.weight', [arch.first_block.out, arch.stem.out, 1, 1]);
  bn('first.proj_bn', arch.first_block.out);
  const ks = [...arch.space.ks_list].sort((a, b) => a - b);
  const K = ks[ks.length - 1]!;
  const maxE = Math.max(...arch.space.expand_list);
  for (const s of blockSlots(arch)) {
    const i = s.index;
    const mid = midChannels(arch, s.inChannels, maxE);
    t.set(`blocks.${i}.expand`, [mid, s.inChannels, 1, 1]);
    bn(`blocks.${i}.expand_bn`, mid);
    t.set(`blocks.${i}.dw`, [mid, 1, K, K]);
    for (let j = ks.length - 1; j > 0; j--) t.set(`blocks.${i}.m${ks[j]}to${ks[j - 1]}`, [ks[j - 1]! ** 2, ks[j - 1]! ** 2]);
    bn(`blocks.${i}.dw_bn`, mid);
    if (s.se) {
      const se = seChannels(arch, mid);
      t.set(`blocks.${i}.se_reduce_w`, [se, mid, 1, 1]);
      t.set(`blocks.${i}.se_reduce_b`, [se]);
      t.set(`blocks.${i}.se_expand_w`, [mid, se, 1, 1]);
      t.set(`blocks.${i}.se_expand_b`, [mid]);
    }
    t.set(`blocks.${i}.proj`, [s.outChannels, mid, 1, 1]);
    bn(`blocks.${i}.proj_bn`, s.outChannels);
  }
  const last = arch.stages[arch.stages.length - 1]!.width;
  t.set('final_expand.weight', [arch.final_expand, last, 1, 1]);
  bn('final_bn', arch.final_expand);
  t.set('feature_mix.weight', [arch.feature_mix, arch.final_expand, 1, 1]);
  t.set('classifier.weight', [arch.classes, arch.feature_mix]);
  t.set('classifier.bias', [arch.classes]);
  return t;
}

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

/** The bundled package of a family, generating it first when the family is generated rather than committed. */
export function ensureFamilyPackage(family: string): string {
  const dir = join(MODELS_DIR, family, 'package');
  if (existsSync(join(dir, 'manifest.json'))) return dir;
  const archPath = join(MODELS_DIR, family, 'arch.json');
  if (!existsSync(archPath)) return dir;
  const arch = parseArch(JSON.parse(readFileSync(archPath, 'utf8')), archPath);
  return generatePackage(arch, dir);
}
