/**
 * BatchNorm recalibration the way Once-for-All does it (set_running_statistics): forward the
 * package's calibration images in batches, normalising with each batch's own mean and (biased)
 * variance, and average the per-batch statistics weighted by batch size.
 *
 * Statistics are cached by (weights digest, subnet id) so calibration stays off the swap path.
 */
import { crashPoint } from './crash.js';
import { pack, unpack } from 'msgpackr';
import { buildSubnet, type BnStats, type DepthwiseMatMul, type SubnetWeights } from './materialize.js';
import type { SupernetPackage } from './package.js';
import { ModelSession, type Backend } from './session.js';
import type { SubnetConfig } from './space.js';

export type BnStatsMap = Map<string, BnStats>;

/** Where calibrated statistics persist (memory by default; the agent adds a disk store). */
export interface StatsStore {
  get(key: string): Promise<BnStatsMap | undefined>;
  set(key: string, stats: BnStatsMap): Promise<void>;
}

export class MemoryStatsStore implements StatsStore {
  private readonly map = new Map<string, BnStatsMap>();
  constructor(private readonly capacity = 256) {}
  async get(key: string): Promise<BnStatsMap | undefined> {
    const v = this.map.get(key);
    if (v) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  async set(key: string, stats: BnStatsMap): Promise<void> {
    this.map.set(key, stats);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }
}

/**
 * Stable binary form of statistics, for disk stores and the registry: msgpack of
 * `{ "<bn name>": [mean bytes, var bytes] }`, each a bin of little-endian float32 values.
 * (msgpack carries a Float32Array as its raw bytes and gives back a byte buffer: the floats
 * are reinterpreted from those bytes, never converted byte by byte.)
 */
export function encodeStats(stats: BnStatsMap): Uint8Array {
  const obj: Record<string, [Uint8Array, Uint8Array]> = {};
  for (const [k, v] of stats) obj[k] = [littleEndianBytes(v.mean), littleEndianBytes(v.var)];
  return pack(obj);
}

export function decodeStats(bytes: Uint8Array): BnStatsMap {
  const obj = unpack(bytes) as unknown;
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new Error('BN statistics: not a map');
  const out: BnStatsMap = new Map();
  for (const [k, pair] of Object.entries(obj as Record<string, unknown>)) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new Error(`BN statistics '${k}': not a [mean, var] pair`);
    const mean = floatsFrom(pair[0], k);
    const variance = floatsFrom(pair[1], k);
    if (mean.length !== variance.length) throw new Error(`BN statistics '${k}': mean and var differ in length`);
    out.set(k, { mean, var: variance });
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function littleEndianBytes(a: Float32Array): Uint8Array {
  const copy = new Float32Array(a);
  const bytes = new Uint8Array(copy.buffer);
  if (!LITTLE_ENDIAN) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return bytes;
}

function floatsFrom(v: unknown, name: string): Float32Array {
  if (v instanceof Float32Array) return new Float32Array(v);
  if (!(v instanceof Uint8Array) || v.byteLength % 4 !== 0) throw new Error(`BN statistics '${name}': not float32 bytes`);
  const bytes = new Uint8Array(v); // an aligned copy (Buffer#slice would be a view into the whole message)
  if (!LITTLE_ENDIAN) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
}

export function statsKey(pkg: SupernetPackage, cfg: SubnetConfig, images: number): string {
  return `${pkg.weightsDigest.slice(0, 16)}/${pkg.space.id(cfg)}/n${images}`;
}

export interface CalibrateOptions {
  /** How many calibration images to use (default: all the package holds, OFA uses 2,000). */
  images?: number;
  /** Batch size (default: the package's, OFA uses 200). */
  batch?: number;
  threads?: number;
  /**
   * Build the calibration graph in onnxruntime's NCHWc layout with this block size (x86 CPU
   * provider; see runtime/node/nchwc.ts) and load it unoptimised: statistics are computed on the
   * blocked tensors instead of onnxruntime reordering around every BatchNorm.
   */
  nchwcBlock?: number;
  /** Lower small depthwise convolutions to a MatMul (runtime/materialize.ts; the browser's wasm provider). */
  depthwiseMatMul?: DepthwiseMatMul;
  /** called after each batch with the images done so far and the total (progress of long work) */
  onProgress?: (done: number, total: number) => void;
}

export async function calibrateBn(weights: SubnetWeights, cfg: SubnetConfig, backend: Backend, opts: CalibrateOptions = {}): Promise<BnStatsMap> {
  crashPoint('calibrate');
  const pkg = weights.pkg;
  const c = pkg.manifest.calibration;
  const total = Math.min(opts.images ?? c.count, c.count);
  const batch = Math.min(opts.batch ?? c.batch, total);
  const graph = buildSubnet(weights, cfg, { mode: 'calibrate', ...(opts.nchwcBlock ? { nchwcBlock: opts.nchwcBlock } : {}), ...(opts.depthwiseMatMul ? { depthwiseMatMul: opts.depthwiseMatMul } : {}) });
  const session = await ModelSession.create(backend, graph.bytes, {
    ...(opts.threads ? { threads: opts.threads } : {}),
    ...(opts.nchwcBlock ? { graphOptimizationLevel: 'disabled' as const } : {}),
  });
  try {
    const per = c.shape.reduce((a, b) => a * b, 1);
    const sums = new Map<string, { mean: Float64Array; var: Float64Array }>();
    const input = new Float32Array(batch * per);
    for (let start = 0; start < total; start += batch) {
      const n = Math.min(batch, total - start);
      const view = n === batch ? input : input.subarray(0, n * per);
      const src = pkg.calibration.subarray(start * per, (start + n) * per);
      for (let i = 0; i < src.length; i++) view[i] = src[i]! * c.scale;
      const out = await session.run(view, [n, ...c.shape], graph.outputNames);
      for (const [k, bn] of graph.bnNames.entries()) {
        const m = out[`${bn}:mean`]!.data;
        const v = out[`${bn}:var`]!.data;
        const C = graph.bnChannels[k]!; // the outputs may be padded to the NCHWc block
        let s = sums.get(bn);
        if (!s) sums.set(bn, (s = { mean: new Float64Array(C), var: new Float64Array(C) }));
        for (let j = 0; j < C; j++) {
          s.mean[j]! += m[j]! * n;
          s.var[j]! += v[j]! * n;
        }
      }
      opts.onProgress?.(start + n, total);
    }
    const stats: BnStatsMap = new Map();
    for (const [bn, s] of sums) stats.set(bn, { mean: Float32Array.from(s.mean, (x) => x / total), var: Float32Array.from(s.var, (x) => x / total) });
    return stats;
  } finally {
    await session.release();
  }
}
