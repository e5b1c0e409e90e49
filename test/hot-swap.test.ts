import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { Materializer } from '../runtime/materializer.js';
import { HotSwapper, type SwapRecord } from '../runtime/hot-swap.js';
import { ModelSession } from '../runtime/session.js';
import type { SupernetPackage } from '../runtime/package.js';
import type { SubnetConfig } from '../runtime/space.js';
import { mulberry32 } from '../runtime/random.js';
import { FAST, maxAbsDiff, repoPath, tempDir, TINY } from './helpers.js';

const dir = TINY;
// BN recalibration on 64 images keeps the tests short; the statistics path is the same

function swapper(pkg: SupernetPackage, m: Materializer, extra: Partial<ConstructorParameters<typeof HotSwapper>[0]> = {}): HotSwapper {
  return new HotSwapper({
    backend: nodeBackend,
    sampleShape: pkg.manifest.input.shape,
    idOf: (c) => pkg.space.id(c),
    build: async (c) => {
      const r = await m.materialize(c, FAST);
      return { subnetId: r.subnetId, bytes: r.bytes, statsCached: r.statsCached };
    },
    warmupRuns: 1,
    checkRuns: 2,
    // one intra-op thread: session creation stays cheap on a 2-core machine shared with training
    session: { threads: 1 },
    ...extra,
  });
}

function inputs(pkg: SupernetPackage, n: number): Float32Array[] {
  const per = pkg.manifest.input.shape.reduce((a, b) => a * b, 1);
  const rng = mulberry32(7);
  return Array.from({ length: n }, () => Float32Array.from({ length: per }, () => rng()));
}

/** Each subnet's own logits on each input, from a standalone session of the same materialized model. */
async function references(pkg: SupernetPackage, m: Materializer, cfgs: SubnetConfig[], xs: Float32Array[]): Promise<Map<string, Float32Array[]>> {
  const out = new Map<string, Float32Array[]>();
  for (const c of cfgs) {
    const r = await m.materialize(c, FAST);
    const s = await ModelSession.create(nodeBackend, r.bytes);
    const rows: Float32Array[] = [];
    for (const x of xs) rows.push((await s.runFirst(x, [1, ...pkg.manifest.input.shape])).data.slice());
    await s.release();
    out.set(r.subnetId, rows);
  }
  return out;
}

test('100 swaps under concurrent inference: every request answered by a complete model (its own reference logits), none fails', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  const rng = mulberry32(11);
  const cfgs = [pkg.space.min(), pkg.space.max(), pkg.space.sample(rng), pkg.space.sample(rng)];
  const xs = inputs(pkg, 8);
  const ref = await references(pkg, m, cfgs, xs);
  const hot = swapper(pkg, m);
  const first = await hot.swapTo(cfgs[0]!, { reason: 'initial' });
  assert.equal(first.outcome, 'swapped');

  let stop = false;
  let answered = 0;
  const seen = new Set<string>();
  const failures: string[] = [];
  const client = async (k: number) => {
    for (let i = k; !stop; i++) {
      const j = i % xs.length;
      try {
        const r = await hot.infer(xs[j]!, 1);
        const want = ref.get(r.subnetId)![j]!;
        const d = maxAbsDiff(r.logits, want);
        if (d > 1e-6) failures.push(`${r.subnetId}: logits differ from its reference by ${d}`);
        seen.add(r.subnetId);
        answered++;
      } catch (e) {
        failures.push(String(e));
      }
    }
  };
  const clients = Array.from({ length: 4 }, (_, k) => client(k));
  const records: SwapRecord[] = [];
  try {
    for (let i = 1; i <= 100; i++) {
      // every 10th round also fires a request that the next one supersedes while queued
      const pending: Promise<SwapRecord>[] = [];
      if (i % 10 === 0) pending.push(hot.swapTo(cfgs[(i + 2) % cfgs.length]!, { reason: `queued ${i}` }));
      pending.push(hot.swapTo(cfgs[i % cfgs.length]!, { reason: `swap ${i}` }));
      records.push(...(await Promise.all(pending)));
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    // the clients must stop even when a swap threw, or this file would never exit
    stop = true;
    await Promise.all(clients);
    await hot.close();
  }

  assert.deepEqual(failures, []);
  assert.ok(answered > 100, `only ${answered} requests answered`);
  assert.equal(seen.size, cfgs.length, 'requests were answered by every subnet');
  assert.equal(records.filter((r) => r.outcome === 'failed').length, 0);
  assert.ok(records.filter((r) => r.outcome === 'swapped').length >= 90);
  for (const r of records.filter((x) => x.outcome === 'swapped')) {
    const t = r.timings!;
    assert.ok(t.buildMs <= t.openMs && t.openMs <= t.warmMs && t.warmMs <= t.checkMs && t.checkMs <= t.totalMs, 'timings are ordered decision→built→opened→warmed→checked→serving');
  }
  assert.ok(records.some((r) => r.onnxCached), 'repeat swaps reuse ONNX bytes by subnet id');
});

