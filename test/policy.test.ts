/**
 * The swap policy and the constraint monitor, driven by synthetic windows and a fake clock: no
 * models, no timing. Downgrade after N violating windows, upgrade after M, cooldown, the slowdown
 * deadband, memory pressure, battery saver, and idle probing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Monitor, type LatencyWindow, type SensorReading } from '../agent/monitor.js';
import { Policy, type Choice } from '../agent/policy.js';

const quiet: SensorReading = { othersCpu: 0, availableMB: 100_000, battery: null, temperatureC: null };

function win(subnetId: string, slowdown: number | null, samples = 10, conditions: Partial<SensorReading> = {}): LatencyWindow {
  return { at: '', subnetId, samples, p50Ms: slowdown, p99Ms: slowdown, predictedMs: 1, slowdown, conditions: { ...quiet, ...conditions } };
}

/** A ladder of subnets: latency i+1 ms, score i; `choose` returns the best under the latency budget. */
function ladder(n = 10) {
  const subnets: Choice<number>[] = Array.from({ length: n }, (_, i) => ({
    subnetId: `s${i}`,
    config: i,
    predicted: { latencyMs: i + 1, memoryMB: 10 * (i + 1), accuracy: 0.5 + i / 100 },
    score: i,
    feasible: true,
  }));
  const asked: { latencyMs?: number; memoryMB?: number }[] = [];
  const choose = async (b: { latencyMs?: number; memoryMB?: number }) => {
    asked.push(b);
    const fits = subnets.filter((s) => (b.latencyMs === undefined || s.predicted.latencyMs! <= b.latencyMs) && (b.memoryMB === undefined || s.predicted.memoryMB! <= b.memoryMB));
    return fits.length ? fits[fits.length - 1]! : { ...subnets[0]!, feasible: false };
  };
  return { subnets, choose, asked };
}

test('downgrades only after downgradeWindows violating windows, then cools down', async () => {
  let now = 0;
  const p = new Policy({ downgradeWindows: 3, cooldownMs: 5000 }, () => now);
  const { subnets, choose } = ladder();
  const active = subnets[7]!; // 8 ms predicted, budget 10 ms
  // slowdown 2: 8 ms × 2 = 16 ms > 10 ms
  assert.equal(p.leaning, false);
  const d1 = await p.decide({ latencyMs: 10 }, win('s7', 2), active, choose);
  assert.equal(p.leaning, true, 'a violation counts towards a swap (the agent warms its builder)');
  const d2 = await p.decide({ latencyMs: 10 }, win('s7', 2), active, choose);
  assert.equal(d1.action, 'hold');
  assert.equal(d2.action, 'hold');
  assert.match(d2.reason, /2\/3/);
  const d3 = await p.decide({ latencyMs: 10 }, win('s7', 2), active, choose);
  assert.equal(d3.action, 'downgrade');
  // effective latency = 10 / 2 = 5 ms; with the 10% margin the target must fit 4.5 ms
  assert.equal(d3.effective.latencyMs, 5);
  assert.ok(d3.target!.predicted.latencyMs! <= 4.5);
  // the windows before it already named that subnet, so the agent could build it ahead of the decision
  assert.equal(d1.prospect?.subnetId, d3.target!.subnetId);
  assert.equal(d2.prospect?.subnetId, d3.target!.subnetId);
  assert.equal(d3.prospect, undefined);
  p.swapped();
  assert.equal(p.leaning, false);
  now += 1000;
  const d4 = await p.decide({ latencyMs: 10 }, win('s3', 2), subnets[3]!, choose);
  assert.equal(d4.reason, 'cooldown');
});

test('a violation streak broken by a good window starts over', async () => {
  const p = new Policy({ downgradeWindows: 3 }, () => 0);
  const { subnets, choose } = ladder();
  const active = subnets[7]!;
  await p.decide({ latencyMs: 10 }, win('s7', 2), active, choose);
  await p.decide({ latencyMs: 10 }, win('s7', 2), active, choose);
  await p.decide({ latencyMs: 10 }, win('s7', 1), active, choose); // fits again
  const d = await p.decide({ latencyMs: 10 }, win('s7', 2), active, choose);
  assert.equal(d.action, 'hold');
  assert.match(d.reason, /1\/3/);
  // a violation with no cheaper subnet names none
  const bottom = await new Policy({ downgradeWindows: 3 }, () => 0).decide({ latencyMs: 10 }, win('s0', 50), subnets[0]!, choose);
  assert.equal(bottom.action, 'hold');
  assert.equal(bottom.prospect, undefined);
});

