/**
 * Once-for-All checkpoints: the native checkpoint reader (torch.save zip, safetensors), the mapping
 * of OFA's MobileNetV3 and ProxylessNAS supernets onto nestswap's architecture description, and the
 * materialized subnets against golden logits of OFA's own get_active_subnet() and
 * set_running_statistics (test/fixtures/ofa-import, written by OFA's code).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readCheckpoint, type StateDict } from '../runtime/checkpoint/index.js';
import { importOfaStateDict, parseOfaNetId } from '../runtime/import/ofa.js';
import { packageFiles } from '../runtime/import/package-files.js';
import { SupernetPackage } from '../runtime/package.js';
import { Materializer } from '../runtime/materializer.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { ModelSession } from '../runtime/session.js';
import { countTrainableParams } from '../runtime/cost.js';
import { isNestswapError } from '../runtime/errors.js';
import type { SubnetConfig } from '../runtime/space.js';
import { maxAbs, maxAbsDiff, repoPath } from './helpers.js';

interface Golden {
  checkpoint: string;
  net: string;
  n_classes: number;
  n_block_slots: number;
  n_stages: number;
  inputs: { file: string; shape: number[] };
  calibration: { file: string; shape: number[] };
  subnets: { name: string; config: SubnetConfig; logits_stored: number[][]; logits_recalibrated: number[][]; params: number }[];
}

const FIXTURES = repoPath('test', 'fixtures', 'ofa-import');
const SHARED_W10 = repoPath('..', 'shared', 'ofa-import', 'mbv3-w1.0');
const W10 = [SHARED_W10, '/work/shared/ofa-import/mbv3-w1.0'].find((d) => existsSync(`${d}/golden.json`));

function golden(dir: string): Golden {
  return JSON.parse(readFileSync(`${dir}/golden.json`, 'utf8')) as Golden;
}

function checkpointOf(dir: string): { g: Golden; sd: StateDict; bytes: Uint8Array } {
  const g = golden(dir);
  const bytes = new Uint8Array(readFileSync(`${dir}/${g.checkpoint}`));
  return { g, sd: readCheckpoint(bytes, g.checkpoint), bytes };
}

async function packageOf(dir: string): Promise<{ g: Golden; pkg: SupernetPackage }> {
  const { g, sd } = checkpointOf(dir);
  const imported = importOfaStateDict(sd, g.checkpoint, { source: g.checkpoint });
  const calibration = new Uint8Array(readFileSync(`${dir}/${g.calibration.file}`));
  const { manifest, files } = await packageFiles({ name: 'ofa-test', trained: true, producer: 'test', arch: imported.arch, tensors: imported.tensors, calibration });
  return { g, pkg: SupernetPackage.fromVerifiedFiles(manifest, files, dir) };
}

async function run(bytes: Uint8Array, input: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await ModelSession.create(nodeBackend, bytes);
  try {
    return (await s.runFirst(input, dims)).data;
  } finally {
    await s.release();
  }
}

function expectCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isNestswapError(e) && e.code === code && !e.message.includes('\n'));
}

/** Every golden subnet, stored and recalibrated statistics, within 1e-4 of the largest absolute logit; params equal OFA's. */
async function checkGoldens(dir: string): Promise<void> {
  const { g, pkg } = await packageOf(dir);
  assert.equal(pkg.space.nSlots, g.n_block_slots);
  assert.equal(pkg.space.n_stage, g.n_stages);
  assert.equal(pkg.arch.classes, g.n_classes);
  const input = new Float32Array(readFileSync(`${dir}/${g.inputs.file}`).buffer.slice(0));
  const m = new Materializer(pkg, nodeBackend);
  for (const s of g.subnets) {
    const cfg = pkg.space.parse(s.config);
    assert.equal(countTrainableParams(pkg.arch, cfg), s.params, `${s.name}: parameters`);
    for (const [calibrate, expected] of [[false, s.logits_stored], [true, s.logits_recalibrated]] as const) {
      const out = await m.materialize(s.config, { calibrate });
      const logits = await run(out.bytes, input, g.inputs.shape);
      const flat = expected.flat();
      const tol = 1e-4 * maxAbs(flat);
      const d = maxAbsDiff(logits, flat);
      assert.ok(d <= tol, `${g.checkpoint} ${s.name} (${calibrate ? 'recalibrated' : 'stored'} BN): max |diff| ${d} > ${tol}`);
    }
  }
}