test('the latest request wins: a queued older request is reported superseded', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  const hot = swapper(pkg, m);
  const a = pkg.space.min();
  const b = pkg.space.max();
  const c = pkg.space.uniform(5, 4, 3, 12);
  await hot.swapTo(a);
  const [rb, rc, rd] = await Promise.all([hot.swapTo(b, { reason: 'b' }), hot.swapTo(c, { reason: 'c' }), hot.swapTo(a, { reason: 'a again' })]);
  // b started building at once; c was queued behind it and then replaced by the newer 'a again'
  assert.equal(rb.outcome, 'swapped');
  assert.equal(rc.outcome, 'superseded');
  assert.equal(rd.outcome, 'swapped');
  assert.equal(hot.active!.subnetId, pkg.space.id(a));
  assert.equal(hot.history.filter((r) => r.outcome === 'superseded').length, 1);
  await hot.close();
});

/** A copy of the tiny package whose weights are all NaN (manifest digests updated so it loads). */
function poisonedPackage(to: string): string {
  cpSync(dir, to, { recursive: true });
  const w = readFileSync(join(to, 'weights.bin'));
  const f = new Float32Array(w.buffer, w.byteOffset, w.length / 4);
  f.fill(Number.NaN);
  writeFileSync(join(to, 'weights.bin'), w);
  const manifest = JSON.parse(readFileSync(join(to, 'manifest.json'), 'utf8')) as { files: { path: string; sha256: string; bytes: number }[] };
  const entry = manifest.files.find((x) => x.path === 'weights.bin')!;
  entry.sha256 = createHash('sha256').update(w).digest('hex');
  writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest));
  return to;
}

test('a candidate that produces NaN fails its health check (ERR_HEALTH_CHECK) and the old model keeps serving', async () => {
  using tmp = tempDir();
  const pkg = await loadPackageDir(dir);
  const bad = await loadPackageDir(poisonedPackage(join(tmp.path, 'poisoned')));
  const good = new Materializer(pkg, nodeBackend);
  const poisoned = new Materializer(bad, nodeBackend);
  const target = pkg.space.max();
  const hot = new HotSwapper({
    backend: nodeBackend,
    sampleShape: pkg.manifest.input.shape,
    idOf: (c) => pkg.space.id(c),
    // the max subnet comes from the poisoned weights
    build: async (c) => {
      const r = await (pkg.space.id(c) === pkg.space.id(target) ? poisoned : good).materialize(c, { calibrate: false });
      return { subnetId: r.subnetId, bytes: r.bytes };
    },
  });
  const x = inputs(pkg, 1)[0]!;
  await hot.swapTo(pkg.space.min());
  const before = await hot.infer(x, 1);
  const events: SwapRecord[] = [];
  hot.onSwap((r) => events.push(r));
  const r = await hot.swapTo(target, { reason: 'poisoned' });
  assert.equal(r.outcome, 'failed');
  assert.equal(r.error?.code, 'ERR_HEALTH_CHECK');
  assert.equal(events.at(-1)?.outcome, 'failed', 'the failure is reported to listeners');
  assert.equal(hot.active!.subnetId, pkg.space.id(pkg.space.min()));
  const after = await hot.infer(x, 1);
  assert.equal(after.subnetId, before.subnetId);
  assert.deepEqual(Array.from(after.logits), Array.from(before.logits));
  await hot.close();
});

