/**
 * The materializer: (supernet package, subnet config) -> standalone ONNX model.
 *
 * Slices nested weights (first-N expand channels, first-d blocks per stage), applies OFA's elastic
 * kernel transformation (7x7 -> centre 5x5 x learned 25x25 matrix -> centre 3x3 x learned 9x9
 * matrix), and emits squeeze-excitation, h-swish, residuals and the internal resize/normalisation
 * so every subnet takes the package's input contract unchanged.
 *
 * BatchNorm has three forms: folded into the convolutions (deployment), kept as BatchNormalization
 * nodes (to check folding), or a calibration graph that normalises with batch statistics and
 * returns each BN's batch mean/var as outputs (OFA's recalibration, run by runtime/calibrate.ts).
 */
import { blockSlots, firstBlockResidual, headAct, midChannels, seChannels, type Activation, type Arch, type BlockSlot } from './arch.js';
import { crashPoint } from './crash.js';
import { GraphBuilder } from './onnx/graph.js';
import type { SupernetPackage } from './package.js';
import type { SubnetConfig } from './space.js';

export type BnMode = 'fold' | 'unfold' | 'calibrate';

export interface BnStats {
  mean: Float32Array;
  var: Float32Array;
}

export interface BuildOptions {
  mode?: BnMode;
  /** Recalibrated statistics by BN name; stored running statistics are used for the others. */
  stats?: ReadonlyMap<string, BnStats>;
  /** Input batch dimension: a number, or a symbolic name (default 'batch'). */
  batch?: number | string;
  /**
   * Emit onnxruntime's NCHWc layout for x86 CPUs with this block size (MLAS: 8 with AVX2, 16 with
   * AVX-512; see runtime/node/nchwc.ts): the graph onnxruntime's 'all' optimisation would make of the
   * plain one, made here, so a session loads it with optimisation 'disabled'. Folded BN only.
   */
  nchwcBlock?: number;
  /**
   * Write small depthwise convolutions as one batched MatMul (see `DepthwiseMatMul`); absent: never.
   * Plain layout only.
   */
  depthwiseMatMul?: DepthwiseMatMul;
}

/**
 * onnxruntime-web's wasm provider runs a depthwise Conv one channel at a time (im2col and a GEMV per
 * channel), which on the small late feature maps of a MobileNet costs several times the arithmetic. A
 * depthwise convolution on an H×H map is a per-channel linear map from H·H input pixels to Ho·Ho output
 * pixels: written as a MatMul over a [C, H·H, Ho·Ho] matrix it runs as one call. The matrix is Ho·Ho/k²
 * times the filter's size, so only maps of at most `maxPixels` pixels are lowered, and no layer whose
 * matrix would exceed `maxLayerBytes`. docs/browser.md has the measured speed and the bytes it adds.
 */
export interface DepthwiseMatMul {
  maxPixels: number;
  maxLayerBytes: number;
}

/** The lowering the browser agent uses on wasm (docs/browser.md: measured on fmnist-ofa). */
export const WASM_DEPTHWISE_MATMUL: DepthwiseMatMul = Object.freeze({ maxPixels: 49, maxLayerBytes: 4 << 20 });

export interface BuiltGraph {
  bytes: Uint8Array;
  /** calibrate mode: the BN names whose statistics the graph outputs, in output order (mean, var per BN). */
  bnNames: string[];
  /** calibrate mode: each BN's channel count (its outputs may be longer: padded to the NCHWc block) */
  bnChannels: number[];
  inputName: string;
  outputNames: string[];
}

export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'logits';

/** Weights of one supernet package, sliced and transformed for a subnet. */
export class SubnetWeights {
  readonly slots: BlockSlot[];
  readonly ksList: number[];
  readonly maxKs: number;
  constructor(readonly pkg: SupernetPackage) {
    this.slots = blockSlots(pkg.arch);
    this.ksList = [...pkg.arch.space.ks_list].sort((a, b) => a - b);
    this.maxKs = this.ksList[this.ksList.length - 1]!;
  }

  get arch(): Arch {
    return this.pkg.arch;
  }

