/** Shared setup for search tests and the search bench: OFA-MBv3 w1.2, Note10 tables, predictors. */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { blockSlots, parseArch, scaleMbv3Arch, type Arch } from '../runtime/arch.js';
import { blockCost, fixedCost, headCost, slotInputSizes } from '../runtime/cost.js';
import { GraphBuilder } from '../runtime/onnx/graph.js';
import { flatLatencyModel, type LatencyTables } from '../runtime/latency-table.js';
import { mulberry32 } from '../runtime/random.js';
import {
  buildEfficiencyModel,
  evaluateFlat,
  flatLatencyPredictor,
  flatMinimum,
  LinearPredictor,
  onnxAccuracyPredictor,
  type AccuracyPredictor,
  type EfficiencyModel,
  type LatencyPredictor,
} from '../runtime/search/index.js';
import { ArchEncoder, Space } from '../runtime/space.js';
import { readLatencyTableDir } from '../agent/search-inputs.js';

export const root = new URL('../../', import.meta.url);
export const fixture = (p: string): string => new URL(`test/fixtures/ofa-reference/${p}`, root).pathname;
export const readJson = (url: URL | string): unknown => JSON.parse(readFileSync(url, 'utf8'));

export const w10: Arch = parseArch(readJson(new URL('models/ofa-mbv3-w1.0/arch.json', root)));
export const w12: Arch = scaleMbv3Arch(w10, 1.2, 'ofa-mbv3-w1.2');
export const note10: LatencyTables = await readLatencyTableDir(fixture('note10'));
export const note10Resolutions = [...note10.keys()].sort((a, b) => a - b);
export const latency: LatencyPredictor = flatLatencyPredictor(flatLatencyModel(note10, w12));
export const predictorPath = fixture('ofa_mbv3_w1.2_acc_predictor.onnx');

/**
 * A seeded linear predictor shaped like real ones: larger resolution, kernel and expand help on
 * average, with per-slot noise so the optimum is not simply "largest that fits".
 */
export function randomLinearPredictor(encoder: ArchEncoder, seed: number): LinearPredictor {
  const rng = mulberry32(seed);
  const w = new Float64Array(encoder.nDim);
  const { space } = encoder;
  encoder.imageSizeList.forEach((r, i) => (w[encoder.rIndex(r)] = 0.01 * i + 0.002 * rng()));
  for (let slot = 0; slot < space.nSlots; slot++) {
    space.ks_list.forEach((k, i) => (w[encoder.kIndex(slot, k)] = 0.001 * i * rng() + 0.0015 * (rng() - 0.5)));
    space.expand_list.forEach((e, i) => (w[encoder.eIndex(slot, e)] = 0.0015 * i * rng() + 0.0015 * (rng() - 0.5)));
  }
  return new LinearPredictor(w, 0.7);
}

export const w12Space = (): Space => Space.fromArch(w12);

export const w10Space = (): Space => Space.fromArch(w10);

/** ONNX bytes of a linear predictor (accuracy = x · w + bias: MatMul + Add), input `x` [N, nDim], output `accuracy` [N, 1]. */
export function linearOnnxBytes(p: LinearPredictor): Uint8Array {
  const g = new GraphBuilder('linear-accuracy');
  const x = g.reserve('x');
  const w = g.floatTensor('w', Float32Array.from(p.weights), [p.nDim, 1]);
  const b = g.floatTensor('b', Float32Array.of(p.bias), [1]);
  g.op('Add', [g.op('MatMul', [x, w]), b], {}, 'accuracy');
  return g.build([{ name: x, dims: ['N', p.nDim] }], [{ name: 'accuracy', dims: ['N', 1] }]);
}

