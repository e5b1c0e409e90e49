/**
 * Class profiles: the registry's per-class aggregate (median of the uploaded device profiles) and its
 * route, on a real in-process registry with SQLite; the agent's few-shot adoption of it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminClient } from '../registry/admin-client.js';
import { startRegistry, type RegistryHandle } from '../registry/server.js';
import { median, parseProfile, profileLatencyPredictor, type Profile } from '../runtime/profile.js';
import type { SubnetConfig } from '../runtime/space.js';
import { fewShotFromClass, FEW_SHOT_MAX_SUBNETS } from '../agent/class-profile.js';
import { pino } from 'pino';
import { currentDeviceIdentity } from '../agent/device.js';
import { startFleetAgent } from '../agent/fleet.js';
import { profileDevice } from '../agent/profiler.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { mulberry32 } from '../runtime/random.js';
import { tempDir, TINY } from './helpers.js';
import { makeQueryablePackage, midBudgetMs, profileText, tinyProfile } from './registry-fixtures.js';

const ADMIN = 'admin-token-0123456789abcdef';
const ENROLL = 'enroll-token-0123456789abcdef';

async function enroll(url: string, name: string, deviceClass: string): Promise<{ deviceId: string; token: string }> {
  const res = await fetch(`${url}/v1/devices/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ENROLL}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, supernet: 'tiny', deviceClass }),
  });
  assert.equal(res.status, 201);
  return (await res.json()) as { deviceId: string; token: string };
}

/** A copy of `p` as another device of `deviceClass` measured it: every part time and the offset scaled by `k` (every prediction ×k). */
export function scaledCopy(p: Profile, k: number, fingerprint: string, deviceClass = p.deviceClass): Profile {
  const c = structuredClone(p);
  c.fingerprint = fingerprint;
  c.deviceClass = deviceClass;
  c.latency.model.fixed = c.latency.model.fixed.map((x) => x * k);
  c.latency.model.slot = c.latency.model.slot.map((x) => x * k);
  c.latency.model.calibration = { a: c.latency.model.calibration.a, b: c.latency.model.calibration.b * k };
  c.latency.pre = c.latency.pre.map((x) => x * k);
  c.latency.head = c.latency.head.map((x) => x * k);
  return parseProfile(c);
}