  /** First `rows` rows and first `cols` columns of a [R, C, ...] tensor with `inner` trailing elements (read only: may be a view). */
  slice2(name: string, rows: number, cols: number): Float32Array {
    const t = this.pkg.tensor(name);
    const C = t.shape[1]!;
    const inner = t.shape.slice(2).reduce((a, b) => a * b, 1);
    if (cols === C) return t.data.subarray(0, rows * C * inner); // a view: read only
    const out = new Float32Array(rows * cols * inner);
    for (let r = 0; r < rows; r++) out.set(t.data.subarray(r * C * inner, (r * C + cols) * inner), r * cols * inner);
    return out;
  }

  vec(name: string, n: number): Float32Array {
    return this.pkg.tensor(name).data.subarray(0, n);
  }

  /** transformed depthwise kernels of every channel, by slot and kernel size (first-N channels slice them) */
  private readonly dwCache = new Map<string, Float32Array>();

  /**
   * OFA's get_active_filter: the depthwise kernel of `mid` channels at kernel size `ks` (a view:
   * read only). The transformation is per channel, so it is done once for all channels of a slot.
   */
  dwKernel(slot: number, mid: number, ks: number): Float32Array {
    const key = `${slot}:${ks}`;
    let all = this.dwCache.get(key);
    if (!all) {
      all = this.transformDw(slot, ks);
      this.dwCache.set(key, all);
    }
    return all.subarray(0, mid * ks * ks);
  }

  private transformDw(slot: number, ks: number): Float32Array {
    const K = this.maxKs;
    const w = this.pkg.tensor(`blocks.${slot}.dw`);
    const channels = w.shape[0]!;
    let cur = w.data;
    let src = K;
    for (let i = this.ksList.length - 1; i > 0; i--) {
      src = this.ksList[i]!;
      if (src <= ks) break;
      const t = this.ksList[i - 1]!;
      const s = (src - t) / 2;
      const m = this.pkg.tensor(`blocks.${slot}.m${src}to${t}`).data;
      const tt = t * t;
      const next = new Float32Array(channels * tt);
      const crop = new Float64Array(tt);
      for (let c = 0; c < channels; c++) {
        for (let y = 0; y < t; y++) for (let x = 0; x < t; x++) crop[y * t + x] = cur[c * src * src + (y + s) * src + (x + s)]!;
        for (let j = 0; j < tt; j++) {
          let acc = 0;
          for (let k = 0; k < tt; k++) acc += crop[k]! * m[j * tt + k]!;
          next[c * tt + j] = acc;
        }
      }
      cur = next;
    }
    return cur;
  }
}

interface ConvSpec {
  weight: Float32Array;
  dims: number[];
  stride?: number;
  group?: number;
  /** per output channel factor the weights are multiplied by as they are written (folded BatchNorm) */
  scale?: Float64Array;
}

/** What follows a convolution: an activation, and a residual input added after it (no activation then). */
interface ConvTail {
  act?: Activation | 'h_sigmoid';
  residual?: string;
}

const NCHWC = 'com.microsoft.nchwc';

/** onnxruntime's name of a fused activation in NchwcConv's `activation` attribute, with its parameters. */
function nchwcActivation(a: Activation | 'h_sigmoid'): Record<string, { floats: number[] } | string> {
  if (a === 'relu') return { activation: 'Relu' };
  if (a === 'relu6') return { activation: 'Clip', activation_params: { floats: [0, 6] } };
  if (a === 'h_swish') return { activation: 'HardSwish' };
  return { activation: 'HardSigmoid', activation_params: { floats: [1 / 6, 0.5] } };
}

/**
 * A filter [O, I, kh, kw] in onnxruntime's NCHWc order, output channels padded to `Op` and input
 * channels to `Ip` with zeros, each output channel's weights multiplied by `scale[o]` on the way
 * (folded BatchNorm; one pass over the weights). Blocked inputs (`blockedInput`) use MLAS's
 * OIHWBiBo order ([O/B][I/B][kh][kw][Bi][Bo]); depthwise filters and convolutions that read a plain
 * NCHW input use OIHWBo ([O/B][I][kh][kw][Bo]).
 */
