import * as ort from 'onnxruntime-node';
import { countMacs, countParams } from '../../runtime/cost.js';
import { NestswapError } from '../../runtime/errors.js';
import type { SupernetPackage } from '../../runtime/package.js';
import { checkProfileFor, profileLatencyPredictor, profileMemoryPredictor } from '../../runtime/profile.js';
import { encoderForPredictor, onnxAccuracyPredictor } from '../../runtime/search/predictors.js';
import type { SubnetConfig } from '../../runtime/space.js';
import { loadSupernet } from '../packages.js';
import { readProfileFile } from '../profiler.js';
import { parse, printJson, readConfigArg, required } from './common.js';

const HELP = `Usage: nestswap predict --supernet <dir|name> --subnet <json-or-file> [--profile FILE] [--json]

Predicted accuracy (from the package's accuracy predictor, when it has one), MACs and params of a
subnet; with --profile also its latency (median batch-1 ms of a fresh session with the profile's EP
and threads) and memory (MB).`;

/** Accuracy from the package's 'accuracy-predictor' file, or null when it has none. */
export async function predictAccuracy(pkg: SupernetPackage, cfg: SubnetConfig): Promise<number | null> {
  const bytes = pkg.fileByRole('accuracy-predictor');
  if (!bytes) return null;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes);
  } catch (cause) {
    throw new NestswapError('ERR_PREDICTOR_INVALID', `The package's accuracy predictor is not a loadable ONNX model: ${(cause as Error).message}`, { cause });
  }
  try {
    const meta = session.inputMetadata[0];
    const nDim = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
    if (typeof nDim !== 'number') throw new NestswapError('ERR_PREDICTOR_INVALID', 'The accuracy predictor must declare a float32 [N, n_dim] input with a fixed n_dim.');
    const encoder = encoderForPredictor(pkg.space, nDim);
    const p = await onnxAccuracyPredictor(session, encoder.nDim, ort.Tensor, 'package accuracy predictor');
    return (await p.predictBatch(encoder.encode(cfg), 1))[0]!;
  } finally {
    await session.release();
  }
}

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { supernet: { type: 'string' }, subnet: { type: 'string' }, profile: { type: 'string' }, json: { type: 'boolean' } }, HELP);
  if (!a) return 0;
  const pkg = await loadSupernet(required(a.values.supernet, '--supernet'));
  const cfg = pkg.space.parse(readConfigArg(required(a.values.subnet, '--subnet')), '--subnet');
  let latencyMs: number | null = null;
  let memoryMB: number | null = null;
  if (a.values.profile) {
    const p = checkProfileFor(await readProfileFile(a.values.profile), pkg, `profile '${a.values.profile}'`);
    latencyMs = profileLatencyPredictor(p).latencyMs(cfg);
    memoryMB = profileMemoryPredictor(p)?.memoryMB(cfg) ?? null;
  }
  const result = {
    subnetId: pkg.space.id(cfg),
    latencyMs,
    memoryMB,
    accuracy: await predictAccuracy(pkg, cfg),
    macs: countMacs(pkg.arch, cfg),
    params: countParams(pkg.arch, cfg),
  };
  if (a.values.json) printJson(result);
  else {
    const f = (v: number | null, d: number, u: string) => (v === null ? 'n/a' : `${v.toFixed(d)}${u}`);
    process.stdout.write(
      `${result.subnetId}: accuracy ${f(result.accuracy === null ? null : result.accuracy * 100, 2, '%')}, latency ${f(latencyMs, 2, ' ms')}, memory ${f(memoryMB, 1, ' MB')}, ${(result.macs / 1e6).toFixed(2)} M MACs, ${result.params} params\n`,
    );
  }
  return 0;
}
