/**
 * Class profiles: the registry's per-class aggregate (median of the uploaded device profiles) and its
 * route, on a real in-process registry with SQLite; the agent's few-shot adoption of it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminClient } from '../registry/admin-client.js';
import { startRegistry, type RegistryHandle } from '../registry/server.js';
import { median, parseProfile, type Profile } from '../runtime/profile.js';
import { tempDir } from './helpers.js';
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

/** A copy of `p` as another device of `deviceClass` measured it: every part time and the calibration scaled by `k`. */
export function scaledCopy(p: Profile, k: number, fingerprint: string, deviceClass = p.deviceClass): Profile {
  const c = structuredClone(p);
  c.fingerprint = fingerprint;
  c.deviceClass = deviceClass;
  c.latency.model.fixed = c.latency.model.fixed.map((x) => x * k);
  c.latency.model.slot = c.latency.model.slot.map((x) => x * k);
  c.latency.model.calibration = { a: c.latency.model.calibration.a * k, b: c.latency.model.calibration.b * k };
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
    assert.ok(Math.abs(agg.latency.model.calibration.a - 2 * pa.latency.model.calibration.a) < 1e-9);
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