export function reorderFilter(w: Float32Array, dims: readonly number[], Op: number, Ip: number, B: number, blockedInput: boolean, scale?: Float64Array): Float32Array {
  const [O, I, H, W] = dims as [number, number, number, number];
  const hw = H * W;
  const out = new Float32Array(Op * Ip * hw);
  // each output channel's source row is read in order; its destinations are B (or B*B) floats apart
  for (let o = 0; o < O; o++) {
    const sc = scale ? scale[o]! : 1;
    const bo = o % B;
    let src = o * I * hw;
    if (!blockedInput) {
      // dst = ((ob * Ip + i) * hw + s) * B + bo
      let d = (o - bo) * Ip * hw + bo;
      for (let end = src + I * hw; src < end; src++, d += B) out[d] = w[src]! * sc;
    } else if (hw === 1) {
      // dst = (ob * Ip + i) * B + bo: consecutive input channels are B apart across blocks too
      let d = (o - bo) * Ip + bo;
      for (let end = src + I; src < end; src++, d += B) out[d] = w[src]! * sc;
    } else {
      // dst = ((ob * Ip/B + ib) * hw + s) * B*B + bi * B + bo
      const BB = B * B;
      const d0 = (o - bo) * Ip * hw + bo;
      for (let i = 0; i < I; i++) {
        const bi = i % B;
        const d = d0 + (i - bi) * hw * B + bi * B;
        for (let s = 0; s < hw; s++) out[d + s * BB] = w[src++]! * sc;
      }
    }
  }
  return out;
}

/** Emits the parts of a subnet graph; exported so profilers can build single parts (stem, one block, head). */
export class SubnetGraphBuilder {
  readonly g: GraphBuilder;
  readonly bnNames: string[] = [];
  /** calibrate mode: each BN's channel count, in bnNames order */
  readonly bnChannels: number[] = [];
  /** calibrate mode: each BN's mean and variance outputs (padded to the block in the NCHWc layout) */
  readonly bnOutputs: { name: string; dims: number[] }[] = [];
  private readonly mode: BnMode;
  /** NCHWc block size when emitting onnxruntime's blocked layout, else 0 */
  private readonly B: number;
  /** values in the blocked layout -> their channel count (before padding to the block) */
  private readonly blocked = new Map<string, number>();
  /** Clip's bounds, shared by every ReLU6 of the graph */
  private relu6Bounds?: [string, string];
  /** the side of the main path's (square) feature map at the current point; 0 while unknown */
  private side = 0;

  constructor(
    readonly w: SubnetWeights,
    readonly opts: BuildOptions,
    name: string,
  ) {
    this.g = new GraphBuilder(name);
    this.mode = opts.mode ?? 'fold';
    this.B = opts.nchwcBlock ?? 0;
    if (this.B && (this.mode === 'unfold' || !Number.isInteger(this.B) || this.B < 2))
      throw new Error(`the NCHWc layout needs folded or calibrating BatchNorm and a block size of at least 2 (got mode ${this.mode}, block ${this.B})`);
  }

  /** Declares the side of the input feature map (a part graph that does not start at the image). */
  startAt(side: number): this {
    this.side = side;
    return this;
  }

  private pad(c: number): number {
    return Math.ceil(c / this.B) * this.B;
  }

  /** `x` in the plain NCHW layout (a ReorderOutput when it is blocked). */
  nchw(x: string): string {
    const c = this.blocked.get(x);
    if (c === undefined) return x;
    return this.g.opIn(NCHWC, 'ReorderOutput', [x], { channels: c, channels_last: { int: 0 } });
  }

