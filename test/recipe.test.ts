/**
 * The PyTorch training recipe still runs: one tiny training step on real Fashion-MNIST data.
 * Skipped when /usr/bin/python3 has no torch (CI installs python3-torch when it can).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareFmnist } from '../models/fmnist-ofa/data.js';
import { repoPath, tempDir } from './helpers.js';

const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

/** train.py's arguments for one tiny sandwich-rule step on the real split, written under `dir` */
function oneStep(dir: string): { args: string[]; out: string } {
  const data = join(dir, 'data');
  prepareFmnist(data);
  const out = join(dir, 'ck');
  return { out, args: [repoPath('models', 'fmnist-ofa', 'train.py'), '--data', data, '--out', out, '--full-epochs', '0', '--max-steps', '1', '--batch', '8', '--threads', '1'] };
}

/** the same train.py arguments writing to another --out directory */
function withOut(args: string[], dir: string): string[] {
  return args.map((a, i) => (args[i - 1] === '--out' ? dir : a));
}

test('fmnist-ofa recipe: one sandwich-rule training step writes a resumable checkpoint', { skip: hasTorch ? false : 'python3-torch not installed' }, () => {
  using tmp = tempDir();
  const { args, out } = oneStep(tmp.path);
  const r = spawnSync('/usr/bin/python3', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(out, 'last.pt')));
  const again = spawnSync('/usr/bin/python3', [...args.slice(0, -4), '--max-steps', '2', '--batch', '8', '--threads', '1'], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /resumed at step 1/);
});

test('fmnist-ofa recipe: --init starts a further phase from a checkpoint and keeps its recipe; a missing one is refused', { skip: hasTorch ? false : 'python3-torch not installed' }, () => {
  using tmp = tempDir();
  const { args, out } = oneStep(tmp.path);
  const first = spawnSync('/usr/bin/python3', [...args, '--random', '1'], { encoding: 'utf8' });
  assert.equal(first.status, 0, first.stderr);
  const out2 = join(tmp.path, 'phase2');
  const second = spawnSync('/usr/bin/python3', [...withOut(args, out2), '--init', join(out, 'last.pt'), '--random', '3', '--lr', '0.02', '--seed', '2'], { encoding: 'utf8' });
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stdout, /initialised from .*last\.pt \(step 1\)/);
  const probe = spawnSync('/usr/bin/python3', ['-c', [
    'import sys, json, torch',
    'a = torch.load(sys.argv[1]); b = torch.load(sys.argv[2])',
    'p = b["parents"]',
    'diff = max((a["model"][k].float() - b["model"][k].float()).abs().max().item() for k in a["model"] if k.endswith("weight"))',
    'print(json.dumps({"n": len(p), "steps": p[0]["steps"], "random": p[0]["args"]["random"], "now": b["args"]["random"], "step": b["step"], "diff": diff}))',
  ].join('\n'), join(out, 'last.pt'), join(out2, 'last.pt')], { encoding: 'utf8' });
  assert.equal(probe.status, 0, probe.stderr);
  // the new phase counts its own steps and records the parent's recipe; it started from the parent's weights
  // (one warm-up step moves them by < 1e-3; another seed's fresh initialisation would differ by ~0.1) and trained them
  const { diff, ...rest } = JSON.parse(probe.stdout) as { diff: number };
  assert.deepEqual(rest, { n: 1, steps: 1, random: 1, now: 3, step: 1 });
  assert.ok(diff > 0 && diff < 1e-2, `largest weight change ${diff}`);
  const missing = spawnSync('/usr/bin/python3', [...withOut(args, join(tmp.path, 'p3')), '--init', join(tmp.path, 'nope.pt')], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--init: no checkpoint or package at .*nope\.pt/);
});

