/**
 * Turns predictor weights (models/train_predictor.py: an MLP, or a quadratic form) into the accuracy-predictor ONNX model
 * (input float32 [N, n_dim] = OFA one-hot encoding, output [N, 1] accuracy in 0..1), then scores
 * it with onnxruntime on the table rows held out from training: RMSE (accuracy points) and
 * Kendall tau.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { GraphBuilder } from '../runtime/onnx/graph.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { ModelSession } from '../runtime/session.js';
import { ArchEncoder } from '../runtime/space.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import type { SubnetConfig } from '../runtime/space.js';
import { kendallTau } from '../runtime/profile.js';

interface Mlp {
  format: 'nestswap.mlp/1';
  n_dim: number;
  layers: { weight: number[][]; bias: number[] }[];
  holdout_ids: string[];
}

/** f(x) = x'Wx + w.x + b (kernel ridge with a degree-2 polynomial kernel, in primal form). */
interface Quadratic {
  format: 'nestswap.quadratic/1';
  n_dim: number;
  W: number[][];
  w: number[];
  b: number;
  holdout_ids: string[];
}

export type PredictorWeights = Mlp | Quadratic;

export function predictorToOnnx(p: PredictorWeights): Uint8Array {
  if (p.format === 'nestswap.mlp/1') return mlpToOnnx(p);
  if (p.format === 'nestswap.quadratic/1') return quadraticToOnnx(p);
  throw new Error(`unknown predictor weights format ${String((p as { format?: unknown }).format)}`);
}

export function quadraticToOnnx(q: Quadratic): Uint8Array {
  const g = new GraphBuilder('accuracy-predictor');
  const D = q.n_dim;
  if (q.W.length !== D || q.W.some((r) => r.length !== D) || q.w.length !== D) throw new Error(`quadratic predictor: W must be ${D}x${D} and w ${D} long`);
  const x = g.reserve('features');
  const pairs = g.op('Mul', [g.op('MatMul', [x, g.floatTensor('W', Float32Array.from(q.W.flat()), [D, D])]), x]);
  const quad = g.op('ReduceSum', [pairs, g.int64Tensor('axes', [1])], { keepdims: { int: 1 } });
  const lin = g.op('Gemm', [x, g.floatTensor('w', Float32Array.from(q.w), [1, D]), g.floatTensor('b', Float32Array.of(q.b), [1])], { transB: { int: 1 } });
  g.op('Add', [quad, lin], {}, 'accuracy');
  return g.build([{ name: 'features', dims: ['N', D] }], [{ name: 'accuracy', dims: ['N', 1] }], { 'nestswap.kind': 'accuracy-predictor' });
}

export function mlpToOnnx(mlp: Mlp): Uint8Array {
  const g = new GraphBuilder('accuracy-predictor');
  let x = g.reserve('features');
  mlp.layers.forEach((l, i) => {
    const out = l.weight.length;
    const inp = l.weight[0]!.length;
    const w = g.floatTensor(`fc${i}.weight`, Float32Array.from(l.weight.flat()), [out, inp]);
    const b = g.floatTensor(`fc${i}.bias`, Float32Array.from(l.bias), [out]);
    const last = i === mlp.layers.length - 1;
    x = g.op('Gemm', [x, w, b], { transB: { int: 1 } }, last ? 'accuracy' : undefined);
    if (!last) x = g.op('Relu', [x]);
  });
  return g.build([{ name: 'features', dims: ['N', mlp.n_dim] }], [{ name: 'accuracy', dims: ['N', 1] }], { 'nestswap.kind': 'accuracy-predictor' });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      weights: { type: 'string', default: '.cache/predictor-weights.json' },
      table: { type: 'string', default: '.cache/accuracy-table.json' },
      package: { type: 'string', default: 'models/fmnist-ofa/package' },
      out: { type: 'string', default: '.cache/predictor.onnx' },
    },
  });
  const weights = JSON.parse(readFileSync(values.weights, 'utf8')) as PredictorWeights;
  const bytes = predictorToOnnx(weights);
  writeFileSync(values.out, bytes);
  const pkg = await loadPackageDir(values.package);
  const enc = new ArchEncoder(pkg.space);
  const rows = (JSON.parse(readFileSync(values.table, 'utf8')) as { rows: { id: string; config: SubnetConfig; accuracy: number }[] }).rows;
  const held = new Set(weights.holdout_ids);
  const test = rows.filter((r) => held.has(r.id));
  const s = await ModelSession.create(nodeBackend, bytes);
  const out = await s.runFirst(enc.encodeBatch(test.map((r) => r.config)), [test.length, enc.nDim]);
  await s.release();
  const pred = Array.from(out.data);
  const truth = test.map((r) => r.accuracy);
  const rmse = Math.sqrt(pred.reduce((acc, p, i) => acc + (p - truth[i]!) ** 2, 0) / pred.length);
  const result = { holdout: test.length, rmsePoints: rmse * 100, kendallTau: kendallTau(pred, truth), model: weights.format, out: values.out };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
