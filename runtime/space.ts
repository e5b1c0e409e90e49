/**
 * The search space (OFA's elastic dimensions) and the subnet config codec: validation, canonical
 * form and id, OFA's one-hot arch encoding, seeded sampling, min/max and size.
 */
import type { Arch } from './arch.js';
import { NestswapError } from './errors.js';
import { pick, type Rng } from './random.js';

/** OFA's arch dict. `ks`/`e` have one slot per block position (the sum of the stages' block slots). */
export interface SubnetConfig {
  ks: number[];
  e: number[];
  d: number[];
  image_size: number;
}

export interface SpaceSpec {
  ks_list: number[];
  expand_list: number[];
  depth_list: number[];
  image_size_list: number[];
  n_stage: number;
  /** block slots per stage when they differ from the largest depth (a stage of fixed depth) */
  stage_blocks?: number[];
}

export class Space {
  readonly ks_list: readonly number[];
  readonly expand_list: readonly number[];
  readonly depth_list: readonly number[];
  readonly image_size_list: readonly number[];
  readonly n_stage: number;
  readonly maxDepth: number;
  readonly nSlots: number;
  /** block slots per stage (the largest depth, or fewer for a stage of fixed depth) */
  readonly stageBlocks: readonly number[];
  /** first slot of each stage */
  readonly stageStart: readonly number[];
  /** stage and position of each slot */
  readonly slotStage: Int32Array;
  readonly slotPos: Int32Array;
  /** whether every stage has maxDepth slots (slot i is then in stage i / maxDepth) */
  readonly evenStages: boolean;

  constructor(spec: SpaceSpec) {
    const sorted = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
    this.ks_list = sorted(spec.ks_list);
    this.expand_list = sorted(spec.expand_list);
    this.depth_list = sorted(spec.depth_list);
    this.image_size_list = sorted(spec.image_size_list);
    this.n_stage = spec.n_stage;
    if (!this.ks_list.length || !this.expand_list.length || !this.depth_list.length || !this.image_size_list.length || spec.n_stage < 1)
      throw new NestswapError('ERR_ARCH_INVALID', 'A space needs non-empty ks_list, expand_list, depth_list, image_size_list and n_stage >= 1.');
    this.maxDepth = this.depth_list[this.depth_list.length - 1]!;
    const blocks = spec.stage_blocks ?? new Array<number>(spec.n_stage).fill(this.maxDepth);
    if (blocks.length !== spec.n_stage || blocks.some((b) => !Number.isInteger(b) || b < 1 || b > this.maxDepth))
      throw new NestswapError('ERR_ARCH_INVALID', `stage_blocks needs ${spec.n_stage} integers in 1..${this.maxDepth} (got ${JSON.stringify(blocks)}).`);
    this.stageBlocks = [...blocks];
    this.evenStages = blocks.every((b) => b === this.maxDepth);
    this.nSlots = blocks.reduce((a, b) => a + b, 0);
    const start: number[] = [];
    this.slotStage = new Int32Array(this.nSlots);
    this.slotPos = new Int32Array(this.nSlots);
    let i = 0;
    blocks.forEach((b, s) => {
      start.push(i);
      for (let j = 0; j < b; j++, i++) {
        this.slotStage[i] = s;
        this.slotPos[i] = j;
      }
    });
    this.stageStart = start;
  }

  static fromArch(arch: Arch): Space {
    const md = Math.max(...arch.space.depth_list);
    const blocks = arch.stages.map((s) => s.blocks ?? md);
    return new Space({ ...arch.space, n_stage: arch.stages.length, ...(blocks.every((b) => b === md) ? {} : { stage_blocks: blocks }) });
  }

  toJSON(): SpaceSpec {
    return {
      ks_list: [...this.ks_list],
      expand_list: [...this.expand_list],
      depth_list: [...this.depth_list],
      image_size_list: [...this.image_size_list],
      n_stage: this.n_stage,
      ...(this.evenStages ? {} : { stage_blocks: [...this.stageBlocks] }),
    };
  }

  /** Whether block slot i is active under depths d (a stage runs min(its slots, d) blocks, as OFA's runtime_depth). */
  isActive(d: readonly number[], i: number): boolean {
    return this.slotPos[i]! < d[this.slotStage[i]!]!;
  }

  /** Depths a stage accepts: the depth list, and its slot count when a stage of fixed depth has fewer. */
  depthChoices(stage: number): number[] {
    const b = this.stageBlocks[stage]!;
    return b < this.maxDepth && !this.depth_list.includes(b) ? [...this.depth_list, b] : [...this.depth_list];
  }

