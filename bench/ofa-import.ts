/**
 * Importing Once-for-All checkpoints → JSON on stdout (bench/results/ofa-import.json).
 *
 *   node dist/bench/ofa-import.js [--checkpoint FILE] [--calibration FILE.u8] [--runs 3] [--images 2000]
 *
 * Defaults to the full-width fixture ../shared/ofa-import/mbv3-w1.0 (OFA's w1.0 zoo shape, 1,000 classes).
 * Reports, median over runs: import (read + map + write, no BN calibration), materializing the largest
 * subnet at 224 px (stored statistics), and BN recalibration of a mid subnet (k5 e4 d3) at 160 px on
 * `--images` images in batches of 200, nestswap (plain and NCHWc graphs) next to OFA's PyTorch
 * set_running_statistics (bench/ofa_reference.py, /usr/bin/python3, when torch is installed), same threads.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { importOfaCheckpoint } from '../runtime/node/import-ofa.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { Materializer } from '../runtime/materializer.js';
import { calibrateBn } from '../runtime/calibrate.js';
import { nchwcCalibration } from '../runtime/node/nchwc.js';
import { summary } from './stats.js';

const { values } = parseArgs({
  options: {
    checkpoint: { type: 'string', default: '../shared/ofa-import/mbv3-w1.0/ofa_mbv3_d234_e346_k357_w1.0' },
    calibration: { type: 'string', default: '../shared/ofa-import/mbv3-w1.0/calibration.u8' },
    runs: { type: 'string', default: '3' },
    images: { type: 'string', default: '2000' },
    threads: { type: 'string', default: '2' },
  },
});
if (!existsSync(values.checkpoint) || !existsSync(values.calibration)) {
  process.stdout.write(`${JSON.stringify({ bench: 'ofa-import', skipped: `needs ${values.checkpoint} and ${values.calibration}` })}\n`);
  process.exit(0);
}
const runs = Number(values.runs);
const images = Number(values.images);
const threads = Number(values.threads);
const tmp = mkdtempSync(join(tmpdir(), 'nestswap-ofa-bench-'));
const net = 'ofa_mbv3_d234_e346_k357_w1.0';
try {
  // 1. import (the fixture's calibration images as a raw file: no decoding, no BN calibration)
  const importMs: number[] = [];
  let out = '';
  for (let i = 0; i < runs; i++) {
    const r = await importOfaCheckpoint({ checkpoint: values.checkpoint, net, calibration: values.calibration, out: join(tmp, 'pkg') });
    importMs.push(r.timings.totalMs);
    out = r.out;
  }
  // 2. largest subnet at 224, stored statistics
  const pkg = await loadPackageDir(out);
  const m = new Materializer(pkg, nodeBackend);
  const buildMs: number[] = [];
  for (let i = 0; i < runs + 2; i++) buildMs.push((await m.materialize(pkg.space.max(), { calibrate: false })).buildMs);
  // 3. calibration of a mid subnet at 160 px on `images` images: a package whose calibration set repeats the fixture's
  const raw = new Uint8Array(readFileSync(values.calibration));
  const per = 3 * 224 * 224;
  const big = new Uint8Array(images * per);
  for (let i = 0; i < images; i++) big.set(raw.subarray(((i * per) % raw.length), ((i * per) % raw.length) + per), i * per);
  const calibFile = join(tmp, 'calib.u8');
  writeFileSync(calibFile, big);
  await importOfaCheckpoint({ checkpoint: values.checkpoint, net, calibration: calibFile, out: join(tmp, 'pkg2') });
  const pkg2 = await loadPackageDir(join(tmp, 'pkg2'));
  const mid = pkg2.space.parse({ ks: new Array(20).fill(5), e: new Array(20).fill(4), d: [3, 3, 3, 3, 3], image_size: 160 });
  const m2 = new Materializer(pkg2, nodeBackend);
  const timeCal = async (opts: Parameters<typeof calibrateBn>[3]) => {
    const t0 = performance.now();
    await calibrateBn(m2.weights, mid, nodeBackend, { images, batch: 200, threads, ...opts });
    return (performance.now() - t0) / 1000;
  };
  const note = (what: string, v: unknown) => process.stderr.write(`${what}: ${JSON.stringify(v)}\n`);
  note('importMs', importMs);
  note('largestBuildMs', buildMs);
  const plainS = await timeCal({});
  note('nestswapPlainS', plainS);
  const layout = await nchwcCalibration(m2.weights, nodeBackend);
  const nchwcS = layout.nchwcBlock ? await timeCal(layout) : null;
  note('nestswapNchwcS', nchwcS);
  // 4. PyTorch, same subnet, same images, same threads
  let torch: Record<string, unknown> | null = null;
  const py = spawnSync('/usr/bin/python3', ['bench/ofa_reference.py', values.checkpoint, calibFile, String(images), '160', '5', '4', '3', String(threads)], { encoding: 'utf8', timeout: 1_800_000 });
  if (py.status === 0) torch = JSON.parse(py.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  const best = nchwcS ?? plainS;
  const result = {
    bench: 'ofa-import',
    date: new Date().toISOString().slice(0, 10),
    checkpoint: net,
    importMs: summary(importMs),
    importTargetMs: 3000,
    largestBuildMs: summary(buildMs),
    largestBuildTargetMs: 150,
    calibration: {
      subnet: pkg2.space.id(mid),
      images,
      batch: 200,
      threads,
      nestswapPlainS: Math.round(plainS * 100) / 100,
      nestswapNchwcS: nchwcS === null ? null : Math.round(nchwcS * 100) / 100,
      pytorchS: torch ? Math.round((torch.seconds as number) * 100) / 100 : null,
      pytorch: torch ?? (py.stderr.trim().split('\n').pop() || 'not run'),
      speedupVsPytorch: torch ? Math.round(((torch.seconds as number) / best) * 100) / 100 : null,
    },
  };
  process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
