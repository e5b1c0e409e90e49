/**
 * The worker backend: sessions hosted in worker threads give the same outputs as sessions on the
 * main thread, report their own run time, spread over the pool, fail clearly once their worker is
 * gone, and serve an agent across swaps (sessionHost 'worker').
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { workerBackend } from '../runtime/node/ort-worker.js';
import { Materializer } from '../runtime/materializer.js';
import { ModelSession } from '../runtime/session.js';
import { startDaemon } from '../agent/daemon.js';
import { FAST, maxAbsDiff, TINY } from './helpers.js';

const dir = TINY;

/** The tiny package, its materializer, a two-worker pool (closed after the test) and a batch of `n` inputs. */
async function fixture(t: TestContext, n: number) {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  const wb = workerBackend({ workers: 2 });
  t.after(() => wb.close());
  const dims = [n, ...pkg.manifest.input.shape];
  const x = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => ((i * 37) % 101) / 101);
  return { pkg, m, wb, dims, x };
}

/** Runs one input on a main-thread session and a worker-hosted one; asserts they answer alike. */
async function sameAnswer(here: ModelSession, there: ModelSession, x: Float32Array, dims: number[]) {
  const a = await here.runFirst(x, dims);
  const b = await there.runFirst(x, dims);
  assert.deepEqual(b.dims, a.dims);
  assert.ok(maxAbsDiff(a.data, b.data) <= 1e-6, `outputs differ by ${maxAbsDiff(a.data, b.data)}`);
  return { a, b };
}

test('worker-hosted sessions give the main thread results, with the run time measured in the worker', async (t) => {
  const { pkg, m, wb, dims, x } = await fixture(t, 2);
  for (const cfg of [pkg.space.min(), pkg.space.max()]) {
    const { bytes } = await m.materialize(cfg, FAST);
    const here = await ModelSession.create(nodeBackend, bytes);
    const there = await ModelSession.create(wb, bytes);
    const { a, b } = await sameAnswer(here, there, x, dims);
    assert.ok(typeof a.computeMs === 'number' && a.computeMs > 0, 'main-thread runs report their own time');
    assert.ok(typeof b.computeMs === 'number' && b.computeMs > 0, 'worker runs report their own time');
    // several runs in flight at once all come back, each with its own answer
    const many = await Promise.all(Array.from({ length: 8 }, () => there.runFirst(x, dims)));
    for (const r of many) assert.ok(maxAbsDiff(a.data, r.data) <= 1e-6);
    await here.release();
    await there.release();
    await assert.rejects(there.runFirst(x, dims), /released/);
  }
});

test("a main-thread run's reported time leaves out the event loop's other work, also with runs in flight", async () => {
  const pkg = await loadPackageDir(dir);
  const { bytes } = await new Materializer(pkg, nodeBackend).materialize(pkg.space.max(), FAST);
  const s = await ModelSession.create(nodeBackend, bytes);
  const dims = [1, ...pkg.manifest.input.shape];
  const x = new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.5);
  for (let i = 0; i < 5; i++) await s.runFirst(x, dims);
  // 30 ms of other work queued ahead of the run
  setImmediate(() => {
    const until = performance.now() + 30;
    while (performance.now() < until);
  });
  const t0 = performance.now();
  const r = await s.runFirst(x, dims);
  const wall = performance.now() - t0;
  assert.ok(wall >= 30, `wall ${wall}`);
  assert.ok(r.computeMs! < wall - 20, `compute ${r.computeMs} of wall ${wall}`);
  // 8 runs in flight run one after another on this thread: their times add up to about the wall time
  const t1 = performance.now();
  const many = await Promise.all(Array.from({ length: 8 }, () => s.runFirst(x, dims)));
  const wall8 = performance.now() - t1;
  const sum = many.reduce((a, o) => a + o.computeMs!, 0);
  assert.ok(sum <= wall8 * 1.05 + 1, `sum ${sum} vs wall ${wall8}`);
  await s.release();
});

test('a subnet materialized and loaded inside a worker answers as the one built here; a bad config fails clearly', async (t) => {
  const { pkg, m, wb, dims, x } = await fixture(t, 3);
  // two subnets open at once: one per worker, so both workers receive the package
  const opened: ModelSession[] = [];
  for (const cfg of [pkg.space.max(), pkg.space.min()]) {
    const { stats } = await m.statistics(cfg, FAST.calibration);
    const { bytes } = await m.materialize(cfg, FAST);
    const here = await ModelSession.create(nodeBackend, bytes);
    const there = await ModelSession.open(wb, {}, (o) => wb.openSubnet(pkg, cfg, stats, o));
    await sameAnswer(here, there, x, dims);
    await here.release();
    opened.push(there);
  }
  assert.deepEqual(wb.occupancy(), [1, 1]);
  for (const s of opened) await s.release();
  const bad = { ...pkg.space.max(), ks: pkg.space.max().ks.map(() => 4) };
  await assert.rejects(
    ModelSession.open(wb, {}, (o) => wb.openSubnet(pkg, bad, undefined, o)),
    (e: Error & { code?: string }) => e.code === 'ERR_SESSION' && /could not create a session/.test(e.message),
  );
});

