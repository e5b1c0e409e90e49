/**
 * The builder path of main-thread serving: a worker materializes a subnet, has onnxruntime optimise
 * it and save the optimised graph, and checks it; the serving thread loads the optimised graph with
 * optimisation off. The loaded model must answer as the raw ONNX does, a failed check must keep the
 * old model serving, and an idle builder must go away.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { workerBackend } from '../runtime/node/ort-worker.js';
import { Materializer } from '../runtime/materializer.js';
import { HotSwapper, type CheckedElsewhere } from '../runtime/hot-swap.js';
import { ModelSession, ortSessionOptions } from '../runtime/session.js';
import { nchwcSupport } from '../runtime/node/nchwc.js';
import { FAST, maxAbsDiff, TINY } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const nchwc of [true, false]) {
  test(`a subnet prepared in the builder (${nchwc ? 'NCHWc written by the materializer where onnxruntime has it' : "onnxruntime's optimiser"}) loads with optimisation off and answers as its raw ONNX; its check ran there; a bad config fails clearly`, async (t) => {
    const pkg = await loadPackageDir(TINY);
    const m = new Materializer(pkg, nodeBackend);
    const wb = workerBackend({ workers: 1, nchwc });
    t.after(() => wb.close());
    const written = nchwc && (await nchwcSupport()).block > 0;
    const shape = pkg.manifest.input.shape;
    const per = shape.reduce((a, b) => a * b, 1);
    const x = Float32Array.from({ length: 3 * per }, (_, i) => ((i * 29) % 89) / 89);
    const check = { input: x.slice(0, per), dims: [1, ...shape], warmupRuns: 1, checkRuns: 4 };
    for (const cfg of [pkg.space.min(), pkg.space.max()]) {
      const { stats } = await m.statistics(cfg, FAST.calibration);
      const raw = (await m.materialize(cfg, FAST)).bytes;
      const prepared = await wb.prepareSubnet(pkg, cfg, stats, ortSessionOptions(nodeBackend, { threads: 1 }), check);
      assert.ok(Buffer.compare(Buffer.from(prepared.bytes), Buffer.from(raw)) !== 0, 'the builder returns the optimised graph, not the raw ONNX');
      assert.equal(prepared.optimized, true);
      assert.equal(prepared.nchwc, written);
      const here = await ModelSession.create(nodeBackend, raw, { threads: 1 });
      const opt = await ModelSession.create(nodeBackend, prepared.bytes, { threads: 1, graphOptimizationLevel: 'disabled' });
      const a = await here.runFirst(x, [3, ...shape]);
      const b = await opt.runFirst(x, [3, ...shape]);
      assert.deepEqual(b.dims, a.dims);
      assert.ok(maxAbsDiff(a.data, b.data) <= 1e-5, `optimised graph differs by ${maxAbsDiff(a.data, b.data)}`);
      const checked = await prepared.checked;
      assert.equal(checked.times.length, 4);
      assert.ok(checked.times.every((ms) => ms > 0));
      assert.deepEqual(checked.output.dims, [1, a.dims[1]]);
      assert.ok(maxAbsDiff(checked.output.data, a.data.subarray(0, a.dims[1])) <= 1e-5, "the check ran the candidate on the swapper's input");
      await here.release();
      await opt.release();
    }
    const bad = { ...pkg.space.max(), e: pkg.space.max().e.map(() => 5) };
    await assert.rejects(wb.prepareSubnet(pkg, bad, undefined, ortSessionOptions(nodeBackend, {}), check), /expand|e\b|choices/i);
  });
}

test('an idle builder worker ends after idleExitMs; the next build starts a fresh one', async (t) => {
  const pkg = await loadPackageDir(TINY);
  const wb = workerBackend({ workers: 1, idleExitMs: 150 });
  t.after(() => wb.close());
  const check = { input: new Float32Array(pkg.manifest.input.shape.reduce((a, b) => a * b, 1)), dims: [1, ...pkg.manifest.input.shape], warmupRuns: 0, checkRuns: 1 };
  const opts = ortSessionOptions(nodeBackend, {});
  await (await wb.prepareSubnet(pkg, pkg.space.min(), undefined, opts, check)).checked;
  assert.deepEqual(wb.occupancy(), [0], 'the builder is up, holding no session after its check');
  let gone = false;
  for (let i = 0; i < 50 && !gone; i++) {
    await sleep(50);
    gone = wb.occupancy().length === 0;
  }
  assert.ok(gone, 'the idle worker ended');
  const again = await wb.prepareSubnet(pkg, pkg.space.max(), undefined, opts, check);
  assert.ok((await again.checked).output.data.every(Number.isFinite));
  assert.deepEqual(wb.occupancy(), [0]);
});

test('warm() starts the builder and hands it the package before any build; an idle warmed builder still ends', async (t) => {
  const pkg = await loadPackageDir(TINY);
  const wb = workerBackend({ workers: 1, idleExitMs: 150 });
  t.after(() => wb.close());
  assert.deepEqual(wb.occupancy(), [], 'no worker before');
  await wb.warm(pkg);
  assert.deepEqual(wb.occupancy(), [0], 'a worker is up, holding no session');
  await wb.warm(pkg); // again: the same worker
  assert.deepEqual(wb.occupancy(), [0]);
  const layout = await nchwcSupport();
  assert.deepEqual(wb.nchwcOf(pkg), { block: layout.block, checks: 1 }, 'the warmed worker settled the NCHWc layout once');
  const check = { input: new Float32Array(pkg.manifest.input.shape.reduce((a, b) => a * b, 1)), dims: [1, ...pkg.manifest.input.shape], warmupRuns: 0, checkRuns: 1 };
  const p = await wb.prepareSubnet(pkg, pkg.space.min(), undefined, ortSessionOptions(nodeBackend, {}), check);
  assert.ok((await p.checked).output.data.every(Number.isFinite));
  let gone = false;
  for (let i = 0; i < 50 && !gone; i++) {
    await sleep(50);
    gone = wb.occupancy().length === 0;
  }
  assert.ok(gone, 'the idle worker ended');
  await wb.warm(pkg); // a fresh worker: handed the layout with the package, not probing and checking again
  assert.deepEqual(wb.occupancy(), [0]);
  assert.deepEqual(wb.nchwcOf(pkg), { block: layout.block, checks: 1 });
});

test('a candidate checked where it was built: non-finite outputs there, or a check that never completes, keep the old model serving', async () => {
  const pkg = await loadPackageDir(TINY);
  const m = new Materializer(pkg, nodeBackend);
  const max = pkg.space.max();
  let verdict: () => Promise<CheckedElsewhere> = async () => ({ times: [0.5, 0.2, 0.3], output: { data: Float32Array.of(1, 2, 3, 4, 5), dims: [1, 5] } });
  const hot = new HotSwapper({
    backend: nodeBackend,
    sampleShape: pkg.manifest.input.shape,
    idOf: (c) => pkg.space.id(c),
    build: async (c) => {
      const r = await m.materialize(c, FAST);
      if (pkg.space.id(c) !== pkg.space.id(max)) return { subnetId: r.subnetId, bytes: r.bytes };
      const checked = verdict();
      checked.catch(() => undefined);
      return { subnetId: r.subnetId, bytes: r.bytes, checked };
    },
    onnxCacheBytes: 0,
    session: { threads: 1 },
  });
  await hot.swapTo(pkg.space.min());
  const x = new Float32Array(pkg.manifest.input.shape.reduce((a, b) => a * b, 1)).fill(0.3);
  const before = await hot.infer(x, 1);

  verdict = async () => ({ times: [0.5], output: { data: Float32Array.of(1, Number.NaN, 3, 4, 5), dims: [1, 5] } });
  const r1 = await hot.swapTo(max);
  assert.equal(r1.outcome, 'failed');
  assert.equal(r1.error?.code, 'ERR_HEALTH_CHECK');
  assert.match(r1.error!.message, /where it was built/);

  verdict = () => Promise.reject(new Error('onnxruntime worker exited (code 1)'));
  const r2 = await hot.swapTo(max);
  assert.equal(r2.outcome, 'failed');
  assert.equal(r2.error?.code, 'ERR_HEALTH_CHECK');
  assert.match(r2.error!.message, /worker exited/);

  assert.equal(hot.active!.subnetId, pkg.space.id(pkg.space.min()));
  assert.deepEqual(Array.from((await hot.infer(x, 1)).logits), Array.from(before.logits));

  verdict = async () => ({ times: [0.5, 0.2, 0.3], output: { data: Float32Array.of(1, 2, 3, 4, 5), dims: [1, 5] } });
  const r3 = await hot.swapTo(max);
  assert.equal(r3.outcome, 'swapped');
  assert.equal(r3.checkLatencyMs, 0.3, "the checked latency is the median of the builder's runs");
  await hot.close();
});

test('where the optimised graph cannot be saved (no writable temp dir), the builder hands back the raw ONNX instead of failing', async (t) => {
  const pkg = await loadPackageDir(TINY);
  const m = new Materializer(pkg, nodeBackend);
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = '/nonexistent/nestswap-test'; // a worker copies the environment when it starts
  const wb = workerBackend({ workers: 1, nchwc: false }); // onnxruntime optimises (and fails to save)
  t.after(async () => {
    await wb.close();
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  });
  const cfg = pkg.space.max();
  const shape = pkg.manifest.input.shape;
  const check = { input: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.4), dims: [1, ...shape], warmupRuns: 0, checkRuns: 1 };
  const p = await wb.prepareSubnet(pkg, cfg, undefined, ortSessionOptions(nodeBackend, {}), check);
  assert.equal(p.optimized, false);
  const raw = (await m.materialize(cfg, { calibrate: false })).bytes;
  assert.equal(Buffer.compare(Buffer.from(p.bytes), Buffer.from(raw)), 0, 'the raw ONNX came back');
  const s = await ModelSession.create(nodeBackend, p.bytes);
  assert.ok(maxAbsDiff((await s.runFirst(check.input, check.dims)).data, (await p.checked).output.data) <= 1e-5);
  await s.release();
});
