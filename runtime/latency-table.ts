/**
 * OFA's latency lookup tables: one `<resolution>_lookup_table.yaml` per resolution mapping part keys
 * (`Conv-input:224x224x3-output:112x112x16`, `expanded_conv-input:...-expand:72-kernel:5-stride:2-idskip:0-se:1-hs:0`, ...)
 * to `{count, mean, var}` in ms (OFA's published files carry `std`; both are read). Latency of a
 * subnet = sum of the means of its parts. Text in, text out: file access is the caller's.
 */
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { blockSlots, convOut, headWidth, midChannels, type Arch } from './arch.js';
import { NestswapError } from './errors.js';
import { buildEfficiencyModel, type EfficiencyModel } from './search/efficiency.js';
import type { SubnetConfig } from './space.js';

export interface LatencyEntry {
  count: number;
  mean: number;
  var?: number;
  std?: number;
}

export interface LatencyTable {
  resolution: number;
  entries: Map<string, LatencyEntry>;
  /** top-level keys starting with '_' (our own additions: thread count, EP, calibration, ...) */
  meta?: Record<string, unknown>;
}

/** Tables by resolution. */
export type LatencyTables = ReadonlyMap<number, LatencyTable>;

const invalid = (msg: string, details?: Record<string, unknown>, cause?: unknown): NestswapError =>
  new NestswapError('ERR_LATENCY_TABLE_INVALID', msg, {
    ...(details ? { details } : {}),
    ...(cause === undefined ? {} : { cause }),
  });

export function latencyTableFileName(resolution: number): string {
  return `${resolution}_lookup_table.yaml`;
}

/** Resolution of a `<r>_lookup_table.yaml` file name, or undefined for other names. */
export function resolutionOfFileName(name: string): number | undefined {
  const m = /^(\d+)_lookup_table\.ya?ml$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

const nonNegative = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

export function parseLatencyTable(text: string, resolution: number, source = latencyTableFileName(resolution)): LatencyTable {
  if (!Number.isInteger(resolution) || resolution <= 0) throw invalid(`Invalid latency table ${source}: resolution ${resolution} must be a positive integer.`);
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 0 });
  } catch (cause) {
    throw invalid(`Invalid latency table ${source}: not YAML (${(cause as Error).message.split('\n')[0]}).`, { source }, cause);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw invalid(`Invalid latency table ${source}: expected a mapping of part keys to {count, mean, var}.`, { source });
  const entries = new Map<string, LatencyEntry>();
  const meta: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(doc as Record<string, unknown>)) {
    if (key.startsWith('_')) {
      meta[key] = v;
      continue;
    }
    const bad = (why: string): never => {
      throw invalid(`Invalid latency table ${source}: entry '${key}' ${why}`, { source, key });
    };
    if (!/^[A-Za-z_0-9]+-input:/.test(key)) bad('is not an OFA part key (<Part>-input:HxWxC-...).');
    if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('must be a mapping {count, mean, var}.');
    const o = v as Record<string, unknown>;
    if (!nonNegative(o.mean)) bad(`needs a finite mean >= 0 in ms (got ${JSON.stringify(o.mean)}).`);
    const entry: LatencyEntry = { count: 0, mean: o.mean as number };
    if (o.count !== undefined) {
      if (!nonNegative(o.count) || !Number.isInteger(o.count)) bad(`count must be a non-negative integer (got ${JSON.stringify(o.count)}).`);
      entry.count = o.count as number;
    }
    if (o.var !== undefined) {
      if (!nonNegative(o.var)) bad(`var must be finite and >= 0 (got ${JSON.stringify(o.var)}).`);
      entry.var = o.var as number;
    }
    if (o.std !== undefined) {
      if (!nonNegative(o.std)) bad(`std must be finite and >= 0 (got ${JSON.stringify(o.std)}).`);
      entry.std = o.std as number;
    }
    entries.set(key, entry);
  }
  if (entries.size === 0) throw invalid(`Invalid latency table ${source}: no entries.`, { source });
  return Object.keys(meta).length ? { resolution, entries, meta } : { resolution, entries };
}

/** Writes OFA's format with `var` (derived from `std` when only that is known); keys sorted. */
export function serializeLatencyTable(table: LatencyTable): string {
  const out: Record<string, unknown> = { ...(table.meta ?? {}) };
  for (const key of [...table.entries.keys()].sort()) {
    const e = table.entries.get(key)!;
    out[key] = { count: e.count, mean: e.mean, var: e.var ?? (e.std === undefined ? 0 : e.std * e.std) };
  }
  return stringifyYaml(out);
}

const shape = (h: number, c: number) => `${h}x${h}x${c}`;