  private conv(x: string, c: ConvSpec, prefix: string, bias: Float32Array | undefined, tail: ConvTail = {}): string {
    const k = c.dims[2]!;
    const p = Math.floor(k / 2);
    const group = c.group ?? 1;
    const attrs = {
      kernel_shape: [k, k],
      strides: [c.stride ?? 1, c.stride ?? 1],
      pads: [p, p, p, p],
      dilations: [1, 1],
    };
    const H = this.side;
    const Ho = H ? Math.floor((H + 2 * p - k) / (c.stride ?? 1)) + 1 : 0;
    if (k > 1 || (c.stride ?? 1) > 1) this.side = Ho; // 1×1 stride-1 convs (pointwise, SE) keep the side
    if (this.B) return this.convNchwc(x, c, prefix, bias, tail, attrs);
    let weight = c.weight;
    const scale = c.scale;
    if (scale) {
      // locals, not c.weight in the loop: specs come in several shapes and the load would not leave the loop
      const src = c.weight;
      const C = c.dims[0]!;
      const inner = src.length / C;
      weight = new Float32Array(src.length);
      for (let o = 0; o < C; o++) {
        const sc = scale[o]!;
        for (let i = o * inner, end = i + inner; i < end; i++) weight[i] = src[i]! * sc;
      }
    }
    const low = this.opts.depthwiseMatMul;
    if (low && group > 1 && group === c.dims[0] && c.dims[1] === 1 && H > 0 && H * H <= low.maxPixels && group * H * H * Ho * Ho * 4 <= low.maxLayerBytes) {
      return this.tailOf(this.depthwiseMatMul(x, weight, bias, prefix, { C: group, k, p, stride: c.stride ?? 1, H, Ho }), tail);
    }
    const inputs = [x, this.g.floatTensor(`${prefix}.weight`, weight, c.dims)];
    if (bias) inputs.push(this.g.floatTensor(`${prefix}.bias`, bias, [bias.length]));
    return this.tailOf(this.g.op('Conv', inputs, { ...attrs, group: { int: group } }), tail);
  }

  /**
   * A depthwise k×k convolution (zero padding p, stride s) on an H×H map, as x[N, C, H·H] moved to
   * [C, N, H·H], times T[C, H·H, Ho·Ho], moved back (+ bias): T holds, for each channel, which input
   * pixel feeds which output pixel with which filter tap; padding taps are simply absent. Channels
   * lead so that a batch (BN calibration) is one GEMM per channel, not one per image and channel.
   */
  private depthwiseMatMul(x: string, weight: Float32Array, bias: Float32Array | undefined, prefix: string, d: { C: number; k: number; p: number; stride: number; H: number; Ho: number }): string {
    const { C, k, p, stride, H, Ho } = d;
    const HW = H * H;
    const HoWo = Ho * Ho;
    const T = new Float32Array(C * HW * HoWo);
    for (let ch = 0; ch < C; ch++)
      for (let oy = 0; oy < Ho; oy++)
        for (let ky = 0; ky < k; ky++) {
          const iy = oy * stride - p + ky;
          if (iy < 0 || iy >= H) continue;
          for (let ox = 0; ox < Ho; ox++)
            for (let kx = 0; kx < k; kx++) {
              const ix = ox * stride - p + kx;
              if (ix < 0 || ix >= H) continue;
              T[(ch * HW + iy * H + ix) * HoWo + oy * Ho + ox] = weight[(ch * k + ky) * k + kx]!;
            }
        }
    const flat = this.g.op('Reshape', [x, this.g.int64Tensor(`${prefix}.flat`, [0, C, HW])]);
    const byChannel = this.g.op('Transpose', [flat], { perm: [1, 0, 2] });
    const mm = this.g.op('MatMul', [byChannel, this.g.floatTensor(`${prefix}.weight`, T, [C, HW, HoWo])]);
    const back = this.g.op('Transpose', [mm], { perm: [1, 0, 2] });
    const y = this.g.op('Reshape', [back, this.g.int64Tensor(`${prefix}.map`, [0, C, Ho, Ho])]);
    return bias ? this.g.op('Add', [y, this.g.floatTensor(`${prefix}.bias`, bias, [C, 1, 1])]) : y;
  }

  /**
   * The convolution as onnxruntime's CPU optimiser rewrites it for x86 (NchwcConv): filter reordered
   * and padded to the block, activation and residual addition fused. A plain NCHW input with fewer
   * channels than a block is read as it is; any other plain input is reordered first.
   */
  private convNchwc(x: string, c: ConvSpec, prefix: string, bias: Float32Array | undefined, tail: ConvTail, attrs: Record<string, number[]>): string {
    const [O, Ig] = c.dims as [number, number];
    const group = c.group ?? 1;
    const depthwise = group > 1;
    if (depthwise && (group !== O || Ig !== 1)) throw new Error(`${prefix}: only depthwise grouped convolutions have an NCHWc form`);
    const cin = Ig * group;
    const Op = this.pad(O);
    let input = x;
    let blockedInput = this.blocked.has(x);
    if (!blockedInput && (depthwise || cin >= this.B)) {
      input = this.g.opIn(NCHWC, 'ReorderInput', [x], { channels_last: { int: 0 } });
      this.blocked.set(input, cin);
      blockedInput = true;
    }
    let weight: Float32Array;
    let dims: number[];
    if (depthwise) {
      weight = reorderFilter(c.weight, c.dims, Op, 1, this.B, false, c.scale);
      dims = [Op, 1, c.dims[2]!, c.dims[3]!];
    } else {
      const Ip = blockedInput ? this.pad(cin) : cin;
      weight = reorderFilter(c.weight, c.dims, Op, Ip, this.B, blockedInput, c.scale);
      dims = [Op, Ip, c.dims[2]!, c.dims[3]!];
    }
    const b = new Float32Array(Op);
    if (bias) b.set(bias);
    const inputs = [input, this.g.floatTensor(`${prefix}.weight`, weight, dims), this.g.floatTensor(`${prefix}.bias`, b, [Op])];
    this.pushSum(inputs, tail, prefix, O);
    const y = this.g.opIn(NCHWC, 'Conv', inputs, { ...attrs, group: { int: depthwise ? Op : 1 }, ...(tail.act ? nchwcActivation(tail.act) : {}) });
    this.blocked.set(y, O);
    return y;
  }

