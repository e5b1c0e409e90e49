/**
 * onnxruntime's NCHWc layout, emitted by the materializer instead of by onnxruntime's optimiser.
 *
 * On x86 CPUs onnxruntime's 'all' optimisation rewrites convolutions into its blocked NCHWc form
 * (com.microsoft.nchwc ops, filters reordered by MLAS): most of why a fmnist-ofa subnet runs in
 * ~2 ms instead of ~9, and most of why creating its session takes ~20-25 ms instead of ~9. The
 * materializer can write that form directly (BuildOptions.nchwcBlock), and the session then loads
 * with optimisation 'disabled'. Whether this onnxruntime has the NCHWc kernels, and with which block
 * size (MLAS: 8 with AVX2, 16 with AVX-512; none on other CPUs), is found by running a probe, and a
 * package's graphs are checked against onnxruntime's own optimisation once before they are used.
 */
import * as ort from 'onnxruntime-node';
import { calibrateBn, type CalibrateOptions } from '../calibrate.js';
import { buildSubnet, reorderFilter, type SubnetWeights } from '../materialize.js';
import { GraphBuilder } from '../onnx/graph.js';
import type { SupernetPackage } from '../package.js';
import type { Backend } from '../session.js';
import { mulberry32 } from '../random.js';
import { nodeBackend } from './ort-node.js';

export type NchwcSupport = { block: number } | { block: 0; reason: string };

/** Block sizes MLAS uses on x86 (AVX-512, AVX2/AVX); tried in this order. */
const CANDIDATE_BLOCKS = [16, 8] as const;
const PROBE_CHANNELS = 32;

/**
 * A 1x1 convolution of 32 channels on a 2x2 input, as a plain graph and as an NCHWc graph whose
 * filter is reordered for block size `block`: with the wrong block size the filter is read in the
 * wrong order and the outputs differ.
 */
function probeGraphs(block: number): { plain: Uint8Array; nchwc: Uint8Array } {
  const C = PROBE_CHANNELS;
  const rand = mulberry32(11);
  const w = Float32Array.from({ length: C * C }, () => rand() - 0.5);
  const dims = [1, C, 2, 2];
  const attrs = { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: { int: 1 } };
  const plain = new GraphBuilder('nchwc-probe-plain');
  const y0 = plain.op('Conv', [plain.reserve('x'), plain.floatTensor('w', w, [C, C, 1, 1])], attrs, 'y');
  const n = new GraphBuilder('nchwc-probe');
  const xr = n.opIn('com.microsoft.nchwc', 'ReorderInput', [n.reserve('x')], { channels_last: { int: 0 } });
  const yb = n.opIn('com.microsoft.nchwc', 'Conv', [xr, n.floatTensor('w', reorderFilter(w, [C, C, 1, 1], C, C, block, true), [C, C, 1, 1])], attrs);
  const y1 = n.opOutputs('ReorderOutput', [yb], { channels: C, channels_last: { int: 0 } }, ['y'], 'com.microsoft.nchwc')[0]!;
  return {
    plain: plain.build([{ name: 'x', dims }], [{ name: y0, dims }]),
    nchwc: n.build([{ name: 'x', dims }], [{ name: y1, dims }]),
  };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return a.length === b.length ? diff / Math.max(scale, 1e-12) : Infinity;
}

