/** Shared setup for search tests and the search bench: OFA-MBv3 w1.2, Note10 tables, predictors. */
import { readFileSync } from 'node:fs';
import { parseArch, scaleMbv3Arch, type Arch } from '../runtime/arch.js';
import { flatLatencyModel, type LatencyTables } from '../runtime/latency-table.js';
import { mulberry32 } from '../runtime/random.js';
import { flatLatencyPredictor, LinearPredictor, type LatencyPredictor } from '../runtime/search/index.js';
import { Space, type ArchEncoder } from '../runtime/space.js';
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
