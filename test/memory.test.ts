import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitMemory, measureSubnetMemory, memoryFeatures } from '../agent/memory.js';
import { sampleSubnets } from '../agent/profiler.js';
import { buildSubnet, SubnetWeights } from '../runtime/materialize.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { buildMemoryModel, peakActivationBoundMB, peakActivationMB, weightsMB } from '../runtime/profile.js';
import { evaluateFlat } from '../runtime/search/efficiency.js';
import { TINY } from './helpers.js';

test('weightsMB matches the materialized model size (fp32 weights dominate the ONNX file)', async () => {
  const pkg = await loadPackageDir(TINY);
  const w = new SubnetWeights(pkg);
  for (const cfg of [pkg.space.min(), pkg.space.max()]) {
    const bytes = buildSubnet(w, cfg, { batch: 1 }).bytes.length;
    const mb = weightsMB(pkg.arch, cfg) * 2 ** 20;
    assert.ok(mb <= bytes && bytes - mb < 64 * 1024, `${mb} vs ${bytes}`);
  }
});

test('the activation bound holds for every subnet of a resolution', async () => {
  const pkg = await loadPackageDir(TINY);
  for (const cfg of sampleSubnets(pkg, 30, 5)) assert.ok(peakActivationMB(pkg.arch, cfg) <= peakActivationBoundMB(pkg.arch, cfg.image_size) + 1e-12);
});

test('a fresh child process reports the resident-memory increase of a session', async () => {
  const pkg = await loadPackageDir(TINY);
  const bytes = buildSubnet(new SubnetWeights(pkg), pkg.space.max(), { batch: 1 }).bytes;
  const m = await measureSubnetMemory(bytes, [1, 1, 12, 12], { ep: 'cpu', threads: 1 });
  assert.ok(m.rssBeforeMB > 10 && m.rssAfterMB >= m.rssBeforeMB);
  assert.equal(m.deltaMB, m.rssAfterMB - m.rssBeforeMB);
  await assert.rejects(measureSubnetMemory(new Uint8Array([1, 2, 3]), [1, 1, 12, 12], { ep: 'cpu', threads: 1 }), { code: 'ERR_SESSION' });
});

test('the memory fit recovers known coefficients and its flat model agrees with it', async () => {
  const pkg = await loadPackageDir(TINY);
  const cfgs = sampleSubnets(pkg, 12, 9);
  const truth = (c: (typeof cfgs)[number]) => {
    const f = memoryFeatures(pkg.arch, c);
    return 2.5 * f.weightsMB + 1.5 * f.activationsMB + 3;
  };
  const fit = fitMemory(
    pkg.arch,
    cfgs.map((cfg) => ({ cfg, mb: truth(cfg) })),
  );
  for (const c of cfgs) assert.ok(Math.abs(fit.predict(c) - truth(c)) < 1e-6);
  const mm = buildMemoryModel(pkg.arch, pkg.space.image_size_list, fit.coef);
  const flat = { unit: 'MB', resolutions: [...pkg.space.image_size_list], ...mm, fixed: Float64Array.from(mm.fixed), slot: Float64Array.from(mm.slot) };
  for (const c of cfgs) assert.ok(Math.abs(evaluateFlat(flat, c) - fit.predict(c)) < 1e-6);
});