test('corrupt candidate bytes and a latency limit below the candidate also fail without replacing the model', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  let corrupt = false;
  const hot = swapper(pkg, m, {
    candidateHook: (bytes) => {
      if (!corrupt) return bytes;
      const b = bytes.slice();
      for (let i = 16; i < b.length; i += 7) b[i] = 0xff;
      return b;
    },
  });
  await hot.swapTo(pkg.space.min());
  corrupt = true;
  const r1 = await hot.swapTo(pkg.space.max());
  assert.equal(r1.outcome, 'failed');
  assert.equal(r1.error?.code, 'ERR_HEALTH_CHECK');
  corrupt = false;
  const r2 = await hot.swapTo(pkg.space.max(), { maxLatencyMs: 1e-9 });
  assert.equal(r2.outcome, 'failed');
  assert.equal(r2.error?.code, 'ERR_HEALTH_CHECK');
  assert.equal(hot.active!.subnetId, pkg.space.id(pkg.space.min()));
  const r3 = await hot.swapTo(pkg.space.max());
  assert.equal(r3.outcome, 'swapped', 'the same subnet swaps in once it passes');
  await assert.rejects(hot.infer(new Float32Array(3), 1), { code: 'ERR_INPUT' });
  await hot.close();
});

test('prefetch builds a candidate into the ONNX cache: the swap that follows only loads it; a swap during a prefetch waits for it instead of building twice', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  const builds: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  const hot = swapper(pkg, m, {
    build: async (c) => {
      builds.push(pkg.space.id(c));
      await gate;
      const r = await m.materialize(c, FAST);
      return { subnetId: r.subnetId, bytes: r.bytes, statsCached: r.statsCached };
    },
  });
  const [a, b, c] = [pkg.space.min(), pkg.space.max(), pkg.space.sample(mulberry32(3))];
  await hot.swapTo(a);
  assert.equal(await hot.prefetch(a), false, 'the serving subnet is not prefetched');
  assert.equal(await m.hasStatistics(b, FAST.calibration), false);
  assert.equal(await hot.prefetch(b), true);
  assert.equal(await m.hasStatistics(b, FAST.calibration), true, 'its build calibrated it');
  assert.equal(await hot.prefetch(b), false, 'already in the cache');
  const rb = await hot.swapTo(b);
  assert.equal(rb.outcome, 'swapped');
  assert.equal(rb.onnxCached, true);
  assert.deepEqual(builds, [pkg.space.id(a), pkg.space.id(b)], 'built once, by the prefetch');

  // a swap decided while the prefetch of the same subnet is still building takes its result
  let open!: () => void;
  gate = new Promise((r) => (open = r));
  const pending = hot.prefetch(c);
  assert.equal(await hot.prefetch(a), false, 'one prefetch at a time');
  const swapping = hot.swapTo(c);
  open();
  assert.equal(await pending, true);
  const rc = await swapping;
  assert.equal(rc.outcome, 'swapped');
  assert.equal(rc.onnxCached, true);
  assert.equal(builds.filter((id) => id === pkg.space.id(c)).length, 1);
  assert.equal(hot.active!.subnetId, pkg.space.id(c));

  // a swap to a subnet whose bytes are cached does not wait for a prefetch of another one
  const d = pkg.space.sample(mulberry32(4));
  gate = new Promise((r) => (open = r));
  const held = hot.prefetch(d);
  const swapB = hot.swapTo(b);
  const first = await Promise.race([swapB, new Promise<null>((r) => setTimeout(() => r(null), 10_000).unref())]);
  assert.notEqual(first, null, 'the swap to a cached subnet waited for the prefetch held on its gate');
  const rbCached = await swapB;
  assert.equal(rbCached.outcome, 'swapped', 'served while the prefetch is still held');
  assert.equal(rbCached.onnxCached, true);
  assert.equal(hot.active!.subnetId, pkg.space.id(b));
  open();
  assert.equal(await held, true);
  await hot.close();
});

test('prefetch keeps nothing when the cache is off or the build fails; the swap then builds and reports', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  let fail = true;
  const hot = swapper(pkg, m, {
    build: async (c) => {
      if (fail && pkg.space.id(c) === pkg.space.id(pkg.space.max())) throw new Error('builder crashed');
      const r = await m.materialize(c, FAST);
      return { subnetId: r.subnetId, bytes: r.bytes };
    },
  });
  await hot.swapTo(pkg.space.min());
  assert.equal(await hot.prefetch(pkg.space.max()), false);
  const r = await hot.swapTo(pkg.space.max());
  assert.equal(r.outcome, 'failed');
  assert.match(r.error!.message, /builder crashed/);
  fail = false;
  const again = await hot.swapTo(pkg.space.max());
  assert.equal(again.outcome, 'swapped');
  assert.equal(again.onnxCached, false);
  await hot.close();
  const off = swapper(pkg, m, { onnxCacheBytes: 0 });
  await off.swapTo(pkg.space.min());
  assert.equal(await off.prefetch(pkg.space.max()), false);
  await off.close();
});

