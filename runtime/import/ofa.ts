/**
 * Once-for-All checkpoints -> nestswap supernets. OFA names its nets
 * `ofa_<mbv3|proxyless>_d<depths>_e<expands>_k<kernels>_w<width>` (e.g. ofa_mbv3_d234_e346_k357_w1.2);
 * the id decides the architecture (OFAMobileNetV3 / OFAProxylessNASNets at that width multiplier,
 * widths by OFA's make_divisible), the checkpoint supplies the weights and the class count, and
 * every tensor is checked against the shape that architecture needs.
 */
import { blockSlots, makeDivisible, parseArch, supernetTensorShapes, type Arch } from '../arch.js';
import type { StateDict } from '../checkpoint/index.js';
import { NestswapError } from '../errors.js';
import type { TensorData } from '../package.js';

export type OfaKind = 'mbv3' | 'proxyless';

export interface OfaNet {
  id: string;
  kind: OfaKind;
  depth_list: number[];
  expand_list: number[];
  ks_list: number[];
  width: number;
}

const NET_ID = /^ofa_(mbv3|proxyless)_d(\d+)_e(\d+)_k(\d+)_w(\d+(?:\.\d+)?)$/;

export const IMAGENET_MEAN = Object.freeze([0.485, 0.456, 0.406]);
export const IMAGENET_STD = Object.freeze([0.229, 0.224, 0.225]);
/** OFA's default resolutions (ImageNet): 128..224 step 4 */
export const OFA_IMAGE_SIZES: readonly number[] = Object.freeze(Array.from({ length: 25 }, (_, i) => 128 + 4 * i));

export function parseOfaNetId(id: string): OfaNet {
  const m = NET_ID.exec(id);
  const digits = (s: string) => [...s].map(Number);
  if (!m)
    throw new NestswapError(
      'ERR_IMPORT_NET',
      `Unknown OFA net '${id}': expected ofa_<mbv3|proxyless>_d<depths>_e<expands>_k<kernels>_w<width>, e.g. ofa_mbv3_d234_e346_k357_w1.0 or ofa_proxyless_d234_e346_k357_w1.3.`,
    );
  const net: OfaNet = { id, kind: m[1] as OfaKind, depth_list: digits(m[2]!), expand_list: digits(m[3]!), ks_list: digits(m[4]!), width: Number(m[5]) };
  if (net.ks_list.some((k) => k % 2 === 0) || net.depth_list.some((d) => d < 1) || net.expand_list.some((e) => e < 1) || !(net.width > 0))
    throw new NestswapError('ERR_IMPORT_NET', `Unknown OFA net '${id}': kernel sizes must be odd, depths and expand ratios at least 1, the width positive.`);
  return net;
}

export interface OfaArchOptions {
  classes: number;
  imageSizeList?: readonly number[];
  labels?: string[] | null;
  family?: string;
}

/** The architecture OFA's code builds for a net id (OFAMobileNetV3 / OFAProxylessNASNets). */
export function ofaArch(net: OfaNet, opts: OfaArchOptions): Arch {
  const w = (v: number) => makeDivisible(v * net.width, 8);
  const sizes = [...(opts.imageSizeList ?? OFA_IMAGE_SIZES)].sort((a, b) => a - b);
  const native = sizes[sizes.length - 1]!;
  const common = {
    format: 'nestswap.arch/1' as const,
    family: opts.family ?? net.id.replaceAll('_', '-'),
    description: `Once-for-All's ${net.id} (${net.kind === 'mbv3' ? 'OFAMobileNetV3' : 'OFAProxylessNASNets'}), imported from its checkpoint.`,
    input: { channels: 3, height: native, width: native, scale: 'RGB pixel values / 255, in [0, 1]', mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD], labels: opts.labels ?? null },
    space: { ks_list: net.ks_list, expand_list: net.expand_list, depth_list: net.depth_list, image_size_list: sizes },
    classes: opts.classes,
    dropout: 0.1,
    se_reduction: 4,
    channel_divisible: 8,
    width_mult: net.width,
    origin: net.id,
  };
  if (net.kind === 'mbv3') {
    const acts = ['relu', 'relu', 'h_swish', 'h_swish', 'h_swish'] as const;
    const se = [false, true, false, true, true];
    const strides = [2, 2, 2, 1, 2];
    return parseArch(
      {
        ...common,
        stem: { out: w(16), kernel: 3, stride: 2, act: 'h_swish' },
        first_block: { out: w(16), kernel: 3, stride: 1, expand: 1, act: 'relu', se: false },
        stages: [24, 40, 80, 112, 160].map((c, i) => ({ width: w(c), stride: strides[i]!, act: acts[i]!, se: se[i]! })),
        final_expand: w(960),
        feature_mix: w(1280),
        head_act: 'h_swish',
        bn_eps: 1e-5,
        bn_momentum: 0.1,
      },
      net.id,
    );
  }
  const strides = [2, 2, 2, 1, 2, 1];
  return parseArch(
    {
      ...common,
      stem: { out: w(32), kernel: 3, stride: 2, act: 'relu6' },
      first_block: { out: w(16), kernel: 3, stride: 1, expand: 1, act: 'relu6', se: false, residual: false },
      stages: [24, 40, 80, 96, 192, 320].map((c, i) => ({ width: w(c), stride: strides[i]!, act: 'relu6', se: false, ...(i === 5 ? { blocks: 1 } : {}) })),
      final_expand: w(1280),
      feature_mix: null,
      head_act: 'relu6',
      bn_eps: 1e-3,
      bn_momentum: 0.1,
    },
    net.id,
  );
}

