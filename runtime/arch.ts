/**
 * Architecture descriptions (`arch.json`, format `nestswap.arch/1`): the one definition of a supernet
 * family that both the PyTorch recipe (models/supernet.py) and this materializer read.
 */
import { z } from 'zod';
import { NestswapError } from './errors.js';

const Act = z.enum(['relu', 'h_swish']);
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
      })
      .strict(),
    stages: z.array(z.object({ width: positiveInt, stride: positiveInt, act: Act, se: z.boolean() }).strict()).min(1),
    final_expand: positiveInt,
    feature_mix: positiveInt,
    classes: positiveInt,
    dropout: z.number().min(0).max(1),
    se_reduction: positiveInt,
    channel_divisible: positiveInt,
    bn_eps: z.number().positive(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.input.mean.length !== a.input.channels || a.input.std.length !== a.input.channels)
      ctx.addIssue({ code: 'custom', message: 'input.mean and input.std need one value per channel' });
    if (a.input.labels && a.input.labels.length !== a.classes)
      ctx.addIssue({ code: 'custom', message: `input.labels has ${a.input.labels.length} names for ${a.classes} classes` });
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
    feature_mix: w(base.feature_mix),
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
    for (let j = 0; j < md; j++) {
      const stride = j === 0 ? st.stride : 1;
      slots.push({
        index: s * md + j,
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
