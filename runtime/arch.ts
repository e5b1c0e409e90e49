/**
 * Architecture descriptions (`arch.json`, format `nestswap.arch/1`): the one definition of a supernet
 * family that both the PyTorch recipe (models/supernet.py) and this materializer read.
 */
import { z } from 'zod';
import { NestswapError } from './errors.js';

const Act = z.enum(['relu', 'relu6', 'h_swish']);
const positiveInt = z.number().int().positive();

export const ArchSchema = z
  .object({
    format: z.literal('nestswap.arch/1'),
    family: z.string().min(1),
    description: z.string().optional(),
    input: z
      .object({
        channels: positiveInt,
        height: positiveInt,
        width: positiveInt,
        scale: z.string().optional(),
        mean: z.array(z.number()),
        std: z.array(z.number().positive()),
        labels: z.array(z.string()).nullable().optional(),
      })
      .strict(),
    space: z
      .object({
        ks_list: z.array(z.number().int().positive().refine((k) => k % 2 === 1, 'kernel sizes must be odd')).min(1),
        expand_list: z.array(z.number().positive()).min(1),
        depth_list: z.array(positiveInt).min(1),
        image_size_list: z.array(positiveInt).min(1),
      })
      .strict(),
    stem: z.object({ out: positiveInt, kernel: positiveInt, stride: positiveInt, act: Act }).strict(),
    first_block: z
      .object({
        out: positiveInt,
        kernel: positiveInt,
        stride: positiveInt,
        expand: z.literal(1),
        act: Act,
        se: z.literal(false),
        /** identity shortcut around the block (default: stride 1 and equal widths; OFA's ProxylessNAS has none) */
        residual: z.boolean().optional(),
      })
      .strict(),
    stages: z
      .array(
        z
          .object({
            width: positiveInt,
            stride: positiveInt,
            act: Act,
            se: z.boolean(),
            /** block slots in this stage (default: the largest depth); fewer makes a stage of fixed depth */
            blocks: positiveInt.optional(),
          })
          .strict(),
      )
      .min(1),
    /** 1x1 conv + BN + activation before pooling (OFA-MBv3's final_expand_layer, ProxylessNAS's feature_mix_layer) */
    final_expand: positiveInt,
    /** 1x1 conv + activation after pooling, without BN (OFA-MBv3's feature_mix_layer); null: none */
    feature_mix: positiveInt.nullable(),
    /** activation of the head's convolutions (default h_swish) */
    head_act: Act.optional(),
    classes: positiveInt,
    dropout: z.number().min(0).max(1),
    se_reduction: positiveInt,
    channel_divisible: positiveInt,
    bn_eps: z.number().positive(),
    /** BatchNorm momentum during training (documentation: inference does not use it) */
    bn_momentum: z.number().min(0).max(1).optional(),
    /** the width multiplier the widths were made with, and where the architecture comes from */
    width_mult: z.number().positive().optional(),
    origin: z.string().optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.input.mean.length !== a.input.channels || a.input.std.length !== a.input.channels)
      ctx.addIssue({ code: 'custom', message: 'input.mean and input.std need one value per channel' });
    if (a.input.labels && a.input.labels.length !== a.classes)
      ctx.addIssue({ code: 'custom', message: `input.labels has ${a.input.labels.length} names for ${a.classes} classes` });
    const md = Math.max(...a.space.depth_list);
    a.stages.forEach((s, i) => {
      if (s.blocks !== undefined && s.blocks > md) ctx.addIssue({ code: 'custom', message: `stages.${i}.blocks is ${s.blocks}; at most the largest depth ${md}` });
    });
  });

export type Arch = z.infer<typeof ArchSchema>;
export type Activation = z.infer<typeof Act>;

export function parseArch(value: unknown, source = 'arch'): Arch {
  const r = ArchSchema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new NestswapError('ERR_ARCH_INVALID', `Invalid architecture in ${source}: ${issues}`);
  }
  return r.data;
}

