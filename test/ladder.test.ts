import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildLadder, Ladder, LadderKeeper, pickRungs, slowdownClass, type LadderKey, type Rung } from '../runtime/ladder.js';
import { mulberry32 } from '../runtime/random.js';
import { exactSearch, flatLatencyPredictor, flatMemoryPredictor, macsModel, staticMemoryModel, type EfficiencyModel } from '../runtime/search/index.js';
import { ArchEncoder, Space } from '../runtime/space.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { startDaemon } from '../agent/daemon.js';
import { ladderSearchSelector } from '../agent/core/ladder-selector.js';
import { gapCases, randomLinearPredictor } from './search-fixtures.js';
import { repoPath, tempDir, TINY } from './helpers.js';
import { existsSync } from 'node:fs';
import { cachedProfileLadder } from '../agent/fleet-selector.js';
import { loadOrProfile } from '../agent/profiler.js';
import { join } from 'node:path';
import { pino } from 'pino';
import { startFleetAgent } from '../agent/fleet.js';
import { AdminClient } from '../registry/admin-client.js';
import { startRegistry } from '../registry/server.js';

const key: LadderKey = { profile: 'p', predictor: 'a', slowdownClass: 0 };
const rung = (latencyMs: number, accuracy: number, memoryMB: number | null = null): Rung => ({
  subnet: { ks: [], e: [], d: [], image_size: 0 },
  id: `r${latencyMs}`,
  latencyMs,
  accuracy,
  memoryMB,
});

test('rungFor is the highest rung within the latency budget (binary search agrees with a scan)', () => {
  const rng = mulberry32(3);
  const rungs = Array.from({ length: 64 }, (_, i) => rung(1 + i * 0.5 + rng() * 0.1, 0.5 + i * 0.001));
  const l = new Ladder(rungs, key);
  for (let t = 0; t < 500; t++) {
    const b = rng() * 40;
    let want = -1;
    l.rungs.forEach((r, i) => r.latencyMs <= b && (want = i));
    assert.equal(l.rungFor({ latencyMs: b }), want, `budget ${b}`);
  }
  assert.equal(l.rungFor({}), 63);
  assert.equal(l.rungFor({ latencyMs: 0.5 }), -1);
});

test('rungFor steps down to the first rung whose memory fits too', () => {
  const l = new Ladder([rung(1, 0.5, 10), rung(2, 0.6, 30), rung(3, 0.7, 20), rung(4, 0.8, 40)], key);
  assert.equal(l.rungFor({ latencyMs: 3.5, memoryMB: 25 }), 2);
  assert.equal(l.rungFor({ latencyMs: 3.5, memoryMB: 15 }), 0);
  assert.equal(l.rungFor({ latencyMs: 9, memoryMB: 5 }), -1);
});

test('around() lists every rung once, nearest first, lower first at equal distance', () => {
  const l = new Ladder([1, 2, 3, 4, 5].map((x) => rung(x, x)), key);
  assert.deepEqual(l.around(2), [2, 1, 3, 0, 4]);
  assert.deepEqual(l.around(0), [0, 1, 2, 3, 4]);
});

test('slowdown classes are half-octaves', () => {
  assert.deepEqual([1, 1.1, 1.5, 2, 3, 4, 0.5].map(slowdownClass), [0, 0, 0.5, 1, 1.5, 2, 0]);
});

test('pickRungs keeps k points, the cheapest among them, and crowds them around the focus', () => {
  const front = Array.from({ length: 400 }, (_, i) => rung(1 + i * 0.1, i));
  const even = pickRungs(front, 20);
  const focused = pickRungs(front, 20, 10);
  assert.equal(even.length, 20);
  assert.equal(focused.length, 20);
  assert.equal(even[0]!.latencyMs, 1);
  const near = (rs: Rung[]) => rs.filter((r) => r.latencyMs >= 5 && r.latencyMs <= 15).length;
  assert.ok(near(focused) > near(even), `${near(focused)} vs ${near(even)}`);
});