async function outputsOf(bytes: Uint8Array, level: 'all' | 'disabled', input: Float32Array, dims: number[], threads?: number): Promise<Float32Array> {
  // severity 4: a graph that fails here is reported through the returned reason, not onnxruntime's log
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: level, logSeverityLevel: 4, ...(threads ? { intraOpNumThreads: threads } : {}) });
  try {
    const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', input, dims) });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

let support: Promise<NchwcSupport> | undefined;

/** This process's onnxruntime-node: NCHWc block size, or why the layout cannot be used (found once). */
export function nchwcSupport(): Promise<NchwcSupport> {
  support ??= (async (): Promise<NchwcSupport> => {
    if (process.arch !== 'x64' && process.arch !== 'ia32') return { block: 0, reason: `onnxruntime has NCHWc kernels on x86 only (this CPU: ${process.arch})` };
    const input = Float32Array.from({ length: PROBE_CHANNELS * 4 }, (_, i) => Math.sin(i));
    const dims = [1, PROBE_CHANNELS, 2, 2];
    let reason = 'no block size gave the plain convolution\'s outputs';
    for (const block of CANDIDATE_BLOCKS) {
      const g = probeGraphs(block);
      try {
        const want = await outputsOf(g.plain, 'disabled', input, dims, 1);
        const got = await outputsOf(g.nchwc, 'disabled', input, dims, 1);
        if (maxRelDiff(want, got) <= 1e-5) return { block };
      } catch (e) {
        reason = `onnxruntime could not run an NCHWc graph: ${(e as Error).message.split('\n')[0]}`;
      }
    }
    return { block: 0, reason };
  })();
  return support;
}

/**
 * Checks that a package's NCHWc graphs compute what onnxruntime's own optimisation of the plain
 * graphs computes: the smallest and the largest subnet (every kind of part: stem, depthwise and
 * pointwise convolutions, SE, residuals, head; the largest kernel and expansion) on one input,
 * max difference <= 1e-4 of the largest logit. Resolves to the reason when they disagree.
 */
export async function verifyNchwc(weights: SubnetWeights, block: number): Promise<string | null> {
  const space = weights.pkg.space;
  const { channels: c, height: h, width: w } = weights.arch.input;
  const dims = [1, c, h, w];
  const input = Float32Array.from({ length: c * h * w }, (_, i) => ((i * 37) % 255) / 255);
  for (const cfg of [space.min(), space.max()]) {
    try {
      const want = await outputsOf(buildSubnet(weights, cfg, { mode: 'fold', batch: 1 }).bytes, 'all', input, dims, 1);
      const got = await outputsOf(buildSubnet(weights, cfg, { mode: 'fold', batch: 1, nchwcBlock: block }).bytes, 'disabled', input, dims, 1);
      const d = maxRelDiff(want, got);
      if (!(d <= 1e-4)) return `subnet ${space.id(cfg)}: NCHWc graph differs from onnxruntime's optimisation by ${d.toExponential(2)} of the largest logit`;
    } catch (e) {
      return `subnet ${space.id(cfg)}: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  return null;
}

/**
 * Checks that a package's NCHWc calibration graphs give the statistics of the plain calibration
 * graph run with onnxruntime's optimisation: the smallest and the largest subnet on one batch of the
 * calibration set, every BatchNorm's mean within 1e-4 of its standard deviation and its variance
 * within 1e-4 relative, run on `backend` (onnxruntime-node's, in this thread or a worker). Resolves to
 * the reason when they disagree.
 */
export async function verifyNchwcCalibration(weights: SubnetWeights, block: number, backend: Backend = nodeBackend): Promise<string | null> {
  const space = weights.pkg.space;
  const c = weights.pkg.manifest.calibration;
  const opts = { images: Math.min(c.count, c.batch) };
  for (const cfg of [space.min(), space.max()]) {
    try {
      const want = await calibrateBn(weights, cfg, backend, opts);
      const got = await calibrateBn(weights, cfg, backend, { ...opts, nchwcBlock: block });
      for (const [bn, s] of want) {
        const o = got.get(bn);
        if (!o || o.mean.length !== s.mean.length) return `subnet ${space.id(cfg)}: the NCHWc calibration graph has no statistics for ${bn}`;
        for (let i = 0; i < s.mean.length; i++) {
          const sd = Math.sqrt(s.var[i]!) + 1e-6;
          const dm = Math.abs(s.mean[i]! - o.mean[i]!) / sd;
          const dv = Math.abs(s.var[i]! - o.var[i]!) / (s.var[i]! + 1e-12);
          if (!(dm <= 1e-4 && dv <= 1e-4))
            return `subnet ${space.id(cfg)}: NCHWc calibration differs at ${bn} channel ${i} (mean by ${dm.toExponential(2)} of its std, variance by ${dv.toExponential(2)})`;
        }
      }
    } catch (e) {
      return `subnet ${space.id(cfg)}: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  return null;
}

const calibrationLayouts = new WeakMap<SupernetPackage, Promise<CalibrateOptions>>();

/**
 * How this process calibrates a package on onnxruntime's CPU provider: `{ nchwcBlock }` when the
 * NCHWc calibration graphs are available and pass verifyNchwcCalibration, else `{}` (the plain
 * graph, optimised by onnxruntime). Found once per package; the check (four one-batch calibrations)
 * runs on `backend`, e.g. the worker the calibrations themselves run in.
 */
export function nchwcCalibration(weights: SubnetWeights, backend: Backend = nodeBackend): Promise<CalibrateOptions> {
  let p = calibrationLayouts.get(weights.pkg);
  if (!p) {
    p = (async () => {
      const { block } = await nchwcSupport();
      if (!block) return {};
      return (await verifyNchwcCalibration(weights, block, backend)) === null ? { nchwcBlock: block } : {};
    })();
    calibrationLayouts.set(weights.pkg, p);
  }
  return p;
}