test('sessions go to an idle worker first, then to the one with the fewest sessions', async (t) => {
  const pkg = await loadPackageDir(dir);
  const { bytes } = await new Materializer(pkg, nodeBackend).materialize(pkg.space.min(), FAST);
  const wb = workerBackend({ workers: 2 });
  t.after(() => wb.close());
  const a = await ModelSession.create(wb, bytes);
  assert.deepEqual(wb.occupancy(), [1]);
  await a.release();
  // one session at a time (calibration, a lone model) never starts a second worker
  const b = await ModelSession.create(wb, bytes);
  assert.deepEqual(wb.occupancy(), [1]);
  const c = await ModelSession.create(wb, bytes);
  assert.deepEqual(wb.occupancy(), [1, 1]);
  const d = await ModelSession.create(wb, bytes);
  assert.deepEqual([...wb.occupancy()].sort(), [1, 2]);
  await b.release();
  await c.release();
  await d.release();
  assert.deepEqual(wb.occupancy(), [0, 0]);
});

test('a session whose worker is gone fails with a clear error; a new session starts a fresh worker', async () => {
  const pkg = await loadPackageDir(dir);
  const { bytes } = await new Materializer(pkg, nodeBackend).materialize(pkg.space.min(), FAST);
  const dims = [1, ...pkg.manifest.input.shape];
  const x = new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.5);
  const wb = workerBackend({ workers: 1 });
  const s = await ModelSession.create(wb, bytes);
  await s.runFirst(x, dims);
  await wb.close(); // terminates the worker under the open session
  await assert.rejects(s.runFirst(x, dims), /worker exited/);
  const s2 = await ModelSession.create(wb, bytes);
  const r = await s2.runFirst(x, dims);
  assert.ok(r.data.every(Number.isFinite));
  await s2.release();
  await wb.close();
});

test('a malformed model is rejected by the worker with onnxruntime\'s reason, and the worker keeps serving', async () => {
  const pkg = await loadPackageDir(dir);
  const { bytes } = await new Materializer(pkg, nodeBackend).materialize(pkg.space.min(), FAST);
  const wb = workerBackend({ workers: 1 });
  try {
    await assert.rejects(ModelSession.create(wb, new Uint8Array([1, 2, 3, 4])), (e: Error & { code?: string }) => e.code === 'ERR_SESSION' && /could not create a session/.test(e.message));
    const s = await ModelSession.create(wb, bytes);
    const dims = [1, ...pkg.manifest.input.shape];
    assert.ok((await s.runFirst(new Float32Array(dims.reduce((a, b) => a * b, 1)), dims)).data.every(Number.isFinite));
    await s.release();
  } finally {
    await wb.close();
  }
});

test("an agent with sessionHost 'worker' answers every request across swaps", async (t) => {
  const pkg = await loadPackageDir(dir);
  const d = await startDaemon({ pkg, budget: { latencyMs: 1e6 }, sessionHost: 'worker', ...FAST, ladderSize: 3, monitor: { intervalMs: 200 }, policy: { cooldownMs: 1e9 } });
  t.after(() => d.close());
  const x = new Float32Array(pkg.manifest.input.shape.reduce((a, b) => a * b, 1)).fill(0.25);
  const cfgs = [pkg.space.min(), pkg.space.max()];
  let stop = false;
  let answered = 0;
  const failures: string[] = [];
  const client = (async () => {
    while (!stop) {
      try {
        const r = await d.infer(x, 1);
        if (!r.logits.every(Number.isFinite)) failures.push('non-finite logits');
        answered++;
      } catch (e) {
        failures.push(String(e));
      }
    }
  })();
  try {
    for (let i = 0; i < 10; i++) {
      const r = await d.switchTo(cfgs[i % 2]!, { pin: true });
      assert.ok(['swapped', 'unchanged'].includes(r.outcome), `swap ${i}: ${r.outcome} ${r.error?.message ?? ''}`);
    }
  } finally {
    stop = true;
    await client;
  }
  assert.deepEqual(failures, []);
  assert.ok(answered > 10, `answered ${answered}`);
  assert.ok(d.status().swaps.filter((s) => s.outcome === 'swapped').length >= 9);
});