  /** Validates an outside value as a config of this space; returns the canonical config. */
  parse(value: unknown, source = 'subnet'): SubnetConfig {
    const fail = (field: string, msg: string): never => {
      throw new NestswapError('ERR_CONFIG_INVALID', `Invalid ${source} config: '${field}' ${msg}`, { details: { field } });
    };
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('(root)', 'must be an object {"ks", "e", "d", "image_size"}.');
    const obj = value as Record<string, unknown>;
    const allowed = ['ks', 'e', 'd', 'image_size', 'r'];
    for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(k, `is not a config field; expected one of: ks, e, d, image_size.`);
    if ('r' in obj && 'image_size' in obj) fail('r', 'and image_size are the same field; give one.');
    const list = (field: string, len: number, choices: readonly number[]): number[] => {
      const v = obj[field];
      if (!Array.isArray(v)) return fail(field, `must be an array of ${len} numbers.`);
      if (v.length !== len) fail(field, `must have ${len} entries (got ${v.length}).`);
      return v.map((x, i) => {
        if (typeof x !== 'number' || !Number.isFinite(x)) return fail(`${field}[${i}]`, `must be a number (got ${JSON.stringify(x)}).`);
        if (!choices.includes(x)) fail(`${field}[${i}]`, `is ${x}; should be one of: ${choices.join(', ')}.`);
        return x;
      });
    };
    const d = list('d', this.n_stage, this.depth_list.concat(this.stageBlocks.filter((b) => b < this.maxDepth)));
    d.forEach((x, s) => {
      if (!this.depthChoices(s).includes(x)) fail(`d[${s}]`, `is ${x}; should be one of: ${this.depthChoices(s).join(', ')}.`);
    });
    const ks = list('ks', this.nSlots, this.ks_list);
    const e = list('e', this.nSlots, this.expand_list);
    const rField = 'image_size' in obj ? 'image_size' : 'r';
    const r = obj[rField];
    if (r === undefined) fail('image_size', `is missing; should be one of: ${this.image_size_list.join(', ')}.`);
    if (typeof r !== 'number' || !Number.isInteger(r)) fail(rField, `must be an integer (got ${JSON.stringify(r)}).`);
    if (!this.image_size_list.includes(r as number)) fail(rField, `is ${String(r)}; should be one of: ${this.image_size_list.join(', ')}.`);
    return this.canonical({ ks, e, d, image_size: r as number });
  }

  /** Same config with inactive slots set to the smallest choice, so equal subnets compare equal. */
  canonical(c: SubnetConfig): SubnetConfig {
    const ks = c.ks.map((k, i) => (this.isActive(c.d, i) ? k : this.ks_list[0]!));
    const e = c.e.map((x, i) => (this.isActive(c.d, i) ? x : this.expand_list[0]!));
    return { ks, e, d: c.d.map((x, s) => Math.min(x, this.stageBlocks[s]!)), image_size: c.image_size };
  }

  /** Canonical, stable, URL-safe subnet id, e.g. `r28-d2.3.2.4-k3.5.7...-e3.6...` (active blocks only). */
  id(c: SubnetConfig): string {
    const ks: number[] = [];
    const e: number[] = [];
    for (let i = 0; i < this.nSlots; i++)
      if (this.isActive(c.d, i)) {
        ks.push(c.ks[i]!);
        e.push(c.e[i]!);
      }
    return `r${c.image_size}-d${c.d.join('.')}-k${ks.join('.')}-e${e.join('.')}`;
  }

  /** Inverse of `id`. */
  fromId(id: string): SubnetConfig {
    const m = /^r(\d+)-d([\d.]+)-k([\d.]+)-e([\d.]+)$/.exec(id);
    if (!m) throw new NestswapError('ERR_CONFIG_INVALID', `Invalid subnet id '${id}': expected r<res>-d<depths>-k<kernels>-e<expands>.`);
    const nums = (s: string) => s.split('.').map(Number);
    const d = nums(m[2]!);
    const ksA = nums(m[3]!);
    const eA = nums(m[4]!);
    const ks = new Array<number>(this.nSlots).fill(this.ks_list[0]!);
    const e = new Array<number>(this.nSlots).fill(this.expand_list[0]!);
    let k = 0;
    if (d.length !== this.n_stage) throw new NestswapError('ERR_CONFIG_INVALID', `Invalid subnet id '${id}': needs ${this.n_stage} depths.`);
    for (let i = 0; i < this.nSlots; i++)
      if (this.isActive(d, i)) {
        ks[i] = ksA[k]!;
        e[i] = eA[k]!;
        k++;
      }
    if (k !== ksA.length || k !== eA.length) throw new NestswapError('ERR_CONFIG_INVALID', `Invalid subnet id '${id}': block count does not match depths.`);
    return this.parse({ ks, e, d, image_size: Number(m[1]) }, `id '${id}'`);
  }

