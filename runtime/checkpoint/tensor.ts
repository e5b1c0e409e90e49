/** Tensors as checkpoints hold them, decoded to float32 (every dtype OFA's weights use converts exactly or widens). */
export interface CheckpointTensor {
  /** the dtype in the file (float32, float16, bfloat16, float64, int64, ...) */
  dtype: string;
  shape: number[];
  data: Float32Array;
}

/** A state_dict: tensor name -> tensor, in file order. */
export type StateDict = Map<string, CheckpointTensor>;

export const DTYPE_BYTES: Readonly<Record<string, number>> = Object.freeze({
  float64: 8, float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
});

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Element `i` reader for little-endian raw bytes of `dtype`. */
export function elementReader(bytes: Uint8Array, dtype: string): ((i: number) => number) | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'float32': return (i) => dv.getFloat32(i * 4, true);
    case 'float64': return (i) => dv.getFloat64(i * 8, true);
    case 'float16': return (i) => halfToFloat(dv.getUint16(i * 2, true));
    case 'bfloat16': return (i) => new Float32Array(new Uint32Array([dv.getUint16(i * 2, true) << 16]).buffer)[0]!;
    case 'int64': return (i) => Number(dv.getBigInt64(i * 8, true));
    case 'int32': return (i) => dv.getInt32(i * 4, true);
    case 'int16': return (i) => dv.getInt16(i * 2, true);
    case 'int8': return (i) => dv.getInt8(i);
    case 'uint8': case 'bool': return (i) => dv.getUint8(i);
    default: return undefined;
  }
}

/**
 * Gathers a (possibly strided) view of `storage` into a dense float32 array. `offset` and `stride`
 * count elements, as torch's do.
 */
export function gatherFloat32(storage: Uint8Array, dtype: string, offset: number, shape: readonly number[], stride: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const dense = shape.every((_, d) => shape[d] === 1 || stride[d] === shape.slice(d + 1).reduce((a, b) => a * b, 1));
  if (dense && dtype === 'float32' && (storage.byteOffset + offset * 4) % 4 === 0) {
    out.set(new Float32Array(storage.buffer, storage.byteOffset + offset * 4, n));
    return out;
  }
  const read = elementReader(storage, dtype)!;
  if (dense) {
    for (let i = 0; i < n; i++) out[i] = read(offset + i);
    return out;
  }
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let src = offset;
    for (let d = 0; d < shape.length; d++) src += idx[d]! * stride[d]!;
    out[i] = read(src);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}