  /** An NchwcConv's fused residual addition: its Sum input, a blocked tensor of the conv's `channels`. */
  private pushSum(inputs: string[], tail: ConvTail, prefix: string, channels: number): void {
    if (!tail.residual) return;
    if (tail.act) throw new Error(`${prefix}: a fused residual addition follows no activation`);
    if (this.blocked.get(tail.residual) !== channels) throw new Error(`${prefix}: the residual input is not a blocked tensor of ${channels} channels`);
    inputs.push(tail.residual);
  }

  /** Conv followed by BatchNorm `bn` (in the chosen form), then `tail`. */
  convBn(x: string, c: ConvSpec, bn: string, tail: ConvTail = {}): string {
    const C = c.dims[0]!;
    const eps = this.w.arch.bn_eps;
    const gamma = this.w.vec(`${bn}.weight`, C);
    const beta = this.w.vec(`${bn}.bias`, C);
    const override = this.opts.stats?.get(bn);
    const mean = override ? override.mean : this.w.vec(`${bn}.running_mean`, C);
    const variance = override ? override.var : this.w.vec(`${bn}.running_var`, C);
    if (this.mode === 'fold') {
      const scale = new Float64Array(C); // applied in double precision, as before the weights are rounded
      const bf = new Float32Array(C);
      for (let o = 0; o < C; o++) {
        const sc = gamma[o]! / Math.sqrt(variance[o]! + eps);
        scale[o] = sc;
        bf[o] = beta[o]! - mean[o]! * sc;
      }
      return this.conv(x, { ...c, scale }, bn, bf, tail);
    }
    const y = this.conv(x, c, bn, undefined);
    if (this.mode === 'calibrate' && this.B) return this.batchNormNchwc(y, C, bn, gamma, beta, eps, tail);
    let z: string;
    if (this.mode === 'unfold') {
      z = this.g.op(
        'BatchNormalization',
        [
          y,
          this.g.floatTensor(`${bn}.gamma`, Float32Array.from(gamma), [C]),
          this.g.floatTensor(`${bn}.beta`, Float32Array.from(beta), [C]),
          this.g.floatTensor(`${bn}.mean`, Float32Array.from(mean), [C]),
          this.g.floatTensor(`${bn}.var`, Float32Array.from(variance), [C]),
        ],
        { epsilon: { float: eps } },
      );
    } else {
      // calibrate: normalise with this batch's statistics and output them, in two passes as OFA's
      // set_running_statistics does (mean, then the mean of squared deviations). BatchNormalization in training
      // mode does both in one kernel but from E[y^2] - E[y]^2, whose cancellation moved recalibrated logits of
      // OFA's checkpoints by up to 2e-4 of their largest value.
      // calibrate: normalise with this batch's statistics and output them. BatchNormalization in training mode
      // does both in one kernel: with momentum 0 its running_mean/running_var outputs are the batch mean and
      // biased variance (what OFA's set_running_statistics averages). It replaced GlobalAveragePool,
      // ReduceSumSquare and an inference-mode BatchNormalization fed their results (three passes over the
      // activation and a dozen small nodes per BN), which made calibration about twice an inference.
      const [out, bMean, bVar] = this.g.opOutputs(
        'BatchNormalization',
        [
          y,
          this.g.floatTensor(`${bn}.gamma`, Float32Array.from(gamma), [C]),
          this.g.floatTensor(`${bn}.beta`, Float32Array.from(beta), [C]),
          this.g.floatTensor(`${bn}.mean`, new Float32Array(C), [C]),
          this.g.floatTensor(`${bn}.var`, new Float32Array(C).fill(1), [C]),
        ],
        { epsilon: { float: eps }, momentum: { float: 0 }, training_mode: { int: 1 } },
        [undefined, `${bn}:mean`, `${bn}:var`],
      );
      this.bnNames.push(bn);
      this.bnChannels.push(C);
      this.bnOutputs.push({ name: bMean!, dims: [C] }, { name: bVar!, dims: [C] });
      z = out!;
    }
    return this.tailOf(z, tail);
  }