  min(): SubnetConfig {
    return this.uniform(this.ks_list[0]!, this.expand_list[0]!, this.depth_list[0]!, this.image_size_list[0]!);
  }

  max(): SubnetConfig {
    const last = <T>(xs: readonly T[]) => xs[xs.length - 1]!;
    return this.uniform(last(this.ks_list), last(this.expand_list), last(this.depth_list), last(this.image_size_list));
  }

  uniform(k: number, e: number, d: number, r: number): SubnetConfig {
    return this.canonical({
      ks: new Array<number>(this.nSlots).fill(k),
      e: new Array<number>(this.nSlots).fill(e),
      d: new Array<number>(this.n_stage).fill(d),
      image_size: r,
    });
  }

  sample(rng: Rng): SubnetConfig {
    const ks = Array.from({ length: this.nSlots }, () => pick(rng, this.ks_list));
    const e = Array.from({ length: this.nSlots }, () => pick(rng, this.expand_list));
    const d = Array.from({ length: this.n_stage }, () => pick(rng, this.depth_list));
    return this.canonical({ ks, e, d, image_size: pick(rng, this.image_size_list) });
  }

  /** Number of distinct subnets (as a float: OFA-MBv3 has ~2e19). */
  size(): number {
    const per = this.ks_list.length * this.expand_list.length;
    let n = this.image_size_list.length;
    for (const b of this.stageBlocks) {
      const depths = new Set(this.depth_list.map((d) => Math.min(d, b)));
      n *= [...depths].reduce((s, d) => s + per ** d, 0);
    }
    return n;
  }

  /** Number of active blocks. */
  activeBlocks(c: SubnetConfig): number {
    return c.d.reduce((s, x, i) => s + Math.min(x, this.stageBlocks[i]!), 0);
  }
}

/**
 * OFA's MobileNetArchEncoder: one-hot resolution over `imageSizeList`, then one slot per kernel
 * size for every block position, then one slot per expand ratio for every block position;
 * inactive blocks are all zero.
 */
export class ArchEncoder {
  readonly space: Space;
  readonly imageSizeList: readonly number[];
  readonly nDim: number;

  constructor(space: Space, imageSizeList: readonly number[] = space.image_size_list) {
    this.space = space;
    this.imageSizeList = [...imageSizeList];
    this.nDim = this.imageSizeList.length + space.nSlots * (space.ks_list.length + space.expand_list.length);
  }

  /** Offsets of the features (for additive objectives: feature index of each choice). */
  rIndex(r: number): number {
    const i = this.imageSizeList.indexOf(r);
    if (i < 0) throw new NestswapError('ERR_CONFIG_INVALID', `image_size ${r} is not in the encoder's list: ${this.imageSizeList.join(', ')}.`);
    return i;
  }
  kIndex(slot: number, k: number): number {
    return this.imageSizeList.length + slot * this.space.ks_list.length + this.space.ks_list.indexOf(k);
  }
  eIndex(slot: number, e: number): number {
    const { space } = this;
    return this.imageSizeList.length + space.nSlots * space.ks_list.length + slot * space.expand_list.length + space.expand_list.indexOf(e);
  }

  encodeInto(c: SubnetConfig, out: Float32Array, offset = 0): void {
    out.fill(0, offset, offset + this.nDim);
    out[offset + this.rIndex(c.image_size)] = 1;
    for (let i = 0; i < this.space.nSlots; i++) {
      if (!this.space.isActive(c.d, i)) continue;
      out[offset + this.kIndex(i, c.ks[i]!)] = 1;
      out[offset + this.eIndex(i, c.e[i]!)] = 1;
    }
  }

  encode(c: SubnetConfig): Float32Array {
    const out = new Float32Array(this.nDim);
    this.encodeInto(c, out);
    return out;
  }

  encodeBatch(cs: readonly SubnetConfig[]): Float32Array {
    const out = new Float32Array(cs.length * this.nDim);
    cs.forEach((c, i) => this.encodeInto(c, out, i * this.nDim));
    return out;
  }
}