/** The same predictor as a real ONNX Runtime session behind the accuracy-predictor contract. */
export async function linearOnnxPredictor(p: LinearPredictor): Promise<AccuracyPredictor> {
  const session = await ort.InferenceSession.create(linearOnnxBytes(p), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  return onnxAccuracyPredictor(session, p.nDim, ort.Tensor, 'linear ONNX fixture');
}

/**
 * A linear predictor shaped like OFA's: a concave gain over resolution (4.5 points over the list), a
 * value for every active block, and kernel / expand gains that are usually but not always monotone.
 */
export function shapedLinearPredictor(encoder: ArchEncoder, seed: number): LinearPredictor {
  const rng = mulberry32(seed);
  const w = new Float64Array(encoder.nDim);
  const { space } = encoder;
  const rs = encoder.imageSizeList;
  const lo = rs[0]!;
  const hi = rs[rs.length - 1]!;
  rs.forEach((r) => (w[encoder.rIndex(r)] = 0.045 * Math.sqrt((r - lo) / Math.max(1, hi - lo)) + 0.002 * rng()));
  const [k3, k5, k7] = space.ks_list;
  const [e3, e4, e6] = space.expand_list;
  for (let slot = 0; slot < space.nSlots; slot++) {
    const block = 0.002 * (0.3 + rng());
    const g5 = 0.0008 * (0.5 + rng());
    w[encoder.kIndex(slot, k3!)] = block;
    w[encoder.kIndex(slot, k5!)] = block + g5;
    w[encoder.kIndex(slot, k7!)] = block + g5 + 0.0006 * (rng() - 0.3);
    const g4 = 0.001 * (0.5 + rng());
    w[encoder.eIndex(slot, e3!)] = 0;
    w[encoder.eIndex(slot, e4!)] = g4;
    w[encoder.eIndex(slot, e6!)] = g4 + 0.001 * (rng() - 0.2);
  }
  return new LinearPredictor(w, 0.62);
}

/**
 * An additive latency table of a made-up device: time ∝ MACs (0.05 ms per million), 0.08 ms per
 * block, 1 ms fixed, and a per-(slot, kernel, expand) device factor in 0.85..1.15 shared by every
 * resolution (7×7 depthwise a further 10% slower).
 */
export function syntheticLatencyModel(arch: Arch, resolutions: readonly number[], seed: number): EfficiencyModel {
  const rng = mulberry32(seed);
  const slots = blockSlots(arch);
  const factor = new Map<string, number>();
  slots.forEach((_, i) => arch.space.ks_list.forEach((k) => arch.space.expand_list.forEach((e) => factor.set(`${i}/${k}/${e}`, (0.85 + 0.3 * rng()) * (k === 7 ? 1.1 : 1)))));
  const perMac = 0.05e-6;
  return buildEfficiencyModel(
    arch,
    resolutions,
    'ms',
    (r) => {
      const sizes = slotInputSizes(arch, r);
      return 1 + perMac * (fixedCost(arch, r).macs + headCost(arch, sizes[sizes.length - 1]!).macs);
    },
    (r, i, k, e) => 0.08 + perMac * blockCost(arch, slots[i]!, slotInputSizes(arch, r)[i]!, k, e).macs * factor.get(`${i}/${k}/${e}`)!,
  );
}

/** One objective with a known exact optimum per budget: a linear predictor (and its ONNX twin) and one additive latency table. */
export interface GapCase {
  name: string;
  arch: Arch;
  encoder: ArchEncoder;
  linear: LinearPredictor;
  latency: LatencyPredictor;
  /** latency budgets (ms), tightest first: 8%, 20%, 40% and 70% of the way from the cheapest to the dearest subnet */
  budgets: number[];
}

const budgetFractions = [0.08, 0.2, 0.4, 0.7];

function budgetsFor(arch: Arch, space: Space, model: EfficiencyModel): number[] {
  const lo = flatMinimum(model, space).value;
  const hi = Math.max(...space.image_size_list.map((r) => evaluateFlat(model, { ...space.max(), image_size: r })));
  return budgetFractions.map((f) => Math.round((lo + f * (hi - lo)) * 1000) / 1000);
}

/**
 * The objectives the search is checked on: OFA-MBv3 w1.0 over its 25 resolutions (128..224 step 4)
 * and over 7 (step 16) with made-up device tables, and w1.2 over Note10's 5 with OFA's real tables;
 * `seeds` predictors each.
 */
export function gapCases(seeds: readonly number[] = [1, 2, 3]): GapCase[] {
  const lists: { name: string; arch: Arch; resolutions: number[]; model: (seed: number) => EfficiencyModel }[] = [
    { name: 'w1.0 r128..224/4', arch: w10, resolutions: [...w10.space.image_size_list], model: (s) => syntheticLatencyModel(w10, w10.space.image_size_list, 50 + s) },
    { name: 'w1.0 r128..224/16', arch: w10, resolutions: [128, 144, 160, 176, 192, 208, 224], model: (s) => syntheticLatencyModel(w10, [128, 144, 160, 176, 192, 208, 224], 70 + s) },
    { name: 'w1.2 note10', arch: w12, resolutions: note10Resolutions, model: () => flatLatencyModel(note10, w12) },
  ];
  return lists.flatMap((l) =>
    seeds.map((seed) => {
      const space = new Space({ ...Space.fromArch(l.arch).toJSON(), image_size_list: l.resolutions });
      const encoder = new ArchEncoder(Space.fromArch(l.arch), l.resolutions);
      const model = l.model(seed);
      return { name: `${l.name} seed ${seed}`, arch: l.arch, encoder, linear: shapedLinearPredictor(encoder, 1000 + seed), latency: flatLatencyPredictor(model), budgets: budgetsFor(l.arch, space, model) };
    }),
  );
}
