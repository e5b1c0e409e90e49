/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`, then the raw data.
 */
import { NestswapError } from '../errors.js';
import { DTYPE_BYTES, gatherFloat32, type StateDict } from './tensor.js';

const DTYPES: Readonly<Record<string, string>> = Object.freeze({
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
});

/** Whether the bytes start like a safetensors file (a plausible header length, then '{'). */
export function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  return n > 1 && n < 100_000_000 && bytes[8] === 0x7b;
}

export function readSafetensors(bytes: Uint8Array, source: string): StateDict {
  const bad = (msg: string): never => {
    throw new NestswapError('ERR_CHECKPOINT_FORMAT', `${source} is not a readable safetensors file: ${msg}.`);
  };
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > bytes.length) bad(`its header says ${n} bytes but the file has ${bytes.length - 8} after the length (truncated)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch {
    return bad('its header is not JSON');
  }
  const data = bytes.subarray(8 + n);
  const out: StateDict = new Map();
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dtype = DTYPES[t.dtype ?? ''];
    if (!dtype) throw new NestswapError('ERR_CHECKPOINT_UNSUPPORTED', `${source}: tensor '${name}' has dtype ${String(t.dtype)}, which is not read.`);
    if (!Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) bad(`tensor '${name}' lacks shape or data_offsets`);
    const [b, e] = t.data_offsets!;
    const count = t.shape!.reduce((a, x) => a * x, 1);
    if (e - b !== count * DTYPE_BYTES[dtype]! || e > data.length) bad(`tensor '${name}' does not fit its shape or the file (truncated)`);
    const stride = t.shape!.map((_, d) => t.shape!.slice(d + 1).reduce((a, x) => a * x, 1));
    out.set(name, { dtype, shape: [...t.shape!], data: gatherFloat32(data.subarray(b, e), dtype, 0, t.shape!, stride) });
  }
  return out;
}

/** Writes float32 tensors as a safetensors file (names in the given order). */
export function writeSafetensors(tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [off, off + t.data.length * 4] };
    off += t.data.length * 4;
  }
  let h = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((8 + h.length) % 8)) % 8; // the data starts 8-byte aligned, as the format's writers do
  h = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  const f32 = new Float32Array(out.buffer, 8 + h.length, off / 4);
  let p = 0;
  for (const t of tensors.values()) {
    f32.set(t.data, p);
    p += t.data.length;
  }
  return out;
}