  /**
   * Calibration's BatchNorm on a blocked tensor. The blocked GlobalAveragePool of `y` and of `y*y`
   * gives each image's channel means ([N, Op, 1, 1]: with one pixel the blocked order is the channel
   * order); their batch means are the batch mean and E[y^2], hence the biased variance. Normalisation,
   * activation and the residual addition then run as one depthwise 1x1 NchwcConv whose filter
   * (gamma / sqrt(var + eps)) and bias are computed in the graph. The plain calibration graph instead
   * leaves the blocked layout around every BN (onnxruntime reorders to NCHW and back) and passes over
   * the activation three times in its training-mode BatchNormalization. Padded channels stay zero
   * (their gamma is zero); the statistics are output padded, [1, Op, 1, 1].
   */
  private batchNormNchwc(y: string, C: number, bn: string, gamma: Float32Array, beta: Float32Array, eps: number, tail: ConvTail): string {
    const Op = this.pad(C);
    const g = this.g;
    const column = (name: string, v: Float32Array) => {
      const out = new Float32Array(Op);
      out.set(v);
      return g.floatTensor(name, out, [1, Op, 1, 1]);
    };
    const batchMean = (v: string, name?: string) => g.op('ReduceMean', [g.opIn(NCHWC, 'GlobalAveragePool', [v])], { axes: [0], keepdims: { int: 1 } }, name);
    const mean = batchMean(y, `${bn}:mean`);
    const ex2 = batchMean(g.op('Mul', [y, y]));
    const variance = g.op('Relu', [g.op('Sub', [ex2, g.op('Mul', [mean, mean])])], {}, `${bn}:var`);
    const inv = g.op('Div', [column(`${bn}.gamma`, gamma), g.op('Sqrt', [g.op('Add', [variance, g.scalar(`${bn}.eps`, eps)])])]);
    const shift = g.op('Sub', [column(`${bn}.beta`, beta), g.op('Mul', [mean, inv])]);
    const inputs = [y, g.op('Reshape', [inv, g.int64Tensor(`${bn}.filter`, [Op, 1, 1, 1])]), g.op('Reshape', [shift, g.int64Tensor(`${bn}.flat`, [Op])])];
    this.pushSum(inputs, tail, bn, C);
    const attrs = { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: { int: Op } };
    const z = g.opIn(NCHWC, 'Conv', inputs, { ...attrs, ...(tail.act ? nchwcActivation(tail.act) : {}) });
    this.blocked.set(z, C);
    this.bnNames.push(bn);
    this.bnChannels.push(C);
    this.bnOutputs.push({ name: mean, dims: [1, Op, 1, 1] }, { name: variance, dims: [1, Op, 1, 1] });
    return z;
  }

  /** `tail` as separate nodes after `y` (the plain layout; the NCHWc conv fuses it instead). */
  private tailOf(y: string, tail: ConvTail): string {
    const z = tail.act ? this.act(y, tail.act) : y;
    return tail.residual ? this.g.op('Add', [tail.residual, z]) : z;
  }

  act(x: string, a: Activation | 'h_sigmoid'): string {
    if (a === 'relu') return this.g.op('Relu', [x]);
    if (a === 'relu6') {
      this.relu6Bounds ??= [this.g.scalar('relu6.min', 0), this.g.scalar('relu6.max', 6)];
      return this.g.op('Clip', [x, ...this.relu6Bounds]);
    }
    if (a === 'h_swish') return this.g.op('HardSwish', [x]);
    return this.g.op('HardSigmoid', [x], { alpha: { float: 1 / 6 }, beta: { float: 0.5 } });
  }