test('a built ladder is a Pareto front whose rung at a budget is close to the exact optimum there', async () => {
  const c = gapCases([1])[2]!; // w1.2, Note10 tables, a linear predictor
  const space = new Space({ ...Space.fromArch(c.arch).toJSON(), image_size_list: [...c.encoder.imageSizeList] });
  const problem = { arch: c.arch, encoder: c.encoder, predictor: c.linear, latency: c.latency };
  const l = await buildLadder(problem, space, key, { rungs: 32, generations: 30 });
  assert.ok(l.rungs.length > 8 && l.rungs.length <= 32, `${l.rungs.length} rungs`);
  for (let i = 1; i < l.rungs.length; i++) {
    assert.ok(l.rungs[i]!.latencyMs > l.rungs[i - 1]!.latencyMs);
    assert.ok(l.rungs[i]!.accuracy > l.rungs[i - 1]!.accuracy);
  }
  for (const r of l.rungs) assert.ok(Math.abs(c.latency.latencyMs(r.subnet) - r.latencyMs) < 1e-9);
  for (const b of c.budgets) {
    const i = l.rungFor({ latencyMs: b });
    assert.ok(i >= 0);
    const exact = await exactSearch(problem, { latencyMs: b });
    assert.ok(l.rungs[i]!.latencyMs <= b);
    assert.ok(exact.predicted.accuracy - l.rungs[i]!.accuracy < 0.01, `${b} ms: rung ${l.rungs[i]!.accuracy} vs optimum ${exact.predicted.accuracy}`);
  }
});

test('the keeper rebuilds in the background on a new key; the old ladder answers meanwhile', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const built: number[] = [];
  const keeper = new LadderKeeper(async (k) => {
    if (k.slowdownClass > 0) await gate;
    built.push(k.slowdownClass);
    return new Ladder([rung(1 + k.slowdownClass, 0.5)], k);
  });
  await keeper.ensure(key);
  assert.equal(keeper.current!.key.slowdownClass, 0);
  const next = keeper.ensure({ ...key, slowdownClass: 1 });
  assert.equal(keeper.current!.key.slowdownClass, 0, 'old ladder still serves while the new one builds');
  release();
  await next;
  assert.equal(keeper.current!.key.slowdownClass, 1);
  assert.deepEqual(built, [0, 1]);
  await keeper.ensure({ ...key, slowdownClass: 1 });
  assert.equal(keeper.builds, 2, 'the same key does not rebuild');
});

/** The tiny package with search inputs for a ladder: a seeded linear predictor, latency from MACs (1 ms per M). */
async function tinyLadderInputs(seed: number) {
  const pkg = await loadPackageDir(TINY);
  const encoder = new ArchEncoder(pkg.space);
  const macs = macsModel(pkg.arch);
  const latency: EfficiencyModel = { ...macs, unit: 'ms', fixed: macs.fixed.map((v) => v / 1e6), slot: macs.slot.map((v) => v / 1e6) };
  const inputs = {
    arch: pkg.arch,
    encoder,
    predictor: randomLinearPredictor(encoder, seed),
    efficiency: { latency: flatLatencyPredictor(latency), memory: flatMemoryPredictor(staticMemoryModel(pkg.arch)) },
  };
  return { pkg, inputs };
}