test('the relative latency criterion: a candidate no slower than the serving model passes whatever the limit; a slower one fails above it', async () => {
  // the load fixture: its largest subnet takes several times its smallest's time, well past timer noise
  const pkg = await loadPackageDir(repoPath('test', 'fixtures', 'load', 'package'));
  const m = new Materializer(pkg, nodeBackend);
  const hot = swapper(pkg, m);
  try {
    assert.equal((await hot.swapTo(pkg.space.max())).outcome, 'swapped');
    // a downgrade under a limit nothing could meet: judged against the model it replaces, it passes
    const down = await hot.swapTo(pkg.space.min(), { reason: 'downgrade', latency: { upgradeLimitMs: 1e-9 } });
    assert.equal(down.outcome, 'swapped', JSON.stringify(down));
    assert.equal(down.latencyVerdict, 'not-slower');
    assert.ok(down.servingLatencyMs !== null && down.checkLatencyMs! <= down.servingLatencyMs * 1.1, JSON.stringify(down));
    // the upgrade back is slower than what serves, and over its limit: refused, the smaller one keeps serving
    const up = await hot.swapTo(pkg.space.max(), { reason: 'upgrade', latency: { upgradeLimitMs: 1e-9 } });
    assert.equal(up.outcome, 'failed');
    assert.equal(up.error?.code, 'ERR_HEALTH_CHECK');
    assert.equal(up.latencyVerdict, 'over-limit');
    assert.match(up.error!.message, /beside it/);
    assert.equal(hot.active!.subnetId, pkg.space.id(pkg.space.min()));
    // within a limit it can meet, the same upgrade goes through and says why
    const ok = await hot.swapTo(pkg.space.max(), { reason: 'upgrade', latency: { upgradeLimitMs: 1e9 } });
    assert.equal(ok.outcome, 'swapped');
    assert.equal(ok.latencyVerdict, 'within-limit');
    // no criterion asked for: no verdict, no serving-model runs
    const plain = await hot.swapTo(pkg.space.min());
    assert.equal(plain.latencyVerdict, null);
    assert.equal(plain.servingLatencyMs, null);
  } finally {
    await hot.close();
  }
});

test('preopen: a cached candidate opened and run once ahead serves without opening again, still health-checked; kept up to openedKeep', async () => {
  const pkg = await loadPackageDir(dir);
  const m = new Materializer(pkg, nodeBackend);
  const hot = swapper(pkg, m, { openedKeep: 2 });
  const rng = mulberry32(11);
  const [a, b, c, e] = [pkg.space.min(), pkg.space.max(), pkg.space.sample(rng), pkg.space.sample(rng)];
  await hot.swapTo(a);
  assert.equal(await hot.preopen(b), false, 'nothing cached for it yet');
  for (const x of [b, c, e]) assert.equal(await hot.prefetch(x), true);
  assert.equal(await hot.preopen(a), false, 'the serving subnet is not opened again');
  for (const x of [b, c, e]) assert.equal(await hot.preopen(x), true);
  assert.deepEqual(hot.openedIds, [c, e].map((x) => pkg.space.id(x)), 'the oldest released beyond openedKeep');
  const rc = await hot.swapTo(c);
  assert.equal(rc.outcome, 'swapped');
  assert.equal(rc.openedAhead, true);
  assert.notEqual(rc.checkLatencyMs, null, 'its health check ran');
  assert.equal(hot.active!.subnetId, pkg.space.id(c));
  assert.deepEqual(hot.openedIds, [pkg.space.id(e)], 'taken out when it serves');
  const x = inputs(pkg, 1)[0]!;
  const refSession = await ModelSession.create(nodeBackend, (await m.materialize(c, FAST)).bytes);
  const ref = await refSession.runFirst(x, [1, ...pkg.manifest.input.shape]);
  await refSession.release();
  const got = await hot.infer(x, 1);
  assert.ok(maxAbsDiff(got.logits, ref.data) < 1e-4, 'the opened-ahead model answers as the subnet does');
  const rb = await hot.swapTo(b);
  assert.equal(rb.outcome, 'swapped');
  assert.notEqual(rb.openedAhead, true, 'released earlier: opened by the swap');
  await hot.close();
  assert.deepEqual(hot.openedIds, [], 'close releases the sessions opened ahead');
});