  private globalAveragePool(x: string): string {
    const c = this.blocked.get(x);
    if (c === undefined) return this.g.op('GlobalAveragePool', [x]);
    const y = this.g.opIn(NCHWC, 'GlobalAveragePool', [x]);
    this.blocked.set(y, c);
    return y;
  }

  /**
   * Bilinear resize of one axis exactly as PyTorch's interpolate (align_corners=False) computes it:
   * the scale in/out in float32, the source position `scale * (o + 0.5) - 0.5` (clamped at 0) in
   * double, its fraction rounded to float32; two Gathers and their weighted sum. onnxruntime's Resize differs from it by up to 2.5e-5 per pixel, which BN
   * recalibration amplifies past 1e-4 of the logits; widths first, then heights, as PyTorch does.
   */
  private resizeAxis(x: string, axis: 2 | 3, size: number, out: number): string {
    const f = Math.fround;
    const scale = f(size / out);
    const i0: number[] = [];
    const i1: number[] = [];
    const l0 = new Float32Array(out);
    const l1 = new Float32Array(out);
    for (let o = 0; o < out; o++) {
      const src = Math.max(0, scale * (o + 0.5) - 0.5);
      const k = Math.floor(src);
      i0.push(k);
      i1.push(k < size - 1 ? k + 1 : k);
      l1[o] = Math.min(Math.max(f(src - k), 0), 1);
      l0[o] = f(1 - l1[o]!);
    }
    const dims = axis === 3 ? [out] : [out, 1];
    const name = axis === 3 ? 'resize.w' : 'resize.h';
    const gather = (idx: number[]) => this.g.op('Gather', [x, this.g.int64Tensor(`${name}.index`, idx)], { axis: { int: axis } });
    const a = this.g.op('Mul', [gather(i0), this.g.floatTensor(`${name}.l0`, l0, dims)]);
    const b = this.g.op('Mul', [gather(i1), this.g.floatTensor(`${name}.l1`, l1, dims)]);
    return this.g.op('Add', [a, b]);
  }

  /** Resize to the subnet's resolution (when it differs from the contract) and normalise. */
  preprocess(x: string, r: number): string {
    const a = this.w.arch;
    let y = x;
    if (r !== a.input.width) y = this.resizeAxis(y, 3, a.input.width, r);
    if (r !== a.input.height) y = this.resizeAxis(y, 2, a.input.height, r);
    const C = a.input.channels;
    this.side = r;
    y = this.g.op('Sub', [y, this.g.floatTensor('input.mean', Float32Array.from(a.input.mean), [1, C, 1, 1])]);
    return this.g.op('Div', [y, this.g.floatTensor('input.std', Float32Array.from(a.input.std), [1, C, 1, 1])]);
  }

  stem(x: string): string {
    const a = this.w.arch;
    const t = this.w.pkg.tensor('stem.conv.weight');
    return this.convBn(x, { weight: t.data, dims: t.shape, stride: a.stem.stride }, 'stem.bn', { act: a.stem.act });
  }

  firstBlock(x: string): string {
    const a = this.w.arch;
    const dw = this.w.pkg.tensor('first.dw.weight');
    const y = this.convBn(x, { weight: dw.data, dims: dw.shape, stride: a.first_block.stride, group: dw.shape[0]! }, 'first.dw_bn', { act: a.first_block.act });
    const pw = this.w.pkg.tensor('first.proj.weight');
    const residual = firstBlockResidual(a);
    return this.convBn(y, { weight: pw.data, dims: pw.shape }, 'first.proj_bn', residual ? { residual: x } : {});
  }

