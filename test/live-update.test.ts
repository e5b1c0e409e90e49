/**
 * A serving fleet agent takes a newer published version without a restart: the local API keeps
 * answering through the switch, the pin and budget carry over, the registry hears of it; a version
 * that cannot serve leaves the current one serving, and after a restart the last one that served.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { startFleetAgent } from '../agent/fleet.js';
import { AdminClient } from '../registry/admin-client.js';
import { startRegistry } from '../registry/server.js';
import { cachedVersionDirs, tempDir } from './helpers.js';
import { makeQueryablePackage } from './registry-fixtures.js';

const ADMIN = 'admin-token-live-update-0123456789';
const ENROLL = 'enroll-token-live-update-0123456789';

/** A copy of the queryable tiny package at `version` whose first weights are NaN: it verifies and cannot serve. */
async function poisonedPackage(dir: string, version: string, value = Number.NaN): Promise<string> {
  await makeQueryablePackage(dir, version);
  const file = join(dir, 'weights.bin');
  const w = readFileSync(file);
  const first = new Float32Array(256).fill(value);
  Buffer.from(first.buffer).copy(w, 0);
  writeFileSync(file, w);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files: { path: string; sha256: string; bytes: number }[] };
  const entry = manifest.files.find((f) => f.path === 'weights.bin')!;
  entry.sha256 = createHash('sha256').update(w).digest('hex');
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1));
  return dir;
}

/** POST /v1/infer in a loop until stopped: counts answers by status (and transport errors). */
function load(url: string, input: number[]): { stop(): Promise<Map<string, number>> } {
  const seen = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      let key: string;
      try {
        const r = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
        await r.arrayBuffer();
        key = String(r.status);
      } catch (err) {
        key = `error: ${(err as Error).message}`;
      }
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return seen;
    },
  };
}

