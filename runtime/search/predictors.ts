/**
 * Accuracy predictors over OFA's one-hot arch encoding (`ArchEncoder`): the contract, an adapter
 * for any ONNX Runtime session (types from onnxruntime-common; the Tensor class is injected so this
 * file works with onnxruntime-node and -web alike), and a linear (additive per block) predictor.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { NestswapError } from '../errors.js';
import { ArchEncoder, type Space } from '../space.js';

export interface AccuracyPredictor {
  /** length of one encoded row */
  readonly nDim: number;
  /** `features` holds `n` rows of `nDim` floats; returns `n` accuracies (0..1). */
  predictBatch(features: Float32Array, n: number): Promise<Float32Array>;
}

/** Linear predictor: accuracy = bias + Σ weights · one-hot; additive per block, so exactly optimisable. */
export class LinearPredictor implements AccuracyPredictor {
  readonly nDim: number;
  constructor(
    readonly weights: Float64Array,
    readonly bias: number,
  ) {
    this.nDim = weights.length;
  }

  predictSync(features: Float32Array, n: number): Float32Array {
    const out = new Float32Array(n);
    const { weights, nDim } = this;
    for (let r = 0; r < n; r++) {
      let s = this.bias;
      const o = r * nDim;
      for (let j = 0; j < nDim; j++) {
        const x = features[o + j]!;
        if (x !== 0) s += x * weights[j]!;
      }
      out[r] = s;
    }
    return out;
  }

  predictBatch(features: Float32Array, n: number): Promise<Float32Array> {
    return Promise.resolve(this.predictSync(features, n));
  }
}

/**
 * Least-squares fit (ridge `lambda`, needed because one-hot groups are collinear) of a linear
 * predictor to `n` rows of features and targets, by Cholesky on the normal equations.
 */
export function fitLinearPredictor(features: Float32Array, targets: ArrayLike<number>, n: number, nDim: number, lambda = 1e-4): LinearPredictor {
  const p = nDim + 1; // last column = bias
  const A = new Float64Array(p * p);
  const b = new Float64Array(p);
  const row = new Float64Array(p);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < nDim; j++) row[j] = features[r * nDim + j]!;
    row[nDim] = 1;
    const y = targets[r]!;
    for (let i = 0; i < p; i++) {
      const xi = row[i]!;
      if (xi === 0) continue;
      b[i] = b[i]! + xi * y;
      for (let j = 0; j < p; j++) A[i * p + j] = A[i * p + j]! + xi * row[j]!;
    }
  }
  for (let i = 0; i < nDim; i++) A[i * p + i] = A[i * p + i]! + lambda * n;
  // Cholesky A = L Lᵀ in place (lower triangle)
  for (let j = 0; j < p; j++) {
    let d = A[j * p + j]!;
    for (let k = 0; k < j; k++) d -= A[j * p + k]! ** 2;
    if (!(d > 0)) throw new NestswapError('ERR_PREDICTOR_INVALID', 'Linear fit is singular: give more samples or a larger ridge.');
    const ljj = Math.sqrt(d);
    A[j * p + j] = ljj;
    for (let i = j + 1; i < p; i++) {
      let s = A[i * p + j]!;
      for (let k = 0; k < j; k++) s -= A[i * p + k]! * A[j * p + k]!;
      A[i * p + j] = s / ljj;
    }
  }
  const z = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= A[i * p + k]! * z[k]!;
    z[i] = s / A[i * p + i]!;
  }
  const w = new Float64Array(p);
  for (let i = p - 1; i >= 0; i--) {
    let s = z[i]!;
    for (let k = i + 1; k < p; k++) s -= A[k * p + i]! * w[k]!;
    w[i] = s / A[i * p + i]!;
  }
  return new LinearPredictor(w.slice(0, nDim), w[nDim]!);
}

/** The image-size list a predictor of `nDim` inputs must encode, chosen among candidate lists. */
export function encoderForPredictor(space: Space, nDim: number, candidateLists: readonly (readonly number[])[] = []): ArchEncoder {
  const perBlock = space.nSlots * (space.ks_list.length + space.expand_list.length);
  const nRes = nDim - perBlock;
  const lists = [space.image_size_list, ...candidateLists];
  const list = lists.find((l) => l.length === nRes);
  if (nRes < 1 || !list)
    throw new NestswapError(
      'ERR_PREDICTOR_INVALID',
      `Accuracy predictor takes ${nDim} features; this space needs ${perBlock} for its blocks plus one per resolution, ` +
        `so ${nRes} resolutions, but the known resolution lists have ${lists.map((l) => l.length).join(', ')}.`,
      { details: { nDim, blockFeatures: perBlock } },
    );
  return new ArchEncoder(space, [...list].sort((a, b) => a - b));
}

type TensorCtor = new (type: 'float32', data: Float32Array, dims: readonly number[]) => Tensor;

/**
 * Wraps an ONNX Runtime session (input float32 [N, nDim], output [N, 1]) after checking its
 * signature and probing it once; anything else is ERR_PREDICTOR_INVALID.
 */
export async function onnxAccuracyPredictor(session: InferenceSession, nDim: number, TensorClass: TensorCtor, source = 'accuracy predictor'): Promise<AccuracyPredictor> {
  const fail = (msg: string, cause?: unknown): never => {
    throw new NestswapError('ERR_PREDICTOR_INVALID', `Invalid ${source}: ${msg}`, cause === undefined ? undefined : { cause });
  };
  if (session.inputNames.length !== 1) fail(`expected one input, found ${session.inputNames.length} (${session.inputNames.join(', ')}).`);
  if (session.outputNames.length < 1) fail('the model has no output.');
  const inputName = session.inputNames[0]!;
  const outputName = session.outputNames.includes('accuracy') ? 'accuracy' : session.outputNames[0]!;
  const inMeta = session.inputMetadata?.[0];
  if (inMeta) {
    if (!inMeta.isTensor || inMeta.type !== 'float32') fail(`input '${inputName}' must be a float32 tensor.`);
    if (inMeta.isTensor && inMeta.shape.length > 0) {
      const last = inMeta.shape[inMeta.shape.length - 1];
      if (inMeta.shape.length !== 2 || (typeof last === 'number' && last !== nDim))
        fail(`input '${inputName}' has shape [${inMeta.shape.join(', ')}]; expected [N, ${nDim}].`);
    }
  }
  const run = async (features: Float32Array, n: number): Promise<Float32Array> => {
    const feeds = { [inputName]: new TensorClass('float32', features.subarray(0, n * nDim), [n, nDim]) };
    const out = (await session.run(feeds))[outputName];
    if (!out || out.type !== 'float32' || out.size !== n || !(out.data instanceof Float32Array))
      fail(`output '${outputName}' must be float32 [N, 1]; got ${out ? `${out.type} [${out.dims.join(', ')}]` : 'nothing'}.`);
    return out!.data as Float32Array;
  };
  try {
    const probe = await run(new Float32Array(2 * nDim), 2);
    if (!probe.every(Number.isFinite)) fail('output is not finite on a probe input.');
  } catch (e) {
    if (e instanceof NestswapError) throw e;
    fail(`running it on [2, ${nDim}] failed: ${(e as Error).message}`, e);
  }
  return { nDim, predictBatch: run };
}
