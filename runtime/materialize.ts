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
import { blockSlots, midChannels, seChannels, type Activation, type Arch, type BlockSlot } from './arch.js';
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
}

export interface BuiltGraph {
  bytes: Uint8Array;
  /** calibrate mode: the BN names whose statistics the graph outputs, in output order (mean, var per BN). */
  bnNames: string[];
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

  /** First `rows` rows and first `cols` columns of a [R, C, ...] tensor with `inner` trailing elements. */
  slice2(name: string, rows: number, cols: number): Float32Array {
    const t = this.pkg.tensor(name);
    const C = t.shape[1]!;
    const inner = t.shape.slice(2).reduce((a, b) => a * b, 1);
    const out = new Float32Array(rows * cols * inner);
    if (cols === C) {
      out.set(t.data.subarray(0, rows * C * inner));
      return out;
    }
    for (let r = 0; r < rows; r++) out.set(t.data.subarray(r * C * inner, (r * C + cols) * inner), r * cols * inner);
    return out;
  }

  vec(name: string, n: number): Float32Array {
    return this.pkg.tensor(name).data.subarray(0, n);
  }

  /** OFA's get_active_filter: the depthwise kernel of `mid` channels at kernel size `ks`. */
  dwKernel(slot: number, mid: number, ks: number): Float32Array {
    const K = this.maxKs;
    const w = this.pkg.tensor(`blocks.${slot}.dw`).data;
    let cur = w.slice(0, mid * K * K);
    let src = K;
    for (let i = this.ksList.length - 1; i > 0; i--) {
      src = this.ksList[i]!;
      if (src <= ks) break;
      const t = this.ksList[i - 1]!;
      const s = (src - t) / 2;
      const m = this.pkg.tensor(`blocks.${slot}.m${src}to${t}`).data;
      const tt = t * t;
      const next = new Float32Array(mid * tt);
      const crop = new Float64Array(tt);
      for (let c = 0; c < mid; c++) {
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
  bias?: Float32Array;
}

/** Emits the parts of a subnet graph; exported so profilers can build single parts (stem, one block, head). */
export class SubnetGraphBuilder {
  readonly g: GraphBuilder;
  readonly bnNames: string[] = [];
  readonly bnOutputs: { name: string; channels: number }[] = [];
  private readonly mode: BnMode;

  constructor(
    readonly w: SubnetWeights,
    readonly opts: BuildOptions,
    name: string,
  ) {
    this.g = new GraphBuilder(name);
    this.mode = opts.mode ?? 'fold';
  }

  private conv(x: string, c: ConvSpec, prefix: string, bias?: Float32Array): string {
    const k = c.dims[2]!;
    const p = Math.floor(k / 2);
    const inputs = [x, this.g.floatTensor(`${prefix}.weight`, c.weight, c.dims)];
    if (bias) inputs.push(this.g.floatTensor(`${prefix}.bias`, bias, [bias.length]));
    return this.g.op('Conv', inputs, {
      kernel_shape: [k, k],
      strides: [c.stride ?? 1, c.stride ?? 1],
      pads: [p, p, p, p],
      group: { int: c.group ?? 1 },
      dilations: [1, 1],
    });
  }

  /** Conv followed by BatchNorm `bn` (in the chosen form). */
  convBn(x: string, c: ConvSpec, bn: string): string {
    const C = c.dims[0]!;
    const eps = this.w.arch.bn_eps;
    const gamma = this.w.vec(`${bn}.weight`, C);
    const beta = this.w.vec(`${bn}.bias`, C);
    const override = this.opts.stats?.get(bn);
    const mean = override ? override.mean : this.w.vec(`${bn}.running_mean`, C);
    const variance = override ? override.var : this.w.vec(`${bn}.running_var`, C);
    if (this.mode === 'fold') {
      const inner = c.weight.length / C;
      const wf = new Float32Array(c.weight.length);
      const bf = new Float32Array(C);
      for (let o = 0; o < C; o++) {
        const scale = gamma[o]! / Math.sqrt(variance[o]! + eps);
        for (let i = 0; i < inner; i++) wf[o * inner + i] = c.weight[o * inner + i]! * scale;
        bf[o] = beta[o]! - mean[o]! * scale;
      }
      return this.conv(x, { ...c, weight: wf }, bn, bf);
    }
    const y = this.conv(x, c, bn);
    if (this.mode === 'unfold') {
      return this.g.op(
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
    }
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
    this.bnOutputs.push({ name: bMean!, channels: C }, { name: bVar!, channels: C });
    return out!;
  }

  act(x: string, a: Activation | 'h_sigmoid'): string {
    if (a === 'relu') return this.g.op('Relu', [x]);
    if (a === 'h_swish') return this.g.op('HardSwish', [x]);
    return this.g.op('HardSigmoid', [x], { alpha: { float: 1 / 6 }, beta: { float: 0.5 } });
  }

  /** Resize to the subnet's resolution (when it differs from the contract) and normalise. */
  preprocess(x: string, r: number): string {
    const a = this.w.arch;
    let y = x;
    if (r !== a.input.height || r !== a.input.width) {
      const nc = this.g.op('Slice', [this.g.op('Shape', [x]), this.g.int64Tensor('nc.start', [0]), this.g.int64Tensor('nc.end', [2])]);
      const sizes = this.g.op('Concat', [nc, this.g.int64Tensor('resize.hw', [r, r])], { axis: { int: 0 } });
      y = this.g.op('Resize', [x, '', '', sizes], { mode: 'linear', coordinate_transformation_mode: 'pytorch_half_pixel' });
    }
    const C = a.input.channels;
    y = this.g.op('Sub', [y, this.g.floatTensor('input.mean', Float32Array.from(a.input.mean), [1, C, 1, 1])]);
    return this.g.op('Div', [y, this.g.floatTensor('input.std', Float32Array.from(a.input.std), [1, C, 1, 1])]);
  }

  stem(x: string): string {
    const a = this.w.arch;
    const t = this.w.pkg.tensor('stem.conv.weight');
    const y = this.convBn(x, { weight: t.data, dims: t.shape, stride: a.stem.stride }, 'stem.bn');
    return this.act(y, a.stem.act);
  }

  firstBlock(x: string): string {
    const a = this.w.arch;
    const dw = this.w.pkg.tensor('first.dw.weight');
    let y = this.convBn(x, { weight: dw.data, dims: dw.shape, stride: a.first_block.stride, group: dw.shape[0]! }, 'first.dw_bn');
    y = this.act(y, a.first_block.act);
    const pw = this.w.pkg.tensor('first.proj.weight');
    y = this.convBn(y, { weight: pw.data, dims: pw.shape }, 'first.proj_bn');
    const residual = a.first_block.stride === 1 && a.stem.out === a.first_block.out;
    return residual ? this.g.op('Add', [x, y]) : y;
  }

  block(x: string, slot: BlockSlot, ks: number, e: number): string {
    const a = this.w.arch;
    const i = slot.index;
    const mid = midChannels(a, slot.inChannels, e);
    const cin = slot.inChannels;
    let y = this.convBn(x, { weight: this.w.slice2(`blocks.${i}.expand`, mid, cin), dims: [mid, cin, 1, 1] }, `blocks.${i}.expand_bn`);
    y = this.act(y, slot.act);
    y = this.convBn(y, { weight: this.w.dwKernel(i, mid, ks), dims: [mid, 1, ks, ks], stride: slot.stride, group: mid }, `blocks.${i}.dw_bn`);
    y = this.act(y, slot.act);
    if (slot.se) {
      const se = seChannels(a, mid);
      const s = this.g.op('GlobalAveragePool', [y]);
      const r = this.conv(s, { weight: this.w.slice2(`blocks.${i}.se_reduce_w`, se, mid), dims: [se, mid, 1, 1] }, `blocks.${i}.se_reduce`, Float32Array.from(this.w.vec(`blocks.${i}.se_reduce_b`, se)));
      const ex = this.conv(this.act(r, 'relu'), { weight: this.w.slice2(`blocks.${i}.se_expand_w`, mid, se), dims: [mid, se, 1, 1] }, `blocks.${i}.se_expand`, Float32Array.from(this.w.vec(`blocks.${i}.se_expand_b`, mid)));
      y = this.g.op('Mul', [y, this.act(ex, 'h_sigmoid')]);
    }
    y = this.convBn(y, { weight: this.w.slice2(`blocks.${i}.proj`, slot.outChannels, mid), dims: [slot.outChannels, mid, 1, 1] }, `blocks.${i}.proj_bn`);
    return slot.residual ? this.g.op('Add', [x, y]) : y;
  }

  head(x: string, outName: string): string {
    const fe = this.w.pkg.tensor('final_expand.weight');
    let y = this.act(this.convBn(x, { weight: fe.data, dims: fe.shape }, 'final_bn'), 'h_swish');
    y = this.g.op('GlobalAveragePool', [y]);
    const fm = this.w.pkg.tensor('feature_mix.weight');
    y = this.act(this.conv(y, { weight: fm.data, dims: fm.shape }, 'feature_mix'), 'h_swish');
    y = this.g.op('Flatten', [y], { axis: { int: 1 } });
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
  const x0 = b.g.reserve(INPUT_NAME);
  let x = b.firstBlock(b.stem(b.preprocess(x0, cfg.image_size)));
  for (const slot of weights.slots) {
    if (slot.position >= cfg.d[slot.stage]!) continue;
    x = b.block(x, slot, cfg.ks[slot.index]!, cfg.e[slot.index]!);
  }
  const inputs = [{ name: INPUT_NAME, dims: [batch, a.input.channels, a.input.height, a.input.width] }];
  if (opts.mode === 'calibrate') {
    b.head(x, OUTPUT_NAME); // kept so the graph mirrors the inference one; its output is not requested
    const outs = b.bnOutputs.map((o) => ({ name: o.name, dims: [o.channels] }));
    return { bytes: b.g.build(inputs, outs), bnNames: b.bnNames, inputName: INPUT_NAME, outputNames: outs.map((o) => o.name) };
  }
  b.head(x, OUTPUT_NAME);
  const bytes = b.g.build(inputs, [{ name: OUTPUT_NAME, dims: [batch, a.classes] }], {
    'nestswap.family': a.family,
    'nestswap.subnet': weights.pkg.space.id(cfg),
    'nestswap.bn': opts.mode ?? 'fold',
  });
  return { bytes, bnNames: [], inputName: INPUT_NAME, outputNames: [OUTPUT_NAME] };
}
