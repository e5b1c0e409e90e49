/**
 * NumPy `.npy` bodies for `POST /v1/infer` (`application/x-npy`): what `np.save(f, x)` writes, read
 * as float32 samples, and logits written back as one (`np.load(io.BytesIO(body))`). Format versions
 * 1.0–3.0, C order, dtype `<f4` (used in place, no copy, on little-endian hosts: numpy pads the
 * header so the data starts at a multiple of 64) or `<f8` (NumPy's default; converted).
 */
import { HttpError } from './http-error.js';

const MAGIC = Buffer.from('\x93NUMPY', 'latin1');
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function bad(message: string): HttpError {
  return new HttpError(400, 'ERR_BAD_NPY', `Body is not a .npy array: ${message}`);
}

/** The header dict's fields (`descr`, `fortran_order`, `shape`). */
function header(text: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shape === undefined) throw bad(`header ${JSON.stringify(text.trim().slice(0, 120))} lacks descr, fortran_order or shape.`);
  const dims = shape
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (!dims.every((s) => /^\d+$/.test(s))) throw bad(`shape (${shape}) is not a tuple of integers.`);
  return { descr, fortran: fortran === 'True', shape: dims.map(Number) };
}

/** The samples of a `.npy` body: float32 values (a view of `buf` where it can) and the array's shape. */
export function parseNpy(buf: Buffer): { data: Float32Array; shape: number[] } {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw bad('it does not start with \\x93NUMPY.');
  const major = buf[6]!;
  if (major < 1 || major > 3) throw bad(`format version ${major}.${buf[7]} is not 1, 2 or 3.`);
  const at = major === 1 ? 10 : 12;
  if (buf.length < at) throw bad('the header is cut short.');
  const len = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  if (at + len > buf.length) throw bad(`the header says ${len} bytes; the body has ${buf.length - at} after the preamble.`);
  const h = header(buf.toString(major === 3 ? 'utf8' : 'latin1', at, at + len));
  const size = h.descr === '<f4' ? 4 : h.descr === '<f8' ? 8 : 0;
  if (size === 0) throw new HttpError(400, 'ERR_INPUT', `.npy dtype '${h.descr}' is not supported; send float32 ('<f4', x.astype(np.float32)) or float64 ('<f8').`);
  if (h.fortran && h.shape.filter((n) => n > 1).length > 1) throw new HttpError(400, 'ERR_INPUT', '.npy array is in Fortran order; send it C-ordered (np.ascontiguousarray(x)).');
  const count = h.shape.reduce((a, b) => a * b, 1);
  const start = at + len;
  if (buf.length - start !== count * size) throw bad(`shape (${h.shape.join(', ')}) of '${h.descr}' needs ${count * size} data bytes; the body has ${buf.length - start}.`);
  const off = buf.byteOffset + start;
  if (size === 4 && LITTLE_ENDIAN && off % 4 === 0) return { data: new Float32Array(buf.buffer, off, count), shape: h.shape };
  const view = new DataView(buf.buffer, off, count * size);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = size === 4 ? view.getFloat32(i * 4, true) : view.getFloat64(i * 8, true);
  return { data, shape: h.shape };
}

/** A `.npy` (version 1.0) of float32 `data` with `shape`, the header padded to 64 bytes as numpy does. */
export function npyBytes(data: Float32Array, shape: readonly number[]): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + dict.length + 1) % 64);
  const head = Buffer.alloc(10);
  MAGIC.copy(head);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(dict.length + (pad % 64) + 1, 8);
  const text = Buffer.from(`${dict}${' '.repeat(pad % 64)}\n`, 'latin1');
  const body = Buffer.alloc(data.byteLength);
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
  return Buffer.concat([head, text, body]);
}