/** OFA keys of every part of a subnet, in network order. */
export function subnetLatencyKeys(arch: Arch, cfg: SubnetConfig): string[] {
  const r = cfg.image_size;
  const hs = (act: string) => (act === 'h_swish' ? 1 : 0);
  const keys: string[] = [];
  let size = convOut(r, arch.stem.kernel, arch.stem.stride);
  keys.push(`Conv-input:${shape(r, arch.input.channels)}-output:${shape(size, arch.stem.out)}`);
  const fb = arch.first_block;
  let next = convOut(size, fb.kernel, fb.stride);
  const fbSkip = fb.stride === 1 && arch.stem.out === fb.out ? 1 : 0;
  keys.push(
    `expanded_conv-input:${shape(size, arch.stem.out)}-output:${shape(next, fb.out)}-expand:${arch.stem.out}-kernel:${fb.kernel}-stride:${fb.stride}-idskip:${fbSkip}-se:0-hs:${hs(fb.act)}`,
  );
  size = next;
  for (const slot of blockSlots(arch)) {
    if (slot.position >= cfg.d[slot.stage]!) continue;
    const i = slot.index;
    const k = cfg.ks[i]!;
    next = convOut(size, k, slot.stride);
    const mid = midChannels(arch, slot.inChannels, cfg.e[i]!);
    keys.push(
      `expanded_conv-input:${shape(size, slot.inChannels)}-output:${shape(next, slot.outChannels)}-expand:${mid}-kernel:${k}-stride:${slot.stride}-idskip:${slot.residual ? 1 : 0}-se:${slot.se ? 1 : 0}-hs:${hs(slot.act)}`,
    );
    size = next;
  }
  const last = arch.stages[arch.stages.length - 1]!.width;
  const fe = arch.final_expand;
  keys.push(`Conv_1-input:${shape(size, last)}-output:${shape(size, fe)}`);
  keys.push(`AvgPool2D-input:${shape(size, fe)}-output:${shape(1, fe)}`);
  if (arch.feature_mix !== null) keys.push(`Conv_2-input:${shape(1, fe)}-output:${shape(1, arch.feature_mix)}`);
  keys.push(`Logits-input:${shape(1, headWidth(arch))}-output:${arch.classes}`);
  return keys;
}

function tableFor(tables: LatencyTables, r: number): LatencyTable {
  const t = tables.get(r);
  if (!t)
    throw invalid(`No latency table for resolution ${r}; tables exist for: ${[...tables.keys()].sort((a, b) => a - b).join(', ')}.`, {
      resolution: r,
    });
  return t;
}

function meanOf(t: LatencyTable, key: string): number {
  const e = t.entries.get(key);
  if (!e) throw invalid(`Latency table ${latencyTableFileName(t.resolution)} has no entry '${key}'.`, { resolution: t.resolution, key });
  return e.mean;
}

/** Latency of a subnet in ms: the sum of the table means of its parts (OFA's estimate, no calibration). */
export function lookupLatencyMs(tables: LatencyTables, arch: Arch, cfg: SubnetConfig): number {
  const t = tableFor(tables, cfg.image_size);
  return subnetLatencyKeys(arch, cfg).reduce((s, key) => s + meanOf(t, key), 0);
}

/**
 * The tables as a flat additive model over `resolutions` (default: every table's resolution): per
 * resolution the fixed parts (stem, first block, head), per slot × kernel × expand the block. Every
 * key any subnet can need must exist, so a missing key fails here, once, rather than mid-search.
 */
export function flatLatencyModel(
  tables: LatencyTables,
  arch: Arch,
  resolutions: readonly number[] = [...tables.keys()].sort((a, b) => a - b),
  calibration?: { a: number; b: number },
): EfficiencyModel {
  const md = Math.max(...arch.space.depth_list);
  const nSlots = blockSlots(arch).length;
  // depth md everywhere, smallest choices: the fixed parts are the keys outside the blocks
  const probe = (r: number, ks: number, e: number): SubnetConfig => ({
    ks: new Array<number>(nSlots).fill(ks),
    e: new Array<number>(nSlots).fill(e),
    d: new Array<number>(arch.stages.length).fill(md),
    image_size: r,
  });
  const k0 = Math.min(...arch.space.ks_list);
  const e0 = Math.min(...arch.space.expand_list);
  const keysAt = new Map<string, string[]>();
  const keys = (r: number, ks: number, e: number) => {
    const id = `${r}/${ks}/${e}`;
    let v = keysAt.get(id);
    if (!v) keysAt.set(id, (v = subnetLatencyKeys(arch, probe(r, ks, e))));
    return v;
  };
  const model = buildEfficiencyModel(
    arch,
    resolutions,
    'ms',
    (r) => {
      const t = tableFor(tables, r);
      const ks = keys(r, k0, e0);
      // keys[0..1] = stem + first block, keys[2 .. 2+nSlots) = blocks, the rest = head
      return [...ks.slice(0, 2), ...ks.slice(2 + nSlots)].reduce((s, key) => s + meanOf(t, key), 0);
    },
    (r, i, k, e) => meanOf(tableFor(tables, r), keys(r, k, e)[2 + i]!),
  );
  return calibration ? { ...model, calibration } : model;
}