test('upgrades only after upgradeWindows windows in which a better subnet fits with margin', async () => {
  const p = new Policy({ upgradeWindows: 5 }, () => 0);
  const { subnets, choose } = ladder();
  const active = subnets[2]!; // 3 ms; budget 10 ms × 0.9 → s8 fits
  for (let i = 1; i < 5; i++) {
    const d = await p.decide({ latencyMs: 10 }, win('s2', 1), active, choose);
    assert.equal(d.action, 'hold');
    assert.match(d.reason, new RegExp(`${i}/5`));
    assert.equal(d.prospect?.subnetId, 's8');
  }
  const d = await p.decide({ latencyMs: 10 }, win('s2', 1), active, choose);
  assert.equal(d.action, 'upgrade');
  assert.equal(d.target!.subnetId, 's8');
});

test('a window where only probes ran never upgrades and asks for no search; downgrades still count', async () => {
  const p = new Policy({ upgradeWindows: 2, downgradeWindows: 2 }, () => 0);
  const { subnets, choose, asked } = ladder();
  const idle = (slowdown: number, id = 's2') => ({ ...win(id, slowdown), traffic: 0 });
  for (let i = 0; i < 4; i++) {
    const d = await p.decide({ latencyMs: 10 }, idle(1), subnets[2]!, choose);
    assert.equal(d.action, 'hold');
    assert.match(d.reason, /idle/);
  }
  assert.equal(asked.length, 0, 'no search while idle');
  // traffic comes back: the upgrade streak starts from zero
  assert.match((await p.decide({ latencyMs: 10 }, { ...win('s2', 1), traffic: 10 }, subnets[2]!, choose)).reason, /1\/2/);
  assert.equal((await p.decide({ latencyMs: 10 }, { ...win('s2', 1), traffic: 10 }, subnets[2]!, choose)).action, 'upgrade');
  // a device slowed down while idle still downgrades (s8 at 9 ms × slowdown 3 > 10 ms)
  const q = new Policy({ downgradeWindows: 2 }, () => 0);
  await q.decide({ latencyMs: 10 }, idle(3, 's8'), subnets[8]!, choose);
  assert.equal((await q.decide({ latencyMs: 10 }, idle(3, 's8'), subnets[8]!, choose)).action, 'downgrade');
});

test('windows with too few samples or from another subnet are not evidence', async () => {
  const p = new Policy({ downgradeWindows: 1 }, () => 0);
  const { subnets, choose, asked } = ladder();
  assert.equal((await p.decide({ latencyMs: 10 }, win('s7', 2, 2), subnets[7]!, choose)).reason, 'too few samples');
  assert.equal((await p.decide({ latencyMs: 10 }, win('s6', 2), subnets[7]!, choose)).reason, 'window from another subnet');
  assert.equal(asked.length, 0);
});

test('the slowdown in force moves only beyond the deadband, so noise does not re-run the search', () => {
  const p = new Policy({ slowdownDeadband: 0.1 }, () => 0);
  const e = (s: number | null) => p.effective({ latencyMs: 12 }, win('s1', s), undefined).latencyMs;
  assert.equal(e(1.5), 8);
  assert.equal(e(1.55), 8); // +3%: held
  assert.equal(e(1.42), 8); // −5%: held
  assert.equal(e(null), 8); // no measurement: the last slowdown stays
  assert.equal(e(2), 6); // +33%: moves
  assert.equal(e(0.5), 12); // clamped at minSlowdown 1: a fast device never raises the budget
  const strict = new Policy({ slowdownDeadband: 0 }, () => 0);
  assert.equal(strict.effective({ latencyMs: 12 }, win('s1', 1.5), undefined).latencyMs, 8);
  assert.equal(strict.effective({ latencyMs: 12 }, win('s1', 1.6), undefined).latencyMs, 7.5);
});

test('memory pressure caps the memory budget; battery saver and heat tighten latency', () => {
  const p = new Policy({ memoryReserveMB: 256, batterySaverPercent: 20, batterySaverFactor: 0.5, thermalLimitC: 80, thermalFactor: 0.5 }, () => 0);
  const active = { latencyMs: 2, memoryMB: 40, accuracy: 0.9 };
  const tight = p.effective({ latencyMs: 10, memoryMB: 1000 }, win('s1', 1, 10, { availableMB: 500 }), active);
  assert.equal(tight.memoryMB, 500 - 256 + 40);
  assert.ok(tight.rules.includes('memory-pressure'));
  const roomy = p.effective({ latencyMs: 10, memoryMB: 100 }, win('s1', 1, 10, { availableMB: 5000 }), active);
  assert.equal(roomy.memoryMB, 100);
  const low = p.effective({ latencyMs: 10 }, win('s1', 1, 10, { battery: { onBattery: true, percent: 10 } }), active);
  assert.equal(low.latencyMs, 5);
  assert.ok(low.rules.includes('battery-saver'));
  const charging = p.effective({ latencyMs: 10 }, win('s1', 1, 10, { battery: { onBattery: false, percent: 10 } }), active);
  assert.equal(charging.latencyMs, 10);
  const hot = p.effective({ latencyMs: 10 }, win('s1', 1, 10, { temperatureC: 90 }), active);
  assert.equal(hot.latencyMs, 5);
  assert.ok(hot.rules.includes('thermal'));
});

