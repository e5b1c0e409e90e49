/**
 * Static compute cost of a subnet in OFA's convention: MACs of every convolution (stem, blocks,
 * SE convs on 1×1, final expand, feature mix) and the classifier; parameters = conv/linear weight
 * elements (no biases, no BatchNorm). Pooling and activations are free.
 */
import { blockSlots, convOut, headWidth, midChannels, seChannels, type Arch, type BlockSlot } from './arch.js';
import type { SubnetConfig } from './space.js';

/** Per-part costs of one block at a given input spatial size. */
export interface BlockCost {
  macs: number;
  params: number;
  outSize: number;
}

/** MACs and weights of one MBConv block (expand 1×1, depthwise k×k, optional SE, project 1×1). */
export function blockCost(arch: Arch, slot: BlockSlot, inSize: number, ks: number, expand: number): BlockCost {
  const mid = midChannels(arch, slot.inChannels, expand);
  const outSize = convOut(inSize, ks, slot.stride);
  const inPix = inSize * inSize;
  const outPix = outSize * outSize;
  let macs = inPix * slot.inChannels * mid + outPix * mid * ks * ks + outPix * mid * slot.outChannels;
  let params = slot.inChannels * mid + mid * ks * ks + mid * slot.outChannels;
  if (slot.se) {
    const se = seChannels(arch, mid);
    macs += 2 * mid * se;
    params += 2 * mid * se;
  }
  return { macs, params, outSize };
}

/** Costs that do not depend on the elastic choices, split at the blocks: before (stem + first block) and after (head). */
export interface FixedCost {
  macs: number;
  params: number;
  /** spatial size entering the first elastic block */
  blockInSize: number;
}

export function fixedCost(arch: Arch, imageSize: number): FixedCost {
  const stemOut = convOut(imageSize, arch.stem.kernel, arch.stem.stride);
  const c0 = arch.input.channels;
  const s = arch.stem.out;
  const fb = arch.first_block;
  const fbOut = convOut(stemOut, fb.kernel, fb.stride);
  let macs = stemOut * stemOut * c0 * arch.stem.kernel ** 2 * s;
  let params = c0 * arch.stem.kernel ** 2 * s;
  // first block: expand 1 = depthwise + linear projection
  macs += fbOut * fbOut * s * fb.kernel ** 2 + fbOut * fbOut * s * fb.out;
  params += s * fb.kernel ** 2 + s * fb.out;
  // head: final expand at the last feature map is added by headCost (size depends on blocks' strides only)
  return { macs, params, blockInSize: fbOut };
}

/** Final expand (1×1 at the last feature map), feature mix (1×1 on 1×1) and classifier. */
export function headCost(arch: Arch, lastSize: number): { macs: number; params: number } {
  const last = arch.stages[arch.stages.length - 1]!.width;
  const fe = arch.final_expand;
  const mix = arch.feature_mix === null ? 0 : fe * arch.feature_mix;
  const cls = headWidth(arch) * arch.classes;
  return { macs: lastSize * lastSize * last * fe + mix + cls, params: last * fe + mix + cls };
}

/**
 * Spatial size entering each block slot at a resolution. Strides sit on each stage's first slot,
 * which is always active, so this does not depend on the depths.
 */
export function slotInputSizes(arch: Arch, imageSize: number): number[] {
  const slots = blockSlots(arch);
  let size = fixedCost(arch, imageSize).blockInSize;
  const sizes: number[] = [];
  for (const slot of slots) {
    sizes.push(size);
    // the output size does not depend on the kernel for 'same' padding; use the smallest
    size = convOut(size, arch.space.ks_list[0]!, slot.stride);
  }
  sizes.push(size);
  return sizes;
}

function total(arch: Arch, cfg: SubnetConfig, field: 'macs' | 'params'): number {
  const slots = blockSlots(arch);
  const sizes = slotInputSizes(arch, cfg.image_size);
  let sum = fixedCost(arch, cfg.image_size)[field];
  for (const slot of slots) {
    if (slot.position >= cfg.d[slot.stage]!) continue;
    const i = slot.index;
    sum += blockCost(arch, slot, sizes[i]!, cfg.ks[i]!, cfg.e[i]!)[field];
  }
  return sum + headCost(arch, sizes[sizes.length - 1]!)[field];
}

/** Multiply-accumulates of one forward pass of one image. */
export function countMacs(arch: Arch, cfg: SubnetConfig): number {
  return total(arch, cfg, 'macs');
}

/** Conv and linear weight elements (biases and BatchNorm excluded). */
export function countParams(arch: Arch, cfg: SubnetConfig): number {
  return total(arch, cfg, 'params');
}

/**
 * Every trainable parameter, as PyTorch's `sum(p.numel() for p in net.parameters())` counts OFA's
 * extracted subnet: weights, biases (SE, classifier) and BatchNorm's weight and bias.
 */
export function countTrainableParams(arch: Arch, cfg: SubnetConfig): number {
  let n = countParams(arch, cfg);
  n += 2 * arch.stem.out + 2 * arch.stem.out + 2 * arch.first_block.out; // stem BN, first block's two BNs
  for (const slot of blockSlots(arch)) {
    if (slot.position >= cfg.d[slot.stage]!) continue;
    const mid = midChannels(arch, slot.inChannels, cfg.e[slot.index]!);
    n += 2 * mid + 2 * mid + 2 * slot.outChannels;
    if (slot.se) n += seChannels(arch, mid) + mid;
  }
  return n + 2 * arch.final_expand + arch.classes;
}