describe('class profiles (registry)', () => {
  const dir = tempDir('nestswap-classprof-');
  let reg: RegistryHandle;
  let admin: AdminClient;

  before(async () => {
    const pkgDir = await makeQueryablePackage(join(dir.path, 'pkg'));
    reg = await startRegistry({ port: 0, dataDir: join(dir.path, 'data'), adminToken: ADMIN, enrollToken: ENROLL, heartbeatMs: 200 });
    admin = new AdminClient(reg.url, ADMIN);
    await admin.publishDir(pkgDir);
  });
  after(async () => {
    await reg.close();
    dir[Symbol.dispose]();
  });

  const get = (cls: string, token: string) => fetch(`${reg.url}/v1/classes/${encodeURIComponent(cls)}/profile`, { headers: { authorization: `Bearer ${token}` } });
  const put = (id: string, token: string, p: Profile) =>
    fetch(`${reg.url}/v1/devices/${id}/profile`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: profileText(p) });

  test('two uploaded profiles aggregate to their per-part median; class queries answer from it; unknown class is 404', async () => {
    const base = await tinyProfile();
    const a = await enroll(reg.url, 'a', 'kiosk');
    const b = await enroll(reg.url, 'b', 'kiosk');
    const other = await enroll(reg.url, 'c', 'other');
    const pa = scaledCopy(base, 1, '0a0a0a0a0a0a0a0a', 'kiosk');
    const pb = scaledCopy(base, 3, '0b0b0b0b0b0b0b0b', 'kiosk');
    assert.equal((await put(a.deviceId, a.token, pa)).status, 200);
    let res = await get('kiosk', a.token);
    assert.equal(res.status, 200);
    let body = (await res.json()) as { devices: number; deviceClass: string; profile: Profile };
    assert.equal(body.devices, 1);
    assert.deepEqual(body.profile.latency.model.slot, pa.latency.model.slot);
    assert.equal((await put(b.deviceId, b.token, pb)).status, 200);
    res = await get('kiosk', ADMIN);
    body = (await res.json()) as typeof body;
    assert.equal(body.devices, 2);
    assert.equal(body.deviceClass, 'kiosk');
    const agg = parseProfile(body.profile);
    for (const [i, x] of agg.latency.model.slot.entries()) assert.ok(Math.abs(x - median([pa.latency.model.slot[i]!, pb.latency.model.slot[i]!])) <= 1e-9 * Math.max(1, x));
    for (const [i, x] of agg.latency.model.fixed.entries()) assert.ok(Math.abs(x - 2 * pa.latency.model.fixed[i]!) <= 1e-9 * Math.max(1, x));
    assert.ok(Math.abs(agg.latency.model.calibration.b - 2 * pa.latency.model.calibration.b) < 1e-9);
    assert.equal(agg.parts.length, pa.parts.length);
    // a class query searches with the aggregate: its profile digest is the class profile's
    const budgetMs = await midBudgetMs(agg);
    const q = await admin.query({ supernet: 'tiny', deviceClass: 'kiosk', budget: { latencyMs: budgetMs } });
    assert.equal(q.profileSha256, (body as unknown as { sha256: string }).sha256);
    assert.ok(q.predicted.latencyMs! <= budgetMs);
    // unknown class: 404 with a stable code; another class's device may not read it
    res = await get('nope', ADMIN);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'ERR_CLASS_PROFILE_NOT_FOUND');
    res = await get('kiosk', other.token);
    assert.equal(res.status, 403);
    res = await get('kiosk', 'not-a-token');
    assert.equal(res.status, 401);
  });
});

let full: Promise<Profile> | undefined;
/** A full profile of the tiny package on this machine, measured as a device of the class would (parts and calibration). */
function fullProfile(): Promise<Profile> {
  full ??= loadPackageDir(TINY).then((pkg) =>
    profileDevice(pkg, { device: { fingerprint: '0f0f0f0f0f0f0f0f', deviceClass: 'test-x86-2c' }, threads: 1, runs: 30, subnetRuns: 40, memorySubnets: 0, seed: 2 }),
  );
  return full;
}

describe('class profiles (agent few-shot)', () => {
  const device = { fingerprint: 'f0f0f0f0f0f0f0f0', deviceClass: 'test-x86-2c' };

  test('a class profile that describes this device is adopted, scaled, as its own', async () => {
    const pkg = await loadPackageDir(TINY);
    // the class measured this machine at half its speed: one scale (0.5) brings it back. The
    // device's own times are its full profile's predictions with ±4% of seeded noise, so what is
    // tested is the fit and the decision, not this machine's timing on the day
    const own = await fullProfile();
    const cp = scaledCopy(own, 2, '0c0c0c0c0c0c0c0c');
    const truth = profileLatencyPredictor(own);
    const noise = mulberry32(3);
    const measure = async (cfgs: SubnetConfig[]) => cfgs.map((c) => truth.latencyMs(c) * (0.96 + 0.08 * noise()));
    const r = await fewShotFromClass(pkg, cp, { device, threads: 1, classDevices: 3, measure });
    assert.equal(r.adopted, true, r.reason);
    assert.equal(r.stats.subnets, FEW_SHOT_MAX_SUBNETS);
    assert.ok(r.stats.mape <= r.threshold && r.threshold === 0.1);
    // the class predicts twice this machine's latency: the fitted scale brings it down
    assert.ok(r.scale > 0.45 && r.scale < 0.55, `scale ${r.scale}`);
    const p = r.profile!;
    assert.equal(p.fingerprint, device.fingerprint);
    assert.ok(Math.abs(p.latency.model.calibration.a - cp.latency.model.calibration.a * r.scale) < 1e-12);
    assert.deepEqual(p.latency.model.slot, cp.latency.model.slot);
  });

  test('a class profile that no single scale fits is refused (the caller measures the full profile)', async () => {
    const pkg = await loadPackageDir(TINY);
    const wrong = scaledCopy(await tinyProfile(), 1, '0d0d0d0d0d0d0d0d');
    // ×3 per part on every other slot, ÷3 on the rest, and the table shuffled: the shape is not this device's
    const rng = mulberry32(5);
    const slot = wrong.latency.model.slot.map((x, i) => x * (i % 2 ? 3 : 1 / 3));
    for (let i = slot.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [slot[i], slot[j]] = [slot[j]!, slot[i]!];
    }
    wrong.latency.model.slot = slot;
    wrong.latency.model.fixed = wrong.latency.model.fixed.map((x, i) => x * (i % 2 ? 3 : 1 / 3));
    const truth = profileLatencyPredictor(await tinyProfile());
    const measure = async (cfgs: SubnetConfig[]) => cfgs.map((c) => truth.latencyMs(c));
    const r = await fewShotFromClass(pkg, parseProfile(wrong), { device, threads: 1, measure });
    assert.equal(r.adopted, false);
    assert.equal(r.profile, undefined);
    assert.ok(r.stats.mape > 0.1, r.reason);
    assert.match(r.reason, /MAPE .* > 10\.0%/);
    // a class profile measured with other threads is not used at all
    const other = await fewShotFromClass(pkg, scaledCopy(await tinyProfile(), 1, '0e0e0e0e0e0e0e0e'), { device, threads: 2, subnetRuns: 20 });
    assert.equal(other.adopted, false);
    assert.match(other.reason, /threads/);
  });
});