  block(x: string, slot: BlockSlot, ks: number, e: number): string {
    const a = this.w.arch;
    const i = slot.index;
    const mid = midChannels(a, slot.inChannels, e);
    const cin = slot.inChannels;
    let y = this.convBn(x, { weight: this.w.slice2(`blocks.${i}.expand`, mid, cin), dims: [mid, cin, 1, 1] }, `blocks.${i}.expand_bn`, { act: slot.act });
    y = this.convBn(y, { weight: this.w.dwKernel(i, mid, ks), dims: [mid, 1, ks, ks], stride: slot.stride, group: mid }, `blocks.${i}.dw_bn`, { act: slot.act });
    if (slot.se) {
      const se = seChannels(a, mid);
      const s = this.globalAveragePool(y);
      const r = this.conv(s, { weight: this.w.slice2(`blocks.${i}.se_reduce_w`, se, mid), dims: [se, mid, 1, 1] }, `blocks.${i}.se_reduce`, Float32Array.from(this.w.vec(`blocks.${i}.se_reduce_b`, se)), { act: 'relu' });
      const ex = this.conv(r, { weight: this.w.slice2(`blocks.${i}.se_expand_w`, mid, se), dims: [mid, se, 1, 1] }, `blocks.${i}.se_expand`, Float32Array.from(this.w.vec(`blocks.${i}.se_expand_b`, mid)), { act: 'h_sigmoid' });
      // the channel-wise scale broadcasts over H and W in the plain layout (onnxruntime's optimiser does the same)
      y = this.g.op('Mul', [this.nchw(y), this.nchw(ex)]);
    }
    const proj = { weight: this.w.slice2(`blocks.${i}.proj`, slot.outChannels, mid), dims: [slot.outChannels, mid, 1, 1] };
    return this.convBn(y, proj, `blocks.${i}.proj_bn`, slot.residual ? { residual: x } : {});
  }

  finalExpand(x: string): string {
    const fe = this.w.pkg.tensor('final_expand.weight');
    return this.convBn(x, { weight: fe.data, dims: fe.shape }, 'final_bn', { act: headAct(this.w.arch) });
  }

  head(x: string, outName: string): string {
    let y = this.globalAveragePool(this.finalExpand(x));
    if (this.w.arch.feature_mix !== null) {
      const fm = this.w.pkg.tensor('feature_mix.weight');
      y = this.conv(y, { weight: fm.data, dims: fm.shape }, 'feature_mix', undefined, { act: headAct(this.w.arch) });
    }
    y = this.g.op('Flatten', [this.nchw(y)], { axis: { int: 1 } });
    const cw = this.w.pkg.tensor('classifier.weight');
    const cb = this.w.pkg.tensor('classifier.bias');
    return this.g.op(
      'Gemm',
      [y, this.g.floatTensor('classifier.weight', cw.data, cw.shape), this.g.floatTensor('classifier.bias', cb.data, cb.shape)],
      { transB: { int: 1 } },
      outName,
    );
  }
}

/** Builds the ONNX graph of one subnet. The config must already be validated (Space.parse). */
export function buildSubnet(weights: SubnetWeights, cfg: SubnetConfig, opts: BuildOptions = {}): BuiltGraph {
  const a = weights.arch;
  const b = new SubnetGraphBuilder(weights, opts, `${a.family}:${weights.pkg.space.id(cfg)}`);
  const batch = opts.batch ?? 'batch';
  if (opts.mode !== 'calibrate') crashPoint('materialize');
  const x0 = b.g.reserve(INPUT_NAME);
  let x = b.firstBlock(b.stem(b.preprocess(x0, cfg.image_size)));
  for (const slot of weights.slots) {
    if (slot.position >= cfg.d[slot.stage]!) continue;
    x = b.block(x, slot, cfg.ks[slot.index]!, cfg.e[slot.index]!);
  }
  const inputs = [{ name: INPUT_NAME, dims: [batch, a.input.channels, a.input.height, a.input.width] }];
  if (opts.mode === 'calibrate') {
    b.finalExpand(x); // the last BatchNorm; the rest of the head has none
    return { bytes: b.g.build(inputs, b.bnOutputs), bnNames: b.bnNames, bnChannels: b.bnChannels, inputName: INPUT_NAME, outputNames: b.bnOutputs.map((o) => o.name) };
  }
  b.head(x, OUTPUT_NAME);
  const bytes = b.g.build(inputs, [{ name: OUTPUT_NAME, dims: [batch, a.classes] }], {
    'nestswap.family': a.family,
    'nestswap.subnet': weights.pkg.space.id(cfg),
    'nestswap.bn': opts.mode ?? 'fold',
  });
  return { bytes, bnNames: [], bnChannels: [], inputName: INPUT_NAME, outputNames: [OUTPUT_NAME] };
}
