/**
 * Assembles the files of a nestswap.package/1 from an architecture, tensors and a calibration set
 * (platform-neutral: the Node writer puts them on disk, tests load them from memory).
 */
import type { Arch } from '../arch.js';
import { parseManifest, sha256Hex, type Manifest, type TensorData } from '../package.js';

export interface PackageContent {
  name: string;
  version?: string;
  trained: boolean;
  producer: string;
  arch: Arch;
  tensors: ReadonlyMap<string, TensorData>;
  /** uint8 NCHW images at the input contract's size */
  calibration: Uint8Array;
  calibrationBatch?: number;
  /** further files: path -> role and bytes */
  extra?: ReadonlyMap<string, { role: string; bytes: Uint8Array }>;
  accuracy?: Record<string, unknown>;
  dataset?: Record<string, unknown>;
}

/** weights.bin (float32 little-endian, 64-byte aligned tensors) and its index. */
export function packTensors(tensors: ReadonlyMap<string, TensorData>): { blob: Uint8Array; index: Uint8Array } {
  const names = [...tensors.keys()].sort();
  const entries: Record<string, { dtype: 'float32'; shape: number[]; offset: number; length: number }> = {};
  let total = 0;
  for (const n of names) {
    const t = tensors.get(n)!;
    total = Math.ceil(total / 64) * 64;
    entries[n] = { dtype: 'float32', shape: t.shape, offset: total, length: t.data.length * 4 };
    total += t.data.length * 4;
  }
  const blob = new Uint8Array(total);
  const f32 = new Float32Array(blob.buffer);
  for (const n of names) f32.set(tensors.get(n)!.data, entries[n]!.offset / 4);
  const index = new TextEncoder().encode(JSON.stringify({ format: 'nestswap.tensors/1', byteOrder: 'little', tensors: entries }));
  return { blob, index };
}

export async function packageFiles(c: PackageContent): Promise<{ manifest: Manifest; files: Map<string, Uint8Array> }> {
  const { channels, height, width } = c.arch.input;
  const per = channels * height * width;
  const count = c.calibration.length / per;
  const { blob, index } = packTensors(c.tensors);
  const list: [string, string, Uint8Array][] = [
    ['weights.bin', 'weights', blob],
    ['weights.json', 'weights-index', index],
    ['calibration.u8', 'calibration', c.calibration],
  ];
  for (const [path, f] of c.extra ?? []) list.push([path, f.role, f.bytes]);
  const files = new Map<string, Uint8Array>();
  const entries = [];
  for (const [path, role, bytes] of list) {
    files.set(path, bytes);
    entries.push({ path, role, bytes: bytes.length, sha256: await sha256Hex(bytes) });
  }
  const manifest = parseManifest(
    {
      format: 'nestswap.package/1',
      name: c.name,
      version: c.version ?? '1.0.0',
      family: c.arch.family,
      trained: c.trained,
      created: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      producer: c.producer,
      arch: c.arch,
      input: { shape: [channels, height, width], dtype: 'float32', range: [0, 1], layout: 'NCHW', mean: c.arch.input.mean, std: c.arch.input.std, labels: c.arch.input.labels ?? null },
      calibration: { file: 'calibration.u8', count, batch: Math.min(c.calibrationBatch ?? 200, count), dtype: 'uint8', scale: 1 / 255, shape: [channels, height, width] },
      files: entries,
      ...(c.accuracy ? { accuracy: c.accuracy } : {}),
      ...(c.dataset ? { dataset: c.dataset } : {}),
    },
    c.name,
  );
  return { manifest, files };
}