describe('class profiles (fleet agent)', () => {
  test('a fleet agent of a known class adopts the scaled class profile, uploads it and logs the path', async () => {
    using dir = tempDir('nestswap-classprof-fleet-');
    const pkgDir = await makeQueryablePackage(join(dir.path, 'pkg'));
    const reg = await startRegistry({ port: 0, dataDir: join(dir.path, 'reg'), adminToken: ADMIN, enrollToken: ENROLL, heartbeatMs: 200 });
    const ac = new AbortController();
    try {
      await new AdminClient(reg.url, ADMIN).publishDir(pkgDir);
      const me = await currentDeviceIdentity();
      const peer = await enroll(reg.url, 'peer', me.deviceClass);
      assert.equal((await fetch(`${reg.url}/v1/devices/${peer.deviceId}/profile`, { method: 'PUT', headers: { authorization: `Bearer ${peer.token}`, 'content-type': 'application/json' }, body: profileText(scaledCopy(await fullProfile(), 1.5, '1a1a1a1a1a1a1a1a', me.deviceClass)) })).status, 200);
      const lines: Record<string, unknown>[] = [];
      const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
      const agent = await startFleetAgent({ registry: reg.url, enrollToken: ENROLL, supernet: 'tiny', port: 0, host: '127.0.0.1', dataDir: join(dir.path, 'agent'), insecureNoSignatures: true, logger, signal: ac.signal, fewShot: { subnetRuns: 40 } });
      try {
        let row;
        for (let i = 0; i < 300 && !(row = await reg.store.profile(agent.deviceId)); i++) await new Promise((r) => setTimeout(r, 100));
        assert.ok(row, 'the agent uploaded a profile');
        const up = parseProfile(JSON.parse(row.json));
        const logged = lines.find((l) => l.msg === 'profiling');
        assert.ok(logged, 'the path is logged');
        if (logged.path === 'few-shot') {
          assert.ok((up.device as { fewShot?: { scale: number } }).fewShot!.scale > 0);
          assert.match(up.method.timing ?? '', /few-shot/);
        } else {
          // the machine moved between the class's measurement and this one: the full profile ran, and says why
          assert.match(String(logged.reason), /MAPE .* > 10\.0%/);
          assert.equal(up.device?.fewShot, undefined);
        }
        assert.equal(up.fingerprint, me.fingerprint);
      } finally {
        await agent.close();
      }
    } finally {
      ac.abort();
      await reg.close();
    }
  });
});
