/**
 * The distinct network parts of a search space and single-part ONNX graphs, for latency profiling.
 *
 * A subnet is 'pre' (resize + normalise + stem + first block, per resolution) + its active blocks +
 * 'head' (final expand, pool, feature mix, classifier, per final feature size). Blocks are keyed by
 * OFA's LUT key, which holds everything that decides their cost (in/out shape, mid channels, kernel,
 * stride, residual, SE, activation), so identical blocks in different slots or resolutions share
 * one measurement.
 */
import { blockSlots, type Arch, type BlockSlot } from './arch.js';
import { subnetLatencyKeys } from './latency-table.js';
import { INPUT_NAME, SubnetGraphBuilder, SubnetWeights, type BuildOptions } from './materialize.js';
import { GraphBuilder } from './onnx/graph.js';
import type { SubnetConfig } from './space.js';
import { slotInputSizes } from './cost.js';

export type PartKind = 'pre' | 'block' | 'head';

export interface PartSpec {
  kind: PartKind;
  /** OFA key for blocks; `pre-…` / `head-…` keys for the fixed parts */
  key: string;
  /** input dims of the part graph (batch 1) */
  inDims: number[];
  /** pre: resolution; block: the first slot (and choices) with this key; head: final feature size */
  resolution?: number;
  slot?: number;
  ks?: number;
  e?: number;
}

/** Keys of every part a subnet at resolution r can use: pre, head, and per slot × ks × expand. */
export interface ResolutionParts {
  resolution: number;
  pre: string;
  head: string;
  /** block key by [slot][ks index][expand index] (ks/expand sorted ascending) */
  blocks: string[][][];
}

export interface SpaceParts {
  ksList: number[];
  expandList: number[];
  /** distinct parts, in a stable order (pre, blocks, head per resolution as first seen) */
  parts: PartSpec[];
  byResolution: Map<number, ResolutionParts>;
}

const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);

export function preKey(arch: Arch, r: number): string {
  const i = arch.input;
  const s = slotInputSizes(arch, r)[0]!;
  return `pre-input:${i.height}x${i.width}x${i.channels}-resize:${r}-output:${s}x${s}x${arch.first_block.out}`;
}

export function headKey(arch: Arch, lastSize: number): string {
  const last = arch.stages[arch.stages.length - 1]!.width;
  return `head-input:${lastSize}x${lastSize}x${last}-output:${arch.classes}`;
}

/** Enumerates the distinct parts of `resolutions` of a space. */
export function enumerateParts(arch: Arch, resolutions: readonly number[]): SpaceParts {
  const ksList = sorted(arch.space.ks_list);
  const expandList = sorted(arch.space.expand_list);
  const md = Math.max(...arch.space.depth_list);
  const nSlots = blockSlots(arch).length;
  const seen = new Map<string, PartSpec>();
  const add = (p: PartSpec) => {
    if (!seen.has(p.key)) seen.set(p.key, p);
  };
  const byResolution = new Map<number, ResolutionParts>();
  const slots = blockSlots(arch);
  for (const r of resolutions) {
    const sizes = slotInputSizes(arch, r);
    const pre = preKey(arch, r);
    add({ kind: 'pre', key: pre, inDims: [1, arch.input.channels, arch.input.height, arch.input.width], resolution: r });
    const blocks: string[][][] = Array.from({ length: nSlots }, () => ksList.map(() => expandList.map(() => '')));
    ksList.forEach((k, ki) =>
      expandList.forEach((e, ei) => {
        const cfg: SubnetConfig = {
          ks: new Array<number>(nSlots).fill(k),
          e: new Array<number>(nSlots).fill(e),
          d: new Array<number>(arch.stages.length).fill(md),
          image_size: r,
        };
        const keys = subnetLatencyKeys(arch, cfg);
        for (let i = 0; i < nSlots; i++) {
          const key = keys[2 + i]!;
          blocks[i]![ki]![ei] = key;
          add({ kind: 'block', key, inDims: [1, slots[i]!.inChannels, sizes[i]!, sizes[i]!], slot: i, ks: k, e });
        }
      }),
    );
    const last = sizes[sizes.length - 1]!;
    const head = headKey(arch, last);
    add({ kind: 'head', key: head, inDims: [1, arch.stages[arch.stages.length - 1]!.width, last, last], resolution: last });
    byResolution.set(r, { resolution: r, pre, head, blocks });
  }
  return { ksList, expandList, parts: [...seen.values()], byResolution };
}

/** A one-part ONNX graph (BN folded with the stored statistics: values do not change the timing). */
export function buildPartGraph(weights: SubnetWeights, part: PartSpec, graph: Pick<BuildOptions, 'depthwiseMatMul'> = {}): Uint8Array {
  const b = new SubnetGraphBuilder(weights, { mode: 'fold', ...graph }, `part:${part.key}`).startAt(part.inDims[2] ?? 0);
  const x = b.g.reserve(INPUT_NAME);
  let y: string;
  let outDims: number[];
  const a = weights.arch;
  if (part.kind === 'pre') {
    y = b.firstBlock(b.stem(b.preprocess(x, part.resolution!)));
    const s = slotInputSizes(a, part.resolution!)[0]!;
    outDims = [1, a.first_block.out, s, s];
  } else if (part.kind === 'block') {
    const slot: BlockSlot = weights.slots[part.slot!]!;
    y = b.block(x, slot, part.ks!, part.e!);
    const s = Math.floor((part.inDims[2]! + 2 * Math.floor(part.ks! / 2) - part.ks!) / slot.stride) + 1;
    outDims = [1, slot.outChannels, s, s];
  } else {
    y = b.head(x, 'logits');
    outDims = [1, a.classes];
  }
  return b.g.build([{ name: INPUT_NAME, dims: part.inDims }], [{ name: y, dims: outDims }]);
}

/**
 * The cheapest graph that still crosses the JS/native boundary (one tiny Relu): its median run time
 * is the fixed per-run cost every isolated part pays and a whole subnet pays only once.
 */
export function buildBaselineGraph(): Uint8Array {
  const g = new GraphBuilder('baseline');
  const x = g.reserve(INPUT_NAME);
  const y = g.op('Relu', [x]);
  return g.build([{ name: INPUT_NAME, dims: [1, 1, 1, 1] }], [{ name: y, dims: [1, 1, 1, 1] }]);
}

/** A 1×1 Conv on [1, 3, 8, 8]: the smallest useful model to check that an execution provider works. */
export function buildProbeGraph(): Uint8Array {
  const g = new GraphBuilder('probe');
  const x = g.reserve(INPUT_NAME);
  const w = g.floatTensor('w', new Float32Array(4 * 3).fill(0.5), [4, 3, 1, 1]);
  const y = g.op('Conv', [x, w], { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0] }, 'output');
  return g.build([{ name: INPUT_NAME, dims: [1, 3, 8, 8] }], [{ name: y, dims: [1, 4, 8, 8] }]);
}
