/**
 * Calibration images for an imported supernet: a directory of JPEG/PNG files, preprocessed as
 * Once-for-All evaluates on ImageNet (resize the shorter side to ceil(size / 0.875) with PIL's
 * antialiased bilinear filter, centre crop size × size), or a raw uint8 NCHW file of such images.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { NestswapError } from '../errors.js';

export interface CalibrationSet {
  /** uint8 NCHW, `count` images of 3 × size × size */
  data: Uint8Array;
  count: number;
  source: 'images' | 'raw';
}

const IMAGE_EXT = new Set(['.jpg', '.jpeg', '.png']);

function fail(msg: string): never {
  throw new NestswapError('ERR_CALIBRATION_INPUT', msg);
}

/** RGB planes (float, 0..255) of a decoded image. */
interface Planes {
  w: number;
  h: number;
  /** 3 planes of w*h */
  data: Float32Array;
}

function decode(path: string): Planes {
  const bytes = readFileSync(path);
  let rgba: { width: number; height: number; data: Uint8Array };
  try {
    rgba = extname(path).toLowerCase() === '.png' ? PNG.sync.read(bytes) : jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 512 });
  } catch (cause) {
    return fail(`Calibration image ${path} cannot be decoded: ${(cause as Error).message}`);
  }
  const { width: w, height: h } = rgba;
  if (!(w > 0 && h > 0)) fail(`Calibration image ${path} has no pixels.`);
  const data = new Float32Array(3 * w * h);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) data[c * w * h + i] = rgba.data[i * 4 + c]!;
  return { w, h, data };
}

/** PIL's resampling coefficients for one axis (bilinear = triangle filter, widened when shrinking). */
function coefficients(inSize: number, outSize: number): { start: Int32Array; count: Int32Array; weights: Float64Array; stride: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // bilinear support 1.0, scaled
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * stride);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.floor(center - support + 0.5));
    const hi = Math.min(inSize, Math.floor(center + support + 0.5));
    let sum = 0;
    for (let j = lo; j < hi; j++) {
      const x = Math.abs((j - center + 0.5) / filterScale);
      const wgt = x < 1 ? 1 - x : 0;
      weights[o * stride + j - lo] = wgt;
      sum += wgt;
    }
    if (sum > 0) for (let j = 0; j < hi - lo; j++) weights[o * stride + j]! /= sum;
    start[o] = lo;
    count[o] = hi - lo;
  }
  return { start, count, weights, stride };
}

const clip8 = (v: number) => Math.min(255, Math.max(0, Math.round(v)));

/** Resizes the planes to outW × outH: horizontal pass then vertical, rounded to 8 bits after each (as PIL does). */
function resize(p: Planes, outW: number, outH: number): Planes {
  const cx = coefficients(p.w, outW);
  const cy = coefficients(p.h, outH);
  const tmp = new Float32Array(3 * outW * p.h);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < p.h; y++) {
      const row = c * p.w * p.h + y * p.w;
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let j = 0; j < cx.count[x]!; j++) s += p.data[row + cx.start[x]! + j]! * cx.weights[x * cx.stride + j]!;
        tmp[c * outW * p.h + y * outW + x] = clip8(s);
      }
    }
  const out = new Float32Array(3 * outW * outH);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < outH; y++)
      for (let x = 0; x < outW; x++) {
        let s = 0;
        for (let j = 0; j < cy.count[y]!; j++) s += tmp[c * outW * p.h + (cy.start[y]! + j) * outW + x]! * cy.weights[y * cy.stride + j]!;
        out[c * outW * outH + y * outW + x] = clip8(s);
      }
  return { w: outW, h: outH, data: out };
}

/** OFA's ImageNet evaluation preprocessing of one image into `out` (uint8 CHW, size × size). */
export function preprocessImage(p: Planes, size: number, out: Uint8Array): void {
  const short = Math.ceil(size / 0.875);
  const [w, h] = p.w <= p.h ? [short, Math.floor((short * p.h) / p.w)] : [Math.floor((short * p.w) / p.h), short];
  const r = w === p.w && h === p.h ? p : resize(p, w, h);
  const top = Math.round((h - size) / 2);
  const left = Math.round((w - size) / 2);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) out[(c * size + y) * size + x] = r.data[c * w * h + (y + top) * w + x + left]!;
}

/** Reads calibration images from a directory of JPEG/PNG files or a raw uint8 NCHW file. */
export function loadCalibrationSet(src: string, size: number, limit = Infinity): CalibrationSet {
  let st;
  try {
    st = statSync(src);
  } catch {
    return fail(`Calibration source ${src} does not exist.`);
  }
  const per = 3 * size * size;
  if (st.isFile()) {
    const bytes = new Uint8Array(readFileSync(src));
    if (bytes.length === 0 || bytes.length % per !== 0)
      fail(`Calibration file ${src} has ${bytes.length} bytes: not a whole number of uint8 3×${size}×${size} images (${per} bytes each).`);
    const count = Math.min(bytes.length / per, limit);
    return { data: bytes.subarray(0, count * per), count, source: 'raw' };
  }
  const names = readdirSync(src).filter((n) => IMAGE_EXT.has(extname(n).toLowerCase())).sort();
  if (!names.length) fail(`Calibration directory ${src} holds no .jpg, .jpeg or .png image.`);
  const count = Math.min(names.length, limit);
  const data = new Uint8Array(count * per);
  for (let i = 0; i < count; i++) preprocessImage(decode(join(src, names[i]!)), size, data.subarray(i * per, (i + 1) * per));
  return { data, count, source: 'images' };
}
