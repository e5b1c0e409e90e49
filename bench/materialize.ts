/**
 * Materializer benchmark: build time (no calibration) per family and config size, BN calibration
 * time, session creation and first inference. Prints JSON.
 *
 *   node dist/bench/materialize.js [--runs N]
 */
import { existsSync } from 'node:fs';
import { loadavg as loadavg_ } from 'node:os';
import { parseArgs } from 'node:util';
import { calibrateBn } from '../runtime/calibrate.js';
import { buildSubnet, SubnetWeights } from '../runtime/materialize.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nchwcCalibration } from '../runtime/node/nchwc.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { mulberry32 } from '../runtime/random.js';
import { ModelSession } from '../runtime/session.js';
import type { SubnetConfig } from '../runtime/space.js';
import { resolveSupernetDir } from '../agent/packages.js';
import { summary, timeIt } from './stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, 'calib-runs': { type: 'string', default: '3' } } });
const runs = Number(values.runs);
const calibRuns = Number(values['calib-runs']);

async function family(dir: string, label: string) {
  const pkg = await loadPackageDir(dir);
  const w = new SubnetWeights(pkg);
  const space = pkg.space;
  const mid: SubnetConfig = space.sample(mulberry32(1));
  const configs: [string, SubnetConfig][] = [['min', space.min()], ['mid', mid], ['max', space.max()]];
  const layout = await nchwcCalibration(w); // found once per package (two small calibrations)
  const out: Record<string, unknown> = { family: label, trained: pkg.manifest.trained };
  const c = pkg.manifest.calibration;
  const input = new Float32Array(c.shape.reduce((a, b) => a * b, 1)).fill(0.5);
  for (const [name, cfg] of configs) {
    buildSubnet(w, cfg); // warm-up (JIT)
    const build: number[] = [];
    for (let i = 0; i < runs; i++) build.push(await timeIt(() => buildSubnet(w, cfg)));
    const bytes = buildSubnet(w, cfg).bytes;
    const create: number[] = [];
    const first: number[] = [];
    for (let i = 0; i < Math.min(runs, 5); i++) {
      let s: ModelSession | undefined;
      create.push(await timeIt(async () => (s = await ModelSession.create(nodeBackend, bytes))));
      first.push(await timeIt(() => s!.runFirst(input, [1, ...c.shape])));
      await s!.release();
    }
    // calibration as the materializer runs it (NCHWc graph where this onnxruntime has it) and with the
    // plain graph onnxruntime optimises, alternated so both see the same machine
    const calib: number[] = [];
    const calibPlain: number[] = [];
    for (let i = 0; i < calibRuns; i++) {
      calib.push(await timeIt(() => calibrateBn(w, cfg, nodeBackend, layout)));
      calibPlain.push(await timeIt(() => calibrateBn(w, cfg, nodeBackend)));
    }
    out[name] = {
      subnet: space.id(cfg),
      onnxBytes: bytes.length,
      materializeMs: summary(build),
      calibrationMs: { ...summary(calib), images: c.count, batch: c.batch, graph: layout.nchwcBlock ? `nchwc${layout.nchwcBlock}` : 'plain' },
      calibrationPlainMs: summary(calibPlain),
      calibrationRatio: +(summary(calib).median / summary(calibPlain).median).toFixed(3),
      sessionCreateMs: summary(create),
      firstInferenceMs: summary(first),
    };
  }
  return out;
}

const results: Record<string, unknown>[] = [];
const fmnist = resolveSupernetDirSafe('fmnist-ofa');
if (fmnist) results.push(await family(fmnist, 'fmnist-ofa'));
else results.push({ ...(await family('test/fixtures/tiny/package', 'tiny (fmnist-ofa package not built yet)')) });
results.push(await family(resolveSupernetDir('ofa-mbv3-w1.0'), 'ofa-mbv3-w1.0'));
const when = new Date().toISOString();
const loadavg = loadavg_().map((v) => Math.round(v * 100) / 100);
process.stdout.write(`${JSON.stringify({ bench: 'materialize', when, loadavg, node: process.version, ort: nodeBackend.version, runs, results }, null, 2)}\n`);

function resolveSupernetDirSafe(name: string): string | undefined {
  try {
    const d = resolveSupernetDir(name);
    return existsSync(`${d}/manifest.json`) ? d : undefined;
  } catch {
    return undefined;
  }
}
