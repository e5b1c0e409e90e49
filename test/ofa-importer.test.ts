/**
 * `nestswap import ofa`: the command end to end (a real process), calibration images from JPEG/PNG
 * files preprocessed as OFA evaluates ImageNet, ImageNet labels, OFA's published specialized
 * networks and OFA's trained w1.2 accuracy predictor on imported packages, and the command's errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { Materializer } from '../runtime/materializer.js';
import { ModelSession } from '../runtime/session.js';
import { countMacs } from '../runtime/cost.js';
import { loadCalibrationSet } from '../runtime/node/calibration-images.js';
import { importOfaCheckpoint, parseSizeList } from '../runtime/node/import-ofa.js';
import { packageSearchInputs } from '../runtime/node/search-inputs.js';
import { seededOfaStateDict } from '../runtime/import/ofa-checkpoint.js';
import { writeSafetensors } from '../runtime/checkpoint/safetensors.js';
import { isNestswapError } from '../runtime/errors.js';
import type { SubnetConfig } from '../runtime/space.js';
import { maxAbs, maxAbsDiff, repoPath, tempDir } from './helpers.js';

const FIX = repoPath('test', 'fixtures', 'ofa-import');
const MBV3 = join(FIX, 'mbv3-w0.35-c10');
const REF = [repoPath('..', 'shared', 'ofa-reference'), '/work/shared/ofa-reference'].find((d) => existsSync(join(d, 'ofa_specialized_archs.json')));
const W10 = [repoPath('..', 'shared', 'ofa-import', 'mbv3-w1.0'), '/work/shared/ofa-import/mbv3-w1.0'].find((d) => existsSync(join(d, 'golden.json')));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [repoPath('bin', 'nestswap.js'), ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function writeSeeded(dir: string, net: string, classes: number): string {
  const path = join(dir, `${net}.safetensors`);
  writeFileSync(path, writeSafetensors(seededOfaStateDict(net, classes, 7)));
  return path;
}

test('nestswap import ofa writes a package every command loads; its subnets reproduce OFA\'s recalibrated logits', async () => {
  using tmp = tempDir();
  const out = join(tmp.path, 'pkg');
  const golden = JSON.parse(readFileSync(join(MBV3, 'golden.json'), 'utf8')) as { inputs: { shape: number[] }; subnets: { name: string; config: SubnetConfig; logits_recalibrated: number[][] }[] };
  const r = cli('import', 'ofa', '--checkpoint', join(MBV3, 'ofa_mbv3_d234_e346_k357_w0.35'), '--net', 'ofa_mbv3_d234_e346_k357_w0.35', '--calibration', join(MBV3, 'calibration.u8'), '--out', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { classes: number; blockSlots: number; calibrationImages: number; unusedTensors: string[] };
  assert.deepEqual([summary.classes, summary.blockSlots, summary.calibrationImages, summary.unusedTensors.length], [10, 20, 24, 0]);
  const pkg = await loadPackageDir(out);
  assert.equal(pkg.manifest.format, 'nestswap.package/1');
  assert.equal(pkg.arch.origin, 'ofa_mbv3_d234_e346_k357_w0.35');
  assert.equal(pkg.manifest.input.labels, null);
  const input = new Float32Array(readFileSync(join(MBV3, 'inputs.f32')).buffer.slice(0));
  const m = new Materializer(pkg, nodeBackend);
  for (const s of golden.subnets.slice(0, 3)) {
    const bytes = (await m.materialize(s.config)).bytes;
    const session = await ModelSession.create(nodeBackend, bytes);
    const logits = (await session.runFirst(input, golden.inputs.shape)).data;
    await session.release();
    const flat = s.logits_recalibrated.flat();
    assert.ok(maxAbsDiff(logits, flat) <= 1e-4 * maxAbs(flat), s.name);
  }
  // the materialize command takes the imported package like any other
  const onnx = join(tmp.path, 'max.onnx');
  const mat = cli('materialize', '--supernet', out, '--subnet', JSON.stringify(golden.subnets[0]!.config), '--out', onnx, '--no-calibrate');
  assert.equal(mat.status, 0, mat.stderr);
  assert.ok(readFileSync(onnx).length > 100_000);
});

test('calibration images from a directory of JPEG/PNG files are resized and centre-cropped as OFA (PIL) does', () => {
  const dir = join(FIX, 'images');
  const set = loadCalibrationSet(dir, 224);
  const expected = new Uint8Array(readFileSync(join(FIX, 'images-expected-224.u8')));
  assert.equal(set.source, 'images');
  assert.equal(set.count, 4);
  assert.equal(set.data.length, expected.length);
  const per = 3 * 224 * 224;
  const names = ['a-wide.png', 'b-tall.jpg', 'c-square.png', 'd-small-rgba.png'];
  for (let i = 0; i < 4; i++) {
    const a = set.data.subarray(i * per, (i + 1) * per);
    const b = expected.subarray(i * per, (i + 1) * per);
    let worst = 0;
    let sum = 0;
    for (let j = 0; j < per; j++) {
      const d = Math.abs(a[j]! - b[j]!);
      worst = Math.max(worst, d);
      sum += d;
    }
    // PIL resamples in fixed point, and JPEG decoders differ by a level or two
    const jpeg = names[i]!.endsWith('.jpg');
    assert.ok(worst <= (jpeg ? 8 : 2) && sum / per <= (jpeg ? 1.5 : 0.5), `${names[i]}: max |diff| ${worst}, mean ${sum / per}`);
  }
  assert.equal(loadCalibrationSet(dir, 224, 2).count, 2);
});

test('a 1000-class net gets ImageNet\'s class names; --labels overrides them; a safetensors checkpoint imports too', async () => {
  using tmp = tempDir();
  const ckpt = writeSeeded(tmp.path, 'ofa_mbv3_d234_e346_k357_w0.35', 1000);
  const calib = join(MBV3, 'calibration.u8');
  const r = await importOfaCheckpoint({ checkpoint: ckpt, net: 'ofa_mbv3_d234_e346_k357_w0.35', calibration: calib, out: join(tmp.path, 'a'), calibrationImages: 4 });
  const labels = r.manifest.input.labels!;
  assert.equal(labels.length, 1000);
  assert.deepEqual([labels[0], labels[1], labels[207], labels[999]], ['tench', 'goldfish', 'golden retriever', 'toilet tissue']);
  assert.equal(r.calibrationImages, 4);
  const names = join(tmp.path, 'names.txt');
  writeFileSync(names, Array.from({ length: 1000 }, (_, i) => `class ${i}`).join('\n'));
  const r2 = await importOfaCheckpoint({ checkpoint: ckpt, net: 'ofa_mbv3_d234_e346_k357_w0.35', calibration: calib, out: join(tmp.path, 'b'), labels: names, calibrationImages: 4 });
  assert.equal(r2.manifest.input.labels![5], 'class 5');
});

test('OFA\'s published specialized networks (24 of width 1.0, 10 of width 1.2) materialize from imported packages; MACs match their names', { skip: REF ? false : 'shared/ofa-reference is not present' }, async () => {
  const archs = JSON.parse(readFileSync(join(REF!, 'ofa_specialized_archs.json'), 'utf8')) as { name: string; width_mult: number; arch: SubnetConfig; published_mflops?: number }[];
  using tmp = tempDir();
  let built = 0;
  for (const w of [1.0, 1.2]) {
    const net = `ofa_mbv3_d234_e346_k357_w${w.toFixed(1)}`;
    const mine = archs.filter((a) => a.width_mult === w);
    const sizes = [...new Set([...parseSizeList('128..224:4'), ...mine.map((a) => a.arch.image_size)])].sort((a, b) => a - b);
    const ckpt = w === 1.0 && W10 ? join(W10, 'ofa_mbv3_d234_e346_k357_w1.0') : writeSeeded(tmp.path, net, 1000);
    const out = join(tmp.path, net);
    // calibration from images: the native size is the largest resolution (260 for w1.2's published nets)
    await importOfaCheckpoint({ checkpoint: ckpt, net, calibration: join(FIX, 'images'), out, imageSizeList: sizes, calibrationImages: 2 });
    const pkg = await loadPackageDir(out);
    const m = new Materializer(pkg, nodeBackend);
    for (const a of mine) {
      const cfg = pkg.space.parse(a.arch, a.name);
      const sub = await m.materialize(cfg, { calibrate: false });
      assert.ok(sub.bytes.length > 1_000_000, a.name);
      if (a.published_mflops) {
        const mflops = countMacs(pkg.arch, cfg) / 1e6;
        assert.ok(Math.abs(mflops - a.published_mflops) / a.published_mflops < 0.01, `${a.name}: ${mflops} MMACs`);
      }
      built++;
    }
  }
  assert.equal(built, 34);
});

test('OFA\'s trained w1.2 accuracy predictor plugs into an imported w1.2 package and gives OFA\'s predictions', { skip: REF ? false : 'shared/ofa-reference is not present' }, async () => {
  using tmp = tempDir();
  const net = 'ofa_mbv3_d234_e346_k357_w1.2';
  const out = join(tmp.path, 'w12');
  const r = cli('import', 'ofa', '--checkpoint', writeSeeded(tmp.path, net, 1000), '--net', net, '--calibration', join(MBV3, 'calibration.u8'), '--out', out,
    '--accuracy-predictor', join(REF!, 'ofa_mbv3_w1.2_acc_predictor.onnx'), '--predictor-image-size-list', '160..224:16', '--calibration-images', '2');
  assert.equal(r.status, 0, r.stderr);
  const pkg = await loadPackageDir(out);
  const inputs = await packageSearchInputs(pkg);
  const vectors = JSON.parse(readFileSync(join(REF!, 'acc_predictor_test_vectors.json'), 'utf8')) as { vectors: { arch: SubnetConfig; accuracy: number }[] };
  const cfgs = vectors.vectors.map((v) => pkg.space.parse(v.arch));
  const got = await inputs.predictor.predictBatch(inputs.encoder.encodeBatch(cfgs), cfgs.length);
  vectors.vectors.forEach((v, i) => assert.ok(Math.abs(got[i]! - v.accuracy) < 1e-6, `vector ${i}: ${got[i]} vs ${v.accuracy}`));
  // without its resolution list the predictor does not fit the 25-resolution space: refused before anything is written
  const bad = cli('import', 'ofa', '--checkpoint', join(tmp.path, `${net}.safetensors`), '--net', net, '--calibration', join(MBV3, 'calibration.u8'), '--out', join(tmp.path, 'no'),
    '--accuracy-predictor', join(REF!, 'ofa_mbv3_w1.2_acc_predictor.onnx'));
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /\[ERR_PREDICTOR_INVALID\]\n$/);
  assert.equal(existsSync(join(tmp.path, 'no')), false);
});

test('import errors: one line with a stable code and exit status, nothing written', () => {
  using tmp = tempDir();
  const ckpt = join(MBV3, 'ofa_mbv3_d234_e346_k357_w0.35');
  const calib = join(MBV3, 'calibration.u8');
  const half = join(tmp.path, 'half.pth');
  writeFileSync(half, readFileSync(ckpt).subarray(0, 1_000_000));
  const oddCalib = join(tmp.path, 'odd.u8');
  writeFileSync(oddCalib, new Uint8Array(1000));
  const emptyDir = join(tmp.path, 'empty');
  mkdirSync(emptyDir);
  const notPkg = join(tmp.path, 'mine');
  mkdirSync(notPkg);
  writeFileSync(join(notPkg, 'notes.txt'), 'keep me');
  const cases: [string[], number, string][] = [
    [['--checkpoint', ckpt, '--net', 'ofa_resnet50', '--calibration', calib], 1, 'ERR_IMPORT_NET'],
    [['--checkpoint', half, '--net', 'ofa_mbv3_d234_e346_k357_w0.35', '--calibration', calib], 1, 'ERR_CHECKPOINT_FORMAT'],
    [['--checkpoint', ckpt, '--net', 'ofa_mbv3_d234_e346_k357_w1.0', '--calibration', calib], 1, 'ERR_CHECKPOINT_SHAPE'],
    [['--checkpoint', ckpt, '--net', 'ofa_mbv3_d234_e346_k357_w0.35', '--calibration', oddCalib], 1, 'ERR_CALIBRATION_INPUT'],
    [['--checkpoint', ckpt, '--net', 'ofa_mbv3_d234_e346_k357_w0.35', '--calibration', emptyDir], 1, 'ERR_CALIBRATION_INPUT'],
    [['--checkpoint', ckpt, '--calibration', calib], 2, 'ERR_USAGE'],
    [['--checkpoint', ckpt, '--net', 'ofa_mbv3_d234_e346_k357_w0.35', '--calibration', calib, '--image-size-list', '224..128'], 2, 'ERR_USAGE'],
  ];
  for (const [args, status, code] of cases) {
    const out = join(tmp.path, `out-${code}`);
    const r = cli('import', 'ofa', ...args, '--out', out);
    assert.equal(r.status, status, `${code}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^nestswap: [^\\n]+\\[${code}\\]\\n$`), code);
    assert.equal(existsSync(out), false, `${code}: nothing written`);
  }
  const r = cli('import', 'ofa', '--checkpoint', ckpt, '--net', 'ofa_mbv3_d234_e346_k357_w0.35', '--calibration', calib, '--out', notPkg);
  assert.equal(r.status, 2);
  assert.equal(readFileSync(join(notPkg, 'notes.txt'), 'utf8'), 'keep me');
  assert.equal(cli('import', 'keras').status, 2);
  assert.throws(() => parseSizeList('abc'), (e: unknown) => isNestswapError(e, 'ERR_USAGE'));
});