test('a serving fleet agent serves a newer version without a restart; one that cannot serve leaves the current one serving', async () => {
  using dir = tempDir('nestswap-live-update-');
  const reg = await startRegistry({ port: 0, host: '127.0.0.1', dataDir: join(dir.path, 'reg'), adminToken: ADMIN, enrollToken: ENROLL });
  const admin = new AdminClient(reg.url, ADMIN);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  try {
    await admin.publishDir(await makeQueryablePackage(join(dir.path, 'v1'), '1.0.0'));
    const agent = await startFleetAgent({ registry: reg.url, enrollToken: ENROLL, supernet: 'tiny', port: 0, host: '127.0.0.1', dataDir: join(dir.path, 'agent'), insecureNoSignatures: true, logger, threads: 1, profile: false, updateCheckMs: 0 });
    try {
      const url = agent.daemon.url!;
      assert.equal(agent.pkg.version, '1.0.0');
      assert.equal(((await (await fetch(`${url}/v1/status`)).json()) as { packageVersion: string }).packageVersion, '1.0.0');
      assert.deepEqual(await agent.checkForUpdate(), { outcome: 'current', version: '1.0.0' });
      // the registry knows which version the device serves: from its hello, then from its reports
      const registryVersion = async (want: string) => {
        let got: string | null = null;
        for (let t = 0; t < 200 && (got = (await admin.device(agent.deviceId)).packageVersion) !== want; t++) await new Promise((r) => setTimeout(r, 50));
        return got;
      };
      assert.equal(await registryVersion('1.0.0'), '1.0.0', 'the hello named the version');

      // a pin pushed by the registry, to be carried over
      const pkg = agent.daemon.pkg;
      const pin = pkg.space.min();
      const cmd = await admin.command(agent.deviceId, { type: 'switch', subnet: pin });
      for (let t = 0; t < 200 && (await admin.commandStatus(cmd.id)).status !== 'acked'; t++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(agent.daemon.status().subnet?.id, pkg.space.id(pin));
      assert.equal(agent.daemon.status().pinned, true);

      const input = Array.from({ length: 144 }, (_, i) => (i % 7) / 7);
      const firstDaemon = (agent.daemon as unknown as { daemon: unknown }).daemon;
      await admin.publishDir(await makeQueryablePackage(join(dir.path, 'v2'), '1.1.0'));
      const traffic = load(url, input);
      await new Promise((r) => setTimeout(r, 200));
      const r = await agent.checkForUpdate();
      await new Promise((r) => setTimeout(r, 200));
      const seen = await traffic.stop();
      assert.deepEqual(r, { outcome: 'updated', from: '1.0.0', to: '1.1.0', subnetId: pkg.space.id(pin) });
      assert.deepEqual([...seen.keys()], ['200'], `every request answered 200 through the switch: ${JSON.stringify([...seen])}`);
      assert.ok(seen.get('200')! >= 10, `requests ran during the switch (${seen.get('200')})`);
      assert.equal(agent.pkg.version, '1.1.0');
      assert.equal(agent.daemon.pkg.manifest.version, '1.1.0', 'the handle serves the new package');
      assert.equal(agent.daemon.status().packageVersion, '1.1.0', 'GET /v1/status names the version serving');
      assert.notEqual((agent.daemon as unknown as { daemon: unknown }).daemon, firstDaemon, 'a new daemon behind the same handle');
      assert.equal(agent.daemon.status().pinned, true, 'the pin carried over');
      assert.equal(agent.daemon.status().subnet?.id, pkg.space.id(pin));
      const answer = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
      assert.equal(answer.status, 200, 'the same port serves the new version');
      assert.ok(lines.some((l) => l.msg === 'package updated' && l.from === '1.0.0' && l.to === '1.1.0'));

      // the registry hears of it (telemetry reaches it over the WebSocket)
      const heard = async (pred: (e: { kind: string; data: Record<string, unknown> }) => boolean) => {
        for (let t = 0; t < 200; t++) {
          if ((await admin.telemetry(agent.deviceId, 500)).events.some(pred)) return true;
          await new Promise((r) => setTimeout(r, 50));
        }
        return false;
      };
      assert.ok(await heard((e) => e.kind === 'status' && e.data.event === 'package-updated' && e.data.to === '1.1.0'), 'package-updated telemetry');
      assert.equal(await registryVersion('1.1.0'), '1.1.0', 'the registry follows the update without a reconnect');

      // a newer version that verifies but cannot serve (NaN weights): the current one keeps serving
      await admin.publishDir(await poisonedPackage(join(dir.path, 'v3'), '1.2.0'));
      const traffic2 = load(url, input);
      const bad = await agent.checkForUpdate();
      const seen2 = await traffic2.stop();
      assert.equal(bad.outcome, 'failed');
      assert.equal((bad as { version: string }).version, '1.2.0');
      assert.match((bad as { code: string }).code, /^ERR_/);
      assert.deepEqual([...seen2.keys()], ['200'], `the current version answered throughout: ${JSON.stringify([...seen2])}`);
      assert.equal(agent.pkg.version, '1.1.0');
      assert.equal(agent.daemon.pkg.manifest.version, '1.1.0');
      assert.ok(await heard((e) => e.kind === 'error' && e.data.version === '1.2.0' && e.data.serving === '1.1.0'), 'the failure is reported to the registry');
      assert.ok(lines.some((l) => l.msg === 'update failed: serving the current package'));
      assert.equal((await admin.device(agent.deviceId)).packageVersion, '1.1.0', 'a version that failed is not the one the registry shows');
      // not tried again by this process
      const failures = () => lines.filter((l) => l.msg === 'update failed: serving the current package').length;
      assert.deepEqual(await agent.checkForUpdate(), bad);
      assert.equal(failures(), 1, 'the second check did not start the version again');
      // the cache keeps what serves and what is newest; 1.0.0 went once 1.1.0 served
      assert.deepEqual(cachedVersionDirs(join(dir.path, 'agent', 'fleet', 'packages', 'tiny')), ['1.1.0', '1.2.0']);
    } finally {
      await agent.close();
    }
    const closed = await agent.checkForUpdate();
    assert.equal(closed.outcome, 'current', 'a closed agent checks nothing');

    // a restart while the registry's latest cannot serve: the last version that served serves
    lines.length = 0;
    const again = await startFleetAgent({ registry: reg.url, enrollToken: ENROLL, supernet: 'tiny', port: 0, host: '127.0.0.1', dataDir: join(dir.path, 'agent'), insecureNoSignatures: true, logger, threads: 1, profile: false, updateCheckMs: 0 });
    try {
      assert.equal(again.pkg.version, '1.1.0');
      assert.equal(again.daemon.pkg.manifest.version, '1.1.0');
      assert.ok(lines.some((l) => l.msg === 'this version cannot serve: serving the last version that served' && l.version === '1.2.0' && l.serving === '1.1.0'));
      assert.equal(again.daemon.status().pinned, true, 'with its pin');
      const r = await fetch(`${again.daemon.url!}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: Array.from({ length: 144 }, () => 0.5) }) });
      assert.equal(r.status, 200);
      const c = await again.checkForUpdate();
      assert.equal(c.outcome, 'failed', 'the unservable version is not started again');
      assert.ok(!lines.some((l) => l.msg === 'update failed: serving the current package'));

      // a version with other (servable) weights: once it serves, the daemon's caches of the weights
      // the package cache dropped go too; those of the serving weights stay
      const statsDir = join(dir.path, 'agent', 'daemon', 'bn-stats');
      const oldWeights = again.daemon.pkg.weightsDigest.slice(0, 16);
      assert.ok(readdirSync(statsDir).some((f) => f.startsWith(oldWeights)), 'BN statistics of the serving weights are cached');
      await admin.publishDir(await poisonedPackage(join(dir.path, 'v4'), '1.3.0', 0.01));
      assert.equal((await again.checkForUpdate()).outcome, 'updated');
      const newWeights = again.daemon.pkg.weightsDigest.slice(0, 16);
      assert.notEqual(newWeights, oldWeights);
      assert.deepEqual(cachedVersionDirs(join(dir.path, 'agent', 'fleet', 'packages', 'tiny')), ['1.3.0']);
      const left = readdirSync(statsDir);
      assert.ok(left.length > 0 && left.every((f) => f.startsWith(newWeights)), `only the serving weights' statistics are left: ${left.join(', ')}`);
      assert.ok(lines.some((l) => l.msg === 'caches of removed package versions deleted' && (l.files as number) > 0));
    } finally {
      await again.close();
    }
  } finally {
    await reg.close();
  }
});