test('the torch.save zip reader decodes OFA checkpoints: every tensor with its shape, num_batches_tracked as int64', () => {
  const { sd } = checkpointOf(`${FIXTURES}/mbv3-w0.35-c10`);
  const w = sd.get('first_conv.conv.weight')!;
  assert.deepEqual(w.shape, [8, 3, 3, 3]);
  assert.equal(w.dtype, 'float32');
  assert.equal(sd.get('first_conv.bn.num_batches_tracked')!.dtype, 'int64');
  assert.deepEqual(sd.get('blocks.1.conv.depth_conv.conv.7to5_matrix')!.shape, [25, 25]);
  assert.ok([...sd.values()].every((t) => t.data.every(Number.isFinite)));
});

test('a bare state_dict with float16, bfloat16, float64, int64, transposed and offset views reads as PyTorch holds it', () => {
  const sd = readCheckpoint(new Uint8Array(readFileSync(`${FIXTURES}/bare-state-dict.pt`)), 'bare');
  const want = JSON.parse(readFileSync(`${FIXTURES}/bare-state-dict.json`, 'utf8')) as Record<string, { shape: number[]; values: number[] }>;
  assert.deepEqual([...sd.keys()], Object.keys(want));
  for (const [k, v] of Object.entries(want)) {
    const t = sd.get(k)!;
    assert.deepEqual(t.shape, v.shape, k);
    assert.ok(maxAbsDiff(t.data, v.values) <= 1e-7 * Math.max(1, maxAbs(v.values)), k);
  }
});

test('safetensors files read like the same tensors from a torch checkpoint', () => {
  const { sd } = checkpointOf(`${FIXTURES}/proxyless-w0.5-c10`);
  const names = ['first_conv.conv.weight', 'classifier.linear.bias'];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  const parts: Uint8Array[] = [];
  for (const n of names) {
    const t = sd.get(n)!;
    const bytes = new Uint8Array(Float32Array.from(t.data).buffer);
    header[n] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + bytes.length] };
    off += bytes.length;
    parts.push(bytes);
  }
  const h = new TextEncoder().encode(JSON.stringify(header));
  const file = new Uint8Array(8 + h.length + off);
  new DataView(file.buffer).setBigUint64(0, BigInt(h.length), true);
  file.set(h, 8);
  let p = 8 + h.length;
  for (const b of parts) (file.set(b, p), (p += b.length));
  const st = readCheckpoint(file, 'x.safetensors');
  for (const n of names) {
    assert.deepEqual(st.get(n)!.shape, sd.get(n)!.shape);
    assert.deepEqual(Array.from(st.get(n)!.data), Array.from(sd.get(n)!.data));
  }
  expectCode(() => readCheckpoint(file.subarray(0, file.length - 10), 'x.safetensors'), 'ERR_CHECKPOINT_FORMAT');
});

test('a truncated checkpoint, an empty file, a text file and a zip that is no checkpoint fail with ERR_CHECKPOINT_FORMAT', () => {
  const { bytes } = checkpointOf(`${FIXTURES}/mbv3-w0.35-c10`);
  expectCode(() => readCheckpoint(bytes.subarray(0, bytes.length >> 1), 'half'), 'ERR_CHECKPOINT_FORMAT');
  expectCode(() => readCheckpoint(new Uint8Array(0), 'empty'), 'ERR_CHECKPOINT_FORMAT');
  expectCode(() => readCheckpoint(new TextEncoder().encode('not a checkpoint\n'), 'text'), 'ERR_CHECKPOINT_FORMAT');
  const zipOfText = readFileSync(repoPath('test', 'fixtures', 'ofa-import', 'bare-state-dict.pt'));
  const renamed = new Uint8Array(zipOfText);
  // rename data.pkl inside the archive (local header and central directory): a zip, but not torch's layout
  const s = Buffer.from(renamed);
  let i = s.indexOf('data.pkl');
  while (i >= 0) {
    s.write('data.pkX', i);
    i = s.indexOf('data.pkl', i + 1);
  }
  expectCode(() => readCheckpoint(new Uint8Array(s), 'renamed'), 'ERR_CHECKPOINT_FORMAT');
});

