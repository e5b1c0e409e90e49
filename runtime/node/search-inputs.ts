/**
 * Node-side inputs of the search: latency-table directories and ONNX accuracy-predictor files
 * (runtime/ stays free of fs and onnxruntime-node).
 */
import { writeDurableAsync } from './durable.js';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { NestswapError } from '../errors.js';
import {
  latencyTableFileName,
  parseLatencyTable,
  resolutionOfFileName,
  serializeLatencyTable,
  type LatencyTable,
  type LatencyTables,
} from '../latency-table.js';
import { encoderForPredictor, onnxAccuracyPredictor, type AccuracyPredictor } from '../search/predictors.js';
import type { ArchEncoder, Space } from '../space.js';
import { searchInputsFor, type SearchInputs } from '../search/inputs.js';
import type { SupernetPackage } from '../package.js';
import type { Profile } from '../profile.js';

export type { SearchInputs } from '../search/inputs.js';

/** Reads every `<r>_lookup_table.yaml` of a directory. */
export async function readLatencyTableDir(dir: string): Promise<Map<number, LatencyTable>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (cause) {
    throw new NestswapError('ERR_LATENCY_TABLE_INVALID', `Cannot read latency table directory '${dir}': ${(cause as Error).message}`, { cause });
  }
  const tables = new Map<number, LatencyTable>();
  for (const name of names.sort()) {
    const r = resolutionOfFileName(name);
    if (r === undefined) continue;
    tables.set(r, parseLatencyTable(await readFile(join(dir, name), 'utf8'), r, join(dir, name)));
  }
  if (tables.size === 0) throw new NestswapError('ERR_LATENCY_TABLE_INVALID', `No <resolution>_lookup_table.yaml files in '${dir}'.`);
  return tables;
}

/** Writes one file per resolution (durably: temp file + fsync + rename + fsync of the directory). */
export async function writeLatencyTableDir(dir: string, tables: LatencyTables): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [r, t] of tables) {
    const path = join(dir, latencyTableFileName(r));
    await writeDurableAsync(path, serializeLatencyTable(t));
  }
}

/**
 * Loads an ONNX accuracy predictor; its input width decides the resolution list (the space's own,
 * or one of `candidateLists`, e.g. the latency tables' resolutions).
 */
export async function loadOnnxAccuracyPredictor(
  path: string | Uint8Array,
  space: Space,
  candidateLists: readonly (readonly number[])[] = [],
  sessionOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 },
): Promise<{ predictor: AccuracyPredictor; encoder: ArchEncoder }> {
  let session: ort.InferenceSession;
  try {
    // one thread by default: batches of ~100 rows are too small to gain from more, and the device is serving too
    // two calls because create's overloads take a path or bytes, not their union
    session = await (typeof path === 'string' ? ort.InferenceSession.create(path, sessionOptions) : ort.InferenceSession.create(path, sessionOptions));
  } catch (cause) {
    throw new NestswapError('ERR_PREDICTOR_INVALID', `Cannot load accuracy predictor '${label(path)}' as an ONNX model: ${(cause as Error).message}`, { cause });
  }
  const meta = session.inputMetadata[0];
  const last = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
  if (typeof last !== 'number')
    throw new NestswapError('ERR_PREDICTOR_INVALID', `Accuracy predictor '${label(path)}' must declare its input as float32 [N, n_dim] with a fixed n_dim.`);
  const encoder = encoderForPredictor(space, last, candidateLists);
  const predictor = await onnxAccuracyPredictor(session, encoder.nDim, ort.Tensor, `accuracy predictor '${label(path)}'`);
  return { predictor, encoder };
}

function label(path: string | Uint8Array): string {
  return typeof path === 'string' ? path : 'from package';
}

/**
 * Search inputs for a supernet package on a device: the package's accuracy predictor, the
 * profile's calibrated latency and memory predictors (when a profile is given), MACs always.
 */
export async function packageSearchInputs(pkg: SupernetPackage, profile?: Profile, predictorFile?: string): Promise<SearchInputs> {
  const bytes = predictorFile ?? pkg.fileByRole('accuracy-predictor');
  if (!bytes)
    throw new NestswapError('ERR_PREDICTOR_INVALID', `Package ${pkg.name} has no accuracy predictor (a file with role 'accuracy-predictor'); give one with --accuracy-predictor.`);
  // an imported predictor may encode fewer resolutions than the space (OFA's w1.2 one: 160..224:16); the manifest says which
  const listed = pkg.manifest.accuracy?.predictor_image_size_list;
  const lists = Array.isArray(listed) && listed.every((r) => typeof r === 'number') ? [listed as number[]] : [];
  return searchInputsFor(pkg, await loadOnnxAccuracyPredictor(bytes, pkg.space, lists), profile);
}
