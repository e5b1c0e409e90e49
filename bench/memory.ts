/**
 * Memory benchmark: fits the memory model on a few subnets (resident-memory increase of a fresh
 * child process that creates the session and runs once) and reports the prediction error on
 * held-out subnets. Prints JSON.
 *
 *   node dist/bench/memory.js [--supernet ofa-mbv3-w1.0] [--fit 6] [--subnets 10] [--threads 1]
 */
import { parseArgs } from 'node:util';
import { fitMemory, measureSubnetMemory, memoryFeatures } from '../agent/memory.js';
import { loadSupernet } from '../agent/packages.js';
import { sampleSubnets, subnetInputDims } from '../agent/profiler.js';
import { buildSubnet, SubnetWeights } from '../runtime/materialize.js';
import { predictionStats } from '../runtime/profile.js';
import type { SubnetConfig } from '../runtime/space.js';

const { values } = parseArgs({
  options: {
    supernet: { type: 'string', default: 'ofa-mbv3-w1.0' },
    fit: { type: 'string', default: '6' },
    subnets: { type: 'string', default: '10' },
    threads: { type: 'string', default: '1' },
  },
});
const pkg = await loadSupernet(values.supernet!);
const weights = new SubnetWeights(pkg);
const threads = Number(values.threads);
const measure = async (cfg: SubnetConfig) => {
  const built = buildSubnet(weights, cfg, { mode: 'fold', batch: 1 });
  return (await measureSubnetMemory(built.bytes, subnetInputDims(pkg), { ep: 'cpu', threads })).deltaMB;
};
const t0 = performance.now();
const fitCfgs = [pkg.space.min(), pkg.space.max(), ...sampleSubnets(pkg, Math.max(0, Number(values.fit) - 2), 2)];
const fitSet = [];
for (const cfg of fitCfgs) fitSet.push({ cfg, mb: await measure(cfg) });
const fit = fitMemory(pkg.arch, fitSet);
const held = [];
for (const cfg of sampleSubnets(pkg, Number(values.subnets), 777)) held.push({ id: pkg.space.id(cfg), measured: await measure(cfg), predicted: fit.predict(cfg), ...memoryFeatures(pkg.arch, cfg) });
const s = predictionStats(held);
const r = (v: number, d = 2) => Math.round(v * 10 ** d) / 10 ** d;
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'memory',
      supernet: pkg.name,
      threads,
      fitSubnets: fitSet.length,
      coef: fit.coef,
      heldOut: { subnets: s.subnets, mape: r(s.mape, 4), within15: r(held.filter((h) => Math.abs(h.predicted - h.measured) <= 0.15 * h.measured).length / held.length, 3), maxAbsPctErr: r(s.maxAbsPctErr, 1) },
      samples: held.map((h) => ({ id: h.id, measuredMB: r(h.measured, 1), predictedMB: r(h.predicted, 1), weightsMB: r(h.weightsMB), activationBoundMB: r(h.activationsMB) })),
      wallS: r((performance.now() - t0) / 1000, 1),
    },
    null,
    2,
  )}\n`,
);