test('invalid policy options are rejected', () => {
  assert.throws(() => new Policy({ downgradeWindows: -1 }), /downgradeWindows/);
  assert.throws(() => new Policy({ slowdownDeadband: Number.NaN }), /slowdownDeadband/);
});

/** A monitor on subnet 's1' that probes every 5th idle window; counts its probes and sensor reads. */
function countingMonitor(intervalMs?: number, maxEvery = 5) {
  const n = { probes: 0, reads: 0 };
  const m = new Monitor({
    ...(intervalMs ? { intervalMs } : {}),
    sensors: {
      read: () => {
        n.reads++;
        return quiet;
      },
    },
    minSamples: 3,
    idleProbeEvery: 5,
    idleProbeMaxEvery: maxEvery,
    probe: async () => {
      n.probes++;
    },
    predictedMs: () => 1,
    activeId: () => 's1',
  });
  return { m, n };
}

test('an idle monitor probes every idleProbeEvery windows; traffic is topped up every window', async () => {
  const { m, n } = countingMonitor();
  for (let i = 0; i < 10; i++) await m.tick();
  assert.equal(n.probes, 2 * (1 + 3)); // windows 1 and 6: a warm-up run and three measured ones
  n.probes = 0;
  m.recordRun(1, 1, 's1'); // thin traffic: one real run, two probes (no warm-up: the model is warm)
  const w = await m.tick();
  assert.equal(n.probes, 2);
  assert.equal(w.samples, 1); // probes go through the serving path in the agent; here they only count calls
  assert.equal(w.traffic, 1);
  // batches are not per-sample evidence
  m.recordRun(5, 8, 's1');
  assert.equal((await m.tick()).samples, 0);
});

test('on its timer, an idle monitor closes a window (sensors, policy) only every idleProbeEvery intervals; traffic brings every interval back', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { m, n } = countingMonitor(100);
  const windows: number[] = [];
  m.start((w) => void windows.push(w.samples));
  const settle = () => new Promise((r) => setImmediate(r));
  for (let i = 0; i < 20; i++) {
    t.mock.timers.tick(100);
    await settle();
  }
  // 20 idle intervals: windows at intervals 1, 6, 11, 16 (each probed), nothing in between
  assert.equal(windows.length, 4);
  assert.equal(n.probes, 4 * (1 + 3));
  assert.equal(n.reads, 1 + 4); // the constructor's baseline read, then one per window
  // traffic: the next interval closes a window with real samples, and so does every one after it
  for (let i = 0; i < 3; i++) {
    for (let k = 0; k < 3; k++) m.recordRun(1, 1, 's1');
    t.mock.timers.tick(100);
    await settle();
  }
  assert.equal(windows.length, 7);
  assert.deepEqual(windows.slice(4), [3, 3, 3]);
  await m.stop();
});

test('while idle, the gap between probes doubles up to idleProbeMaxEvery; traffic resets it', async () => {
  const { m, n } = countingMonitor(undefined, 20);
  const probed: number[] = [];
  for (let i = 1; i <= 60; i++) {
    const before = n.probes;
    await m.tick();
    if (n.probes > before) probed.push(i);
  }
  assert.deepEqual(probed, [1, 6, 16, 36, 56]); // gaps 5, 10, 20, then capped at 20
  // traffic: every window is measured again, and the next idle spell starts from the short gap
  m.recordRun(1, 1, 's1');
  await m.tick();
  const again: number[] = [];
  for (let i = 1; i <= 12; i++) {
    const before = n.probes;
    await m.tick();
    if (n.probes > before) again.push(i);
  }
  assert.deepEqual(again, [1, 6]); // the short gap again (5), then 10: the next would be window 16
});

test("an idle window's probe leaves its first (cold) run out of the window", async () => {
  let k = 0;
  const m: Monitor = new Monitor({
    sensors: { read: () => quiet },
    minSamples: 3,
    // as in the agent, a probe goes through the serving path and is recorded; the first is cold
    probe: async () => m.recordRun(k++ === 0 ? 9 : 1, 1, 's1'),
    predictedMs: () => 1,
    activeId: () => 's1',
  });
  m.recordRun(1, 1, 's1'); // the window's subnet is known
  await m.tick();
  k = 0;
  const w = await m.tick(); // idle: warm-up + three measured runs
  assert.equal(w.samples, 3);
  assert.equal(w.traffic, 0, 'probe runs are not traffic');
  assert.equal(w.p99Ms, 1, 'the cold run is not in the window');
  assert.equal(w.slowdown, 1);
});