test('fmnist-ofa recipe: --init takes the committed package (its recipe becomes the parent); a package whose weights fail their digest is refused', { skip: hasTorch ? false : 'python3-torch not installed' }, () => {
  using tmp = tempDir();
  const { args, out } = oneStep(tmp.path);
  const pkg = repoPath('models', 'fmnist-ofa', 'package');
  const r = spawnSync('/usr/bin/python3', [...args, '--init', pkg, '--students', 'step', '--lr', '0.001'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const manifest = JSON.parse(readFileSync(join(pkg, 'manifest.json'), 'utf8')) as { training: { earlier?: unknown[]; history: { step: number }[]; recipe: { epochs: number } } };
  assert.match(r.stdout, new RegExp(`initialised from .*package \\(step ${manifest.training.history.at(-1)!.step}\\)`));
  const probe = spawnSync('/usr/bin/python3', ['-c', [
    'import sys, json, torch, numpy as np',
    'b = torch.load(sys.argv[1]); idx = json.load(open(sys.argv[2] + "/weights.json"))["tensors"]',
    'blob = open(sys.argv[2] + "/weights.bin", "rb").read()',
    'e = idx["classifier.weight"]',
    'w = torch.from_numpy(np.frombuffer(blob, "<f4", e["length"] // 4, e["offset"]).reshape(e["shape"]).copy())',
    'p = b["parents"]',
    'print(json.dumps({"n": len(p), "epochs": p[-1]["args"]["epochs"], "history": len(p[-1]["history"]), "diff": (b["model"]["classifier.weight"] - w).abs().max().item()}))',
  ].join('\n'), join(out, 'last.pt'), pkg], { encoding: 'utf8' });
  assert.equal(probe.status, 0, probe.stderr);
  const { diff, ...rest } = JSON.parse(probe.stdout) as { diff: number };
  // the package's earlier phases, then the package's own last phase, are the new phase's parents
  assert.deepEqual(rest, { n: (manifest.training.earlier?.length ?? 0) + 1, epochs: manifest.training.recipe.epochs, history: manifest.training.history.length });
  // one step at lr 0.001 moves the trained classifier a little; a fresh one (std 0.01) would be ~0.25 away (its largest weight)
  assert.ok(diff > 0 && diff < 1e-2, `classifier change ${diff}`);

  const bad = join(tmp.path, 'bad-pkg');
  cpSync(pkg, bad, { recursive: true });
  const bin = readFileSync(join(bad, 'weights.bin'));
  bin.writeUInt8(bin.readUInt8(1000) ^ 0xff, 1000);
  writeFileSync(join(bad, 'weights.bin'), bin);
  const refused = spawnSync('/usr/bin/python3', [...withOut(args, join(tmp.path, 'p2')), '--init', bad], { encoding: 'utf8' });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /--init: .*bad-pkg\/weights\.bin does not match its manifest digest/);
  assert.ok(!existsSync(join(tmp.path, 'p2', 'last.pt')));

  writeFileSync(join(bad, 'manifest.json'), '{"files": [');
  const unreadable = spawnSync('/usr/bin/python3', [...withOut(args, join(tmp.path, 'p3')), '--init', bad], { encoding: 'utf8' });
  assert.notEqual(unreadable.status, 0);
  assert.match(unreadable.stderr, /--init: .*bad-pkg is not a readable nestswap package \(JSONDecodeError/);
  assert.ok(!existsSync(join(tmp.path, 'p3', 'last.pt')));
});

test('fmnist-ofa recipe options: flips only, zero-initialised residual BN scales, no clipping, students at one resolution per step; a bad --augment is refused', { skip: hasTorch ? false : 'python3-torch not installed' }, () => {
  using tmp = tempDir();
  const { args: base, out } = oneStep(tmp.path);
  const r = spawnSync('/usr/bin/python3', [...base, '--augment', 'flip', '--zero-residual-bn', '--dw-fan-in', '--clip', '0', '--wd', '5e-4', '--label-smoothing', '0', '--students', 'step'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // after one warm-up step (lr ~3e-4) residual blocks' last BN scales are still ~0, the others ~1
  const probe = spawnSync('/usr/bin/python3', ['-c', [
    'import sys, torch',
    'm = torch.load(sys.argv[1])["model"]',
    'res = abs(m["blocks.1.proj_bn.weight"]).max().item()',
    'first = abs(m["blocks.0.proj_bn.weight"]).min().item()',
    'print(res, first)',
  ].join('\n'), join(out, 'last.pt')], { encoding: 'utf8' });
  assert.equal(probe.status, 0, probe.stderr);
  const [res, first] = probe.stdout.trim().split(' ').map(Number);
  assert.ok(res! < 0.01, `residual block scale ${res}`);
  assert.ok(first! > 0.9, `first block of a stage (no residual) scale ${first}`);
  const bad = spawnSync('/usr/bin/python3', [...base, '--augment', 'mixup'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--augment: invalid choice: 'mixup'/);
});

test('the Fashion-MNIST split is 55,000 train / 5,000 validation / 10,000 test with empty rows dropped', () => {
  using tmp = tempDir();
  const d = prepareFmnist(tmp.path);
  const counts = [0, 0, 0];
  for (const s of d.split) counts[s]!++;
  assert.deepEqual(counts, [55000, 5000, 10000]);
  // the first 1,000 images of every class are test
  for (let cls = 0; cls < 10; cls++) assert.equal(d.split[cls * 7000], 2);
});