/** Once-for-All's make_divisible (round to a multiple of `divisor`, never more than 10% down). */
export function makeDivisible(v: number, divisor: number, minVal = divisor): number {
  let n = Math.max(minVal, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

/** Python's round() (banker's rounding), which OFA applies before make_divisible. */
export function pyRound(v: number): number {
  const f = Math.floor(v);
  const diff = v - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** OFA-MobileNetV3 widths at a width multiplier (1.0, 1.2, ...), as OFAMobileNetV3 computes them. */
export function scaleMbv3Arch(base: Arch, widthMult: number, family: string): Arch {
  const d = base.channel_divisible;
  const w = (v: number) => makeDivisible(v * widthMult, d);
  return {
    ...base,
    family,
    stem: { ...base.stem, out: w(base.stem.out) },
    first_block: { ...base.first_block, out: w(base.first_block.out) },
    stages: base.stages.map((s) => ({ ...s, width: w(s.width) })),
    final_expand: w(base.final_expand),
    feature_mix: base.feature_mix === null ? null : w(base.feature_mix),
    width_mult: widthMult,
  };
}

/** Static facts about one block slot of the supernet. */
export interface BlockSlot {
  index: number;
  stage: number;
  /** position inside the stage, 0-based */
  position: number;
  inChannels: number;
  outChannels: number;
  stride: number;
  act: Activation;
  se: boolean;
  residual: boolean;
}

export function maxDepth(arch: Arch): number {
  return Math.max(...arch.space.depth_list);
}

export function blockSlots(arch: Arch): BlockSlot[] {
  const slots: BlockSlot[] = [];
  const md = maxDepth(arch);
  let cin = arch.first_block.out;
  arch.stages.forEach((st, s) => {
    for (let j = 0; j < (st.blocks ?? md); j++) {
      const stride = j === 0 ? st.stride : 1;
      slots.push({
        index: slots.length,
        stage: s,
        position: j,
        inChannels: cin,
        outChannels: st.width,
        stride,
        act: st.act,
        se: st.se,
        residual: stride === 1 && cin === st.width,
      });
      cin = st.width;
    }
  });
  return slots;
}

export function midChannels(arch: Arch, inChannels: number, expand: number): number {
  return makeDivisible(pyRound(inChannels * expand), arch.channel_divisible);
}

export function seChannels(arch: Arch, mid: number): number {
  return makeDivisible(Math.floor(mid / arch.se_reduction), arch.channel_divisible);
}

/** Output size of a conv with 'same' padding k // 2. */
export function convOut(size: number, kernel: number, stride: number): number {
  const pad = Math.floor(kernel / 2);
  return Math.floor((size + 2 * pad - kernel) / stride) + 1;
}

/** Every tensor a supernet package of this architecture holds, with its shape (PyTorch state_dict names). */
export function supernetTensorShapes(arch: Arch): Map<string, number[]> {
  const t = new Map<string, number[]>();
  const bn = (name: string, c: number) => {
    for (const k of ['weight', 'bias', 'running_mean', 'running_var']) t.set(`${name}.${k}`, [c]);
  };
  const cin = arch.input.channels;
  t.set('stem.conv.weight', [arch.stem.out, cin, arch.stem.kernel, arch.stem.kernel]);
  bn('stem.bn', arch.stem.out);
  t.set('first.dw.weight', [arch.stem.out, 1, arch.first_block.kernel, arch.first_block.kernel]);
  bn('first.dw_bn', arch.stem.out);
  t.set('first.proj.weight', [arch.first_block.out, arch.stem.out, 1, 1]);
  bn('first.proj_bn', arch.first_block.out);
  const ks = [...arch.space.ks_list].sort((a, b) => a - b);
  const K = ks[ks.length - 1]!;
  const maxE = Math.max(...arch.space.expand_list);
  for (const s of blockSlots(arch)) {
    const i = s.index;
    const mid = midChannels(arch, s.inChannels, maxE);
    t.set(`blocks.${i}.expand`, [mid, s.inChannels, 1, 1]);
    bn(`blocks.${i}.expand_bn`, mid);
    t.set(`blocks.${i}.dw`, [mid, 1, K, K]);
    for (let j = ks.length - 1; j > 0; j--) t.set(`blocks.${i}.m${ks[j]}to${ks[j - 1]}`, [ks[j - 1]! ** 2, ks[j - 1]! ** 2]);
    bn(`blocks.${i}.dw_bn`, mid);
    if (s.se) {
      const se = seChannels(arch, mid);
      t.set(`blocks.${i}.se_reduce_w`, [se, mid, 1, 1]);
      t.set(`blocks.${i}.se_reduce_b`, [se]);
      t.set(`blocks.${i}.se_expand_w`, [mid, se, 1, 1]);
      t.set(`blocks.${i}.se_expand_b`, [mid]);
    }
    t.set(`blocks.${i}.proj`, [s.outChannels, mid, 1, 1]);
    bn(`blocks.${i}.proj_bn`, s.outChannels);
  }
  const last = arch.stages[arch.stages.length - 1]!.width;
  t.set('final_expand.weight', [arch.final_expand, last, 1, 1]);
  bn('final_bn', arch.final_expand);
  if (arch.feature_mix !== null) t.set('feature_mix.weight', [arch.feature_mix, arch.final_expand, 1, 1]);
  t.set('classifier.weight', [arch.classes, headWidth(arch)]);
  t.set('classifier.bias', [arch.classes]);
  return t;
}

/** Channels entering the classifier. */
export function headWidth(arch: Arch): number {
  return arch.feature_mix ?? arch.final_expand;
}

/** Activation of the head's convolutions. */
export function headAct(arch: Arch): Activation {
  return arch.head_act ?? 'h_swish';
}

/** Whether the fixed first block has an identity shortcut. */
export function firstBlockResidual(arch: Arch): boolean {
  return arch.first_block.residual ?? (arch.first_block.stride === 1 && arch.stem.out === arch.first_block.out);
}

/** Block slots per stage. */
export function stageBlocks(arch: Arch): number[] {
  const md = maxDepth(arch);
  return arch.stages.map((s) => s.blocks ?? md);
}