test('an agent on a ladder decides from it, shows its position in status and prepares nearby rungs at idle', async () => {
  const { pkg, inputs } = await tinyLadderInputs(4);
  const selector = await ladderSearchSelector(pkg, inputs, { profileDigest: 'tiny', predictorDigest: 'lin', rungs: 16, generations: 20 });
  const l = selector.ladder!;
  const top = l.rungs[l.rungs.length - 1]!;
  const d = await startDaemon({ pkg, budget: { latencyMs: top.latencyMs * 10 }, selector, threads: 1, calibration: { images: 64 }, monitor: { intervalMs: 200, probe: false }, prepare: { rungs: 3, idleMs: 20 } });
  try {
    assert.equal(d.status().subnet!.id, top.id);
    const mid = l.rungs[Math.floor(l.rungs.length / 2)]!;
    await d.setBudget({ latencyMs: mid.latencyMs * 1.0001 });
    const s = d.status();
    assert.equal(s.subnet!.id, mid.id);
    assert.equal(s.selector, 'pareto-ladder');
    assert.equal(s.ladder!.rungs, l.rungs.length);
    assert.equal(s.ladder!.rung, Math.floor(l.rungs.length / 2));
    // idle: the rungs next to it get their statistics
    for (let t = 0; t < 1200 && d.status().ladder!.prepared.statistics < 3; t++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(d.status().ladder!.prepared.statistics >= 3, JSON.stringify(d.status().ladder));
  } finally {
    await d.close();
  }
});

test('a running agent takes a new selector: a pinned one keeps its subnet, then it decides and prepares from the new ladder', async () => {
  const { pkg, inputs } = await tinyLadderInputs(5);
  const ladder = await ladderSearchSelector(pkg, inputs, { profileDigest: 'tiny', predictorDigest: 'lin', rungs: 12, generations: 20 });
  const l = ladder.ladder!;
  // started as a first fleet start is: on the measured ladder, no profile yet
  const d = await startDaemon({ pkg, budget: {}, threads: 1, ladderSize: 4, calibration: { images: 64 }, monitor: { intervalMs: 200, probe: false }, prepare: { rungs: 3, idleMs: 20 } });
  try {
    assert.match(d.status().selector, /^measured-ladder/);
    assert.equal(d.status().ladder, null);
    const pin = l.rungs[1]!;
    assert.equal((await d.switchTo(pin.subnet)).outcome, 'swapped');
    assert.equal(await d.useSelector(ladder), null, 'pinned: no reselection');
    let s = d.status();
    assert.equal(s.selector, 'pareto-ladder');
    assert.equal(s.subnet!.id, pin.id, 'the pinned subnet stays');
    assert.ok(Math.abs(s.predicted.latencyMs! - pin.latencyMs) <= 1e-9 * pin.latencyMs, 'its prediction is the new selector’s');
    // unpinned, the budget (none: the best) is chosen from the new ladder
    await d.unpin();
    const top = l.rungs[l.rungs.length - 1]!;
    assert.equal(d.status().subnet!.id, top.id);
    const mid = l.rungs[Math.floor(l.rungs.length / 2)]!;
    await d.setBudget({ latencyMs: mid.latencyMs * 1.0001 });
    s = d.status();
    assert.equal(s.subnet!.id, mid.id);
    assert.equal(s.ladder!.rung, Math.floor(l.rungs.length / 2));
    // the new ladder's rungs next to it are prepared at idle
    for (let t = 0; t < 1200 && d.status().ladder!.prepared.statistics < 2; t++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(d.status().ladder!.prepared.statistics >= 2, JSON.stringify(d.status().ladder));
    // not pinned: a replacement reselects at once, with its reason in the swap record
    const again = await ladderSearchSelector(pkg, { ...inputs, predictor: randomLinearPredictor(inputs.encoder, 6) }, { profileDigest: 'tiny', predictorDigest: 'lin2', rungs: 12, generations: 20 });
    const r = await d.useSelector(again, 'selector: test');
    assert.ok(r && (r.outcome === 'swapped' || r.outcome === 'unchanged'), JSON.stringify(r));
    assert.equal(d.status().subnet!.id, again.ladder!.rungs[again.ladder!.rungFor({ latencyMs: mid.latencyMs * 1.0001 })]!.id);
    if (r.outcome === 'swapped') assert.equal(r.reason, 'selector: test');
  } finally {
    await d.close();
  }
});

test("an agent on a ladder serves the rung a budget names: its own latency gets it, a hair under gets the one below", async () => {
  const pkg = await loadPackageDir(TINY);
  const encoder = new ArchEncoder(pkg.space);
  const macs = macsModel(pkg.arch);
  const latency: EfficiencyModel = { ...macs, unit: 'ms', fixed: macs.fixed.map((v) => v / 1e6), slot: macs.slot.map((v) => v / 1e6) };
  const inputs = { arch: pkg.arch, encoder, predictor: randomLinearPredictor(encoder, 5), efficiency: { latency: flatLatencyPredictor(latency) } };
  const selector = await ladderSearchSelector(pkg, inputs, { profileDigest: 'tiny', predictorDigest: 'lin', rungs: 12, generations: 20 });
  const l = selector.ladder!;
  assert.ok(l.rungs.length >= 4, `only ${l.rungs.length} rungs`);
  const top = l.rungs[l.rungs.length - 1]!;
  const d = await startDaemon({ pkg, budget: { latencyMs: top.latencyMs }, selector, threads: 1, calibration: { images: 32 }, monitor: { intervalMs: 60_000, probe: false }, policy: { cooldownMs: 1e9 } });
  try {
    const served: string[] = [];
    const wanted: string[] = [];
    for (let i = 1; i < l.rungs.length; i++) {
      const r = l.rungs[i]!;
      await d.setBudget({ latencyMs: r.latencyMs });
      served.push(d.status().subnet!.id);
      wanted.push(r.id);
      await d.setBudget({ latencyMs: r.latencyMs * (1 - 1e-9) });
      served.push(d.status().subnet!.id);
      wanted.push(l.rungs[i - 1]!.id);
      assert.ok(d.status().predicted.latencyMs! <= r.latencyMs, 'never a rung over the budget');
    }
    assert.deepEqual(served, wanted);
  } finally {
    await d.close();
  }
});

test("a fleet agent decides from the Pareto ladder once this device's profile is cached; without one, or with another device's, from the measured ladder", { skip: !existsSync(repoPath('models/fmnist-ofa/package/manifest.json')) && 'models/fmnist-ofa absent' }, async () => {
  const pkg = await loadPackageDir(repoPath('models/fmnist-ofa/package'));
  using dir = tempDir();
  const fingerprint = '1a2b3c4d5e6f7a8b';
  assert.equal(await cachedProfileLadder(pkg, { dataDir: dir.path, fingerprint }), undefined, 'no cached profile yet');
  const p = await loadOrProfile(pkg, { device: { fingerprint, deviceClass: 'test-x86-2c' }, dataDir: dir.path, threads: 1, runs: 20, subnetRuns: 20, memorySubnets: 0, seed: 3 });
  assert.equal(p.cached, false);
  assert.equal(await cachedProfileLadder(pkg, { dataDir: dir.path, fingerprint: 'ffffffffffffffff' }), undefined, "another device's profile is not used");
  assert.equal(await cachedProfileLadder(pkg, { dataDir: dir.path, fingerprint, rungs: 0 }), undefined, '--ladder-rungs 0');
  const s = await cachedProfileLadder(pkg, { dataDir: dir.path, fingerprint, rungs: 8 });
  assert.ok(s, 'a ladder over the cached profile');
  assert.equal(s.kind, 'pareto-ladder');
  const l = s.ladder!;
  assert.ok(l.rungs.length >= 2 && l.rungs.length <= 8);
  // its rungs are the profile's predictions: the rung a budget names is the one served from the same profile's search inputs
  const mid = l.rungs[Math.floor(l.rungs.length / 2)]!;
  assert.equal((await s.choose({ latencyMs: mid.latencyMs })).subnetId, mid.id);
  assert.ok(Math.abs(s.predict(mid.subnet).latencyMs! - mid.latencyMs) <= 1e-9 * mid.latencyMs, 'rung latencies are the profile predictor’s');
});

test('a first fleet start serves from the measured ladder, and the Pareto ladder over its new profile takes over in the same run', { skip: !existsSync(repoPath('models/fmnist-ofa/package/manifest.json')) && 'models/fmnist-ofa absent' }, async () => {
  using dir = tempDir('nestswap-first-ladder-');
  const reg = await startRegistry({ port: 0, host: '127.0.0.1', dataDir: join(dir.path, 'reg'), adminToken: 'admin_first_ladder', enrollToken: 'enroll_first_ladder' });
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  const start = () =>
    startFleetAgent({ registry: reg.url, enrollToken: 'enroll_first_ladder', supernet: 'fmnist-ofa', dataDir: join(dir.path, 'agent'), insecureNoSignatures: true, logger, threads: 1, ladderRungs: 8, profile: { runs: 20, subnetRuns: 20, memorySubnets: 0, seed: 3 }, fewShot: false });
  try {
    await new AdminClient(reg.url, 'admin_first_ladder').publishDir(repoPath('models/fmnist-ofa/package'));
    const agent = await start();
    try {
      assert.match(agent.daemon.status().selector, /^measured-ladder/, 'no profile yet: the measured ladder serves at once');
      for (let t = 0; t < 1200 && agent.daemon.status().selector !== 'pareto-ladder'; t++) await new Promise((r) => setTimeout(r, 100));
      const s = agent.daemon.status();
      assert.equal(s.selector, 'pareto-ladder', JSON.stringify(lines.filter((l) => (l.level as number) >= 40)));
      assert.ok(s.ladder && s.ladder.rungs >= 2 && s.ladder.rungs <= 8, JSON.stringify(s.ladder));
      // no budget: the ladder's top rung serves, chosen by a swap that says why
      assert.equal(s.ladder.rung, s.ladder.rungs - 1);
      const last = s.swaps[s.swaps.length - 1]!;
      if (last.outcome === 'swapped' && last.reason.startsWith('selector')) assert.equal(last.reason, 'selector: Pareto ladder over the new profile');
      assert.ok(lines.some((l) => l.msg === 'selector replaced'), 'the replacement is logged');
    } finally {
      await agent.close();
    }
    // the next start decides from the cached profile's ladder from the first request
    const again = await start();
    try {
      assert.equal(again.daemon.status().selector, 'pareto-ladder');
    } finally {
      await again.close();
    }
  } finally {
    await reg.close();
  }
});