test('a pickle that calls anything but torch rebuild functions is refused (ERR_CHECKPOINT_UNSUPPORTED), not run', () => {
  const s = Buffer.from(readFileSync(`${FIXTURES}/bare-state-dict.pt`));
  const i = s.indexOf('collections\nOrderedDict');
  assert.ok(i > 0);
  s.write('posix\nsystemDict', i, 'latin1'); // same length: the archive stays valid (stored entries, no CRC check of the pickle by torch)
  assert.throws(() => readCheckpoint(new Uint8Array(s), 'evil'), (e: unknown) => isNestswapError(e) && /posix\.systemDict/.test(e.message) && (e.code === 'ERR_CHECKPOINT_UNSUPPORTED' || e.code === 'ERR_CHECKPOINT_FORMAT'));
});

test('net ids: unknown ones fail with ERR_IMPORT_NET; known ones give OFA\'s lists and width', () => {
  assert.deepEqual(parseOfaNetId('ofa_proxyless_d234_e346_k357_w1.3'), { id: 'ofa_proxyless_d234_e346_k357_w1.3', kind: 'proxyless', depth_list: [2, 3, 4], expand_list: [3, 4, 6], ks_list: [3, 5, 7], width: 1.3 });
  for (const bad of ['ofa_resnet50', 'mbv3_w1.0', 'ofa_mbv3_d234_e346_k346_w1.0', 'ofa_mbv3_d234_e346_k357_w0'])
    expectCode(() => parseOfaNetId(bad), 'ERR_IMPORT_NET');
});

test('a missing tensor fails with ERR_CHECKPOINT_TENSOR naming it; a checkpoint of another net or width with ERR_CHECKPOINT_SHAPE', () => {
  const { sd, g } = checkpointOf(`${FIXTURES}/mbv3-w0.35-c10`);
  const without = new Map(sd);
  without.delete('blocks.7.conv.depth_conv.se.fc.expand.bias');
  assert.throws(() => importOfaStateDict(without, g.checkpoint), (e: unknown) => isNestswapError(e, 'ERR_CHECKPOINT_TENSOR') && e.message.includes('blocks.7.conv.depth_conv.se.fc.expand.bias'));
  expectCode(() => importOfaStateDict(sd, 'ofa_mbv3_d234_e346_k357_w1.0'), 'ERR_CHECKPOINT_SHAPE');
  const proxyless = checkpointOf(`${FIXTURES}/proxyless-w0.5-c10`).sd;
  assert.throws(() => importOfaStateDict(proxyless, 'ofa_mbv3_d234_e346_k357_w0.35'), (e: unknown) => isNestswapError(e) && ['ERR_CHECKPOINT_SHAPE', 'ERR_CHECKPOINT_TENSOR'].includes(e.code));
  expectCode(() => importOfaStateDict(sd, 'ofa_mbv3_d234_e346_k357'), 'ERR_IMPORT_NET');
});

test('OFA ProxylessNAS: 21 block slots in 6 stages, the last of one fixed block; OFA\'s drawn sixth depth is capped at 1', async () => {
  const { pkg } = await packageOf(`${FIXTURES}/proxyless-w0.5-c10`);
  assert.deepEqual(pkg.space.stageBlocks, [4, 4, 4, 4, 4, 1]);
  const cfg = pkg.space.parse({ ks: new Array(21).fill(5), e: new Array(21).fill(4), d: [2, 3, 4, 2, 3, 4], image_size: 160 });
  assert.equal(cfg.d[5], 1);
  assert.equal(pkg.space.id(cfg), pkg.space.id(pkg.space.parse({ ...cfg, d: [2, 3, 4, 2, 3, 2] })));
  assert.deepEqual(pkg.space.fromId(pkg.space.id(cfg)), cfg);
  assert.equal(pkg.arch.stages[5]!.act, 'relu6');
  assert.equal(pkg.arch.feature_mix, null);
});

test('OFA MobileNetV3 w0.35 (10 classes): every golden subnet within 1e-4 of OFA\'s logits, stored and recalibrated BN; params equal', async () => {
  await checkGoldens(`${FIXTURES}/mbv3-w0.35-c10`);
});

test('OFA ProxylessNAS w0.5 (10 classes): every golden subnet within 1e-4 of OFA\'s logits, stored and recalibrated BN; params equal', async () => {
  await checkGoldens(`${FIXTURES}/proxyless-w0.5-c10`);
});

test('OFA MobileNetV3 w1.0 (the zoo\'s shape, 1000 classes), when its fixture is present', { skip: W10 ? false : 'shared/ofa-import/mbv3-w1.0 is not present' }, async () => {
  await checkGoldens(W10!);
});
