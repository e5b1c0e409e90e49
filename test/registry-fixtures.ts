/**
 * Fixtures for registry and fleet tests: the tiny package plus an ONNX accuracy predictor (so it
 * can answer best-model queries), a real device profile of it, and an in-process registry.
 */
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { profileDevice } from '../agent/profiler.js';
import { GraphBuilder } from '../runtime/onnx/graph.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { parseManifest } from '../runtime/package.js';
import { profileLatencyPredictor, serializeProfile, type Profile } from '../runtime/profile.js';
import { mulberry32 } from '../runtime/random.js';
import { ArchEncoder } from '../runtime/space.js';
import { TINY } from './helpers.js';

export { TINY };

/**
 * A linear-sigmoid accuracy predictor over OFA's encoding of the tiny space: larger kernels,
 * expands and resolutions score higher, with seeded noise so the search has something to find.
 */
export function tinyAccuracyPredictor(encoder: ArchEncoder): Uint8Array {
  const g = new GraphBuilder('tiny-accuracy');
  const rng = mulberry32(7);
  const w = new Float32Array(encoder.nDim);
  for (let i = 0; i < w.length; i++) w[i] = 0.02 * (i % 3) + 0.01 * rng();
  const x = g.reserve('arch');
  const y = g.op('MatMul', [x, g.floatTensor('w', w, [encoder.nDim, 1])]);
  const z = g.op('Add', [y, g.floatTensor('b', Float32Array.of(0.2), [1])]);
  g.op('Sigmoid', [z], {}, 'accuracy');
  return g.build([{ name: 'arch', dims: ['N', encoder.nDim] }], [{ name: 'accuracy', dims: ['N', 1] }]);
}

/** Copies the tiny package into `dir` with an accuracy predictor added (version `version`). */
export async function makeQueryablePackage(dir: string, version = '1.0.0-q'): Promise<string> {
  cpSync(TINY, dir, { recursive: true });
  const pkg = await loadPackageDir(TINY);
  const encoder = new ArchEncoder(pkg.space, [...pkg.space.image_size_list]);
  const onnx = tinyAccuracyPredictor(encoder);
  writeFileSync(join(dir, 'accuracy.onnx'), onnx);
  const manifest = parseManifest(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')), dir);
  manifest.version = version;
  manifest.files.push({ path: 'accuracy.onnx', role: 'accuracy-predictor', bytes: onnx.length, sha256: createHash('sha256').update(onnx).digest('hex') });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1));
  return dir;
}

let profileCache: Promise<Profile> | undefined;
/** A real (quick) profile of the tiny package on this machine. */
export function tinyProfile(): Promise<Profile> {
  profileCache ??= loadPackageDir(TINY).then((pkg) =>
    profileDevice(pkg, {
      device: { fingerprint: 'a1b2c3d4e5f60718', deviceClass: 'test-x86-2c' },
      threads: 1,
      warmup: 1,
      runs: 3,
      subnetRuns: 3,
      calibrationSubnets: 4,
      validationSubnets: 2,
      memorySubnets: 0,
      seed: 1,
    }),
  );
  return profileCache;
}

/** A latency budget halfway between the smallest and the largest subnet's predicted latency. */
export async function midBudgetMs(p: Profile): Promise<number> {
  const pkg = await loadPackageDir(TINY);
  const pred = profileLatencyPredictor(p);
  return (pred.latencyMs(pkg.space.min()) + pred.latencyMs(pkg.space.max())) / 2;
}

export function profileText(p: Profile): string {
  return serializeProfile(p);
}
