/**
 * Turns MLP weights (models/train_predictor.py) into the accuracy-predictor ONNX model
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
  n_dim: number;
  layers: { weight: number[][]; bias: number[] }[];
  holdout_ids: string[];
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
  const mlp = JSON.parse(readFileSync(values.weights, 'utf8')) as Mlp;
  const bytes = mlpToOnnx(mlp);
  writeFileSync(values.out, bytes);
  const pkg = await loadPackageDir(values.package);
  const enc = new ArchEncoder(pkg.space);
  const rows = (JSON.parse(readFileSync(values.table, 'utf8')) as { rows: { id: string; config: SubnetConfig; accuracy: number }[] }).rows;
  const held = new Set(mlp.holdout_ids);
  const test = rows.filter((r) => held.has(r.id));
  const s = await ModelSession.create(nodeBackend, bytes);
  const out = await s.runFirst(enc.encodeBatch(test.map((r) => r.config)), [test.length, enc.nDim]);
  await s.release();
  const pred = Array.from(out.data);
  const truth = test.map((r) => r.accuracy);
  const rmse = Math.sqrt(pred.reduce((acc, p, i) => acc + (p - truth[i]!) ** 2, 0) / pred.length);
  const result = { holdout: test.length, rmsePoints: rmse * 100, kendallTau: kendallTau(pred, truth), out: values.out };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