/** nestswap tensor name -> OFA state_dict name, for every tensor of the architecture. */
export function ofaTensorNames(arch: Arch, kind: OfaKind): Map<string, string> {
  const map = new Map<string, string>();
  const bn = (ours: string, theirs: string) => {
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) map.set(`${ours}.${k}`, `${theirs}.${k}`);
  };
  map.set('stem.conv.weight', 'first_conv.conv.weight');
  bn('stem.bn', 'first_conv.bn');
  map.set('first.dw.weight', 'blocks.0.conv.depth_conv.conv.weight');
  bn('first.dw_bn', 'blocks.0.conv.depth_conv.bn');
  map.set('first.proj.weight', 'blocks.0.conv.point_linear.conv.weight');
  bn('first.proj_bn', 'blocks.0.conv.point_linear.bn');
  const ks = [...arch.space.ks_list].sort((a, b) => a - b);
  for (const s of blockSlots(arch)) {
    const o = `blocks.${s.index}`;
    const t = `blocks.${s.index + 1}.conv`;
    map.set(`${o}.expand`, `${t}.inverted_bottleneck.conv.conv.weight`);
    bn(`${o}.expand_bn`, `${t}.inverted_bottleneck.bn.bn`);
    map.set(`${o}.dw`, `${t}.depth_conv.conv.conv.weight`);
    for (let j = ks.length - 1; j > 0; j--) map.set(`${o}.m${ks[j]}to${ks[j - 1]}`, `${t}.depth_conv.conv.${ks[j]}to${ks[j - 1]}_matrix`);
    bn(`${o}.dw_bn`, `${t}.depth_conv.bn.bn`);
    if (s.se) {
      map.set(`${o}.se_reduce_w`, `${t}.depth_conv.se.fc.reduce.weight`);
      map.set(`${o}.se_reduce_b`, `${t}.depth_conv.se.fc.reduce.bias`);
      map.set(`${o}.se_expand_w`, `${t}.depth_conv.se.fc.expand.weight`);
      map.set(`${o}.se_expand_b`, `${t}.depth_conv.se.fc.expand.bias`);
    }
    map.set(`${o}.proj`, `${t}.point_linear.conv.conv.weight`);
    bn(`${o}.proj_bn`, `${t}.point_linear.bn.bn`);
  }
  const head = kind === 'mbv3' ? 'final_expand_layer' : 'feature_mix_layer';
  map.set('final_expand.weight', `${head}.conv.weight`);
  bn('final_bn', `${head}.bn`);
  if (arch.feature_mix !== null) map.set('feature_mix.weight', 'feature_mix_layer.conv.weight');
  map.set('classifier.weight', 'classifier.linear.weight');
  map.set('classifier.bias', 'classifier.linear.bias');
  return map;
}

export interface ImportedWeights {
  arch: Arch;
  tensors: Map<string, TensorData>;
  /** checkpoint tensors the net does not use (BN's num_batches_tracked is not counted) */
  unused: string[];
}

export interface ImportOptions {
  imageSizeList?: readonly number[];
  labels?: string[] | null;
  family?: string;
  source?: string;
}

/** Maps an OFA state_dict onto the named net's architecture, checking every tensor's presence and shape. */
export function importOfaStateDict(sd: StateDict, netId: string, opts: ImportOptions = {}): ImportedWeights {
  const net = parseOfaNetId(netId);
  const source = opts.source ?? 'checkpoint';
  const cls = sd.get('classifier.linear.weight');
  if (!cls || cls.shape.length !== 2)
    throw new NestswapError('ERR_CHECKPOINT_TENSOR', `${source} has no classifier.linear.weight [classes, features]: it is not a checkpoint of ${netId}.`);
  const arch = ofaArch(net, { classes: cls.shape[0]!, ...opts });
  const names = ofaTensorNames(arch, net.kind);
  const shapes = supernetTensorShapes(arch);
  const tensors = new Map<string, TensorData>();
  const missing: string[] = [];
  for (const [ours, shape] of shapes) {
    const theirs = names.get(ours)!;
    const t = sd.get(theirs);
    if (!t) {
      missing.push(theirs);
      continue;
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new NestswapError('ERR_CHECKPOINT_SHAPE', `${source}: tensor '${theirs}' has shape [${t.shape.join(', ')}]; ${netId} needs [${shape.join(', ')}] (is this the checkpoint of another net or width?).`, {
        details: { tensor: theirs, expected: shape, actual: t.shape },
      });
    tensors.set(ours, { shape, data: t.data });
  }
  if (missing.length)
    throw new NestswapError('ERR_CHECKPOINT_TENSOR', `${source} lacks ${missing.length} tensor(s) ${netId} needs, e.g. '${missing.slice(0, 3).join("', '")}'.`, {
      details: { missing: missing.slice(0, 20), count: missing.length },
    });
  const used = new Set(names.values());
  const unused = [...sd.keys()].filter((k) => !used.has(k) && !k.endsWith('num_batches_tracked'));
  return { arch, tensors, unused };
}
