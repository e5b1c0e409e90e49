/**
 * One behavioural suite for the registry store, run against each engine: SQLite (a temp data
 * directory) and PostgreSQL (a real server started here; skipped with a reason if not installed).
 * Plus the blob directory's rules for several replicas.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DirBlobStore } from '../registry/blobs.js';
import type { TelemetryEvent } from '../registry/protocol.js';
import type { RegistryStore } from '../registry/store.js';
import { MIGRATIONS } from '../registry/stores/migrations.js';
import { PostgresStore } from '../registry/stores/postgres.js';
import { SqliteStore } from '../registry/stores/sqlite.js';
import { tempDir } from './helpers.js';
import { postgresAvailable, startPostgres, type PostgresServer } from './servers.js';

interface Engine {
  name: string;
  skip: string | undefined;
  setup(): Promise<void>;
  open(db: string): Promise<RegistryStore>;
  teardown(): Promise<void>;
}

const dirs = tempDir('nestswap-store-');
let pgServer: PostgresServer | undefined;
const pgUrls = new Map<string, string>();

const ENGINES: Engine[] = [
  { name: 'sqlite', skip: undefined, setup: async () => undefined, open: async (db) => new SqliteStore(join(dirs.path, db)), teardown: async () => undefined },
  {
    name: 'postgres',
    skip: postgresAvailable(),
    setup: async () => {
      pgServer = await startPostgres();
    },
    open: async (db) => {
      if (!pgUrls.has(db)) pgUrls.set(db, await pgServer!.createDatabase(`t_${db.replace(/[^a-z0-9]/g, '_')}`));
      return PostgresStore.open(pgUrls.get(db)!);
    },
    teardown: async () => {
      await pgServer?.stop();
    },
  },
];

const ev = (seq: number, kind: TelemetryEvent['kind'] = 'latency'): TelemetryEvent => ({ seq, at: 1000 + seq, kind, data: { n: seq } });

for (const engine of ENGINES) {
  describe(`store on ${engine.name}`, { skip: engine.skip ? `${engine.name}: ${engine.skip}` : false }, () => {
    before(() => engine.setup());
    after(() => engine.teardown());

    test('migrations are recorded once and reopening applies none again', async () => {
      const s = await engine.open('migrate');
      await s.setSetting('k', 'v');
      await s.close();
      const again = await engine.open('migrate');
      assert.equal(await again.setting('k'), 'v');
      const rows = again instanceof SqliteStore
        ? again.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all()
        : (await (again as PostgresStore).pool.query('SELECT version FROM schema_migrations ORDER BY version')).rows;
      assert.deepEqual(rows.map((r) => (r as { version: number }).version), MIGRATIONS.map((m) => m.version));
      await again.close();
    });

    test('settings: settingOnce keeps the first value', async () => {
      const s = await engine.open('settings');
      assert.equal(await s.setting('admin'), undefined);
      assert.equal(await s.settingOnce('admin', 'first'), 'first');
      assert.equal(await s.settingOnce('admin', 'second'), 'first');
      await s.setSetting('admin', 'third');
      assert.equal(await s.setting('admin'), 'third');
      await s.close();
    });

    test('versions and files: latest, duplicates refused, referenced blobs', async () => {
      const s = await engine.open('versions');
      const files = (n: string) => [{ path: 'manifest.json', role: 'manifest', bytes: 3, sha256: `m${n}` }, { path: 'w.bin', role: 'weights', bytes: 10, sha256: 'shared' }];
      await s.insertVersion({ name: 'a', version: '1', manifestSha256: 'm1', manifestJson: '{}', files: files('1') });
      await s.insertVersion({ name: 'a', version: '2', manifestSha256: 'm2', manifestJson: '{}', files: files('2') });
      assert.equal((await s.version('a', 'latest'))?.version, '2');
      assert.equal((await s.version('a', '1'))?.manifest_sha256, 'm1');
      assert.equal(await s.version('a', '3'), undefined);
      assert.deepEqual((await s.versionsOf('a')).map((v) => v.version), ['1', '2']);
      assert.deepEqual((await s.files('a', '1')).map((f) => f.path), ['manifest.json', 'w.bin']);
      assert.equal((await s.file('a', '2', 'w.bin'))?.bytes, 10);
      await assert.rejects(s.insertVersion({ name: 'a', version: '2', manifestSha256: 'm9', manifestJson: '{}', files: files('9') }));
      // the failed insert left nothing: no m9 anywhere
      assert.deepEqual([...(await s.referencedBlobs())].sort(), ['m1', 'm2', 'shared']);
      await s.close();
    });

    test('devices: lookup by token, pagination in enrollment order', async () => {
      const s = await engine.open('devices');
      for (let i = 0; i < 7; i++) await s.insertDevice({ id: `dev_${i}`, name: `n${i}`, tokenHash: `h${i}`, deviceClass: 'c', facts: { i } });
      assert.equal((await s.deviceByTokenHash('h3'))?.id, 'dev_3');
      assert.equal(await s.deviceByTokenHash('nope'), undefined);
      const all = await s.devices();
      assert.equal(all.length, 7);
      const seen: string[] = [];
      let page = await s.devices({ limit: 3 });
      while (page.length) {
        seen.push(...page.map((d) => d.id));
        const last = page[page.length - 1]!;
        page = await s.devices({ limit: 3, after: { enrolledAt: last.enrolled_at, id: last.id } });
      }
      assert.deepEqual(seen, all.map((d) => d.id));
      await s.setDeviceState('dev_1', { subnetId: 'x', budget: { latencyMs: 3 } });
      await s.setDeviceState('dev_1', { subnet: { ks: [3] } });
      const d = (await s.device('dev_1'))!;
      assert.equal(d.subnet_id, 'x');
      assert.equal(d.budget_json, JSON.stringify({ latencyMs: 3 }));
      assert.equal(d.package_version, null, 'no version before the device says one');
      await s.setDeviceState('dev_1', { packageVersion: '1.2.0' });
      await s.setDeviceState('dev_1', { subnetId: 'y' });
      const e = (await s.device('dev_1'))!;
      assert.equal(e.package_version, '1.2.0', 'a state update without a version keeps it');
      assert.equal(e.subnet_id, 'y');
      await s.close();
    });

    test('profiles: summaries of a page of devices in one call, devices without a profile absent', async () => {
      const s = await engine.open('profiles');
      for (const id of ['p1', 'p2', 'p3']) await s.insertDevice({ id, name: id, tokenHash: `h${id}`, deviceClass: 'c', facts: {} });
      const summary = (sha: string) => ({ sha256: sha.repeat(64), uploadedAt: '2026-01-01T00:00:00.000Z', format: 'nestswap-profile/1', deviceClass: 'c', fingerprint: null, ep: 'cpu', threads: 1, resolutions: [32], hasLatency: true, hasMemory: false, bytes: 10 });
      await s.putProfile('p1', 'a'.repeat(64), '{}', summary('a'));
      await s.putProfile('p3', 'b'.repeat(64), '{}', summary('b'));
      const got = await s.profileSummaries(['p1', 'p2', 'p3', 'unknown']);
      assert.deepEqual([...got.keys()].sort(), ['p1', 'p3']);
      assert.equal(got.get('p3')!.sha256, 'b'.repeat(64));
      assert.equal((await s.profileSummaries([])).size, 0);
      await s.close();
    });

    test('telemetry: one batch over several devices, duplicates ignored, new events returned once', async () => {
      const s = await engine.open('telemetry');
      await s.insertDevice({ id: 'a', name: 'a', tokenHash: 'ha', facts: {} });
      await s.insertDevice({ id: 'b', name: 'b', tokenHash: 'hb', facts: {} });
      const r1 = await s.ingestTelemetry([
        { deviceId: 'a', events: [ev(1), ev(2), ev(3)] },
        { deviceId: 'b', events: [ev(1)] },
      ]);
      assert.equal(r1.get('a')!.seq, 3);
      assert.deepEqual(r1.get('a')!.added.map((e) => e.seq), [1, 2, 3]);
      assert.equal(r1.get('b')!.seq, 1);
      // a resend overlapping what is stored, and the same event twice in one batch
      const r2 = await s.ingestTelemetry([
        { deviceId: 'a', events: [ev(2), ev(3), ev(4)] },
        { deviceId: 'b', events: [ev(1), ev(2)] },
        { deviceId: 'b', events: [ev(2)] },
      ]);
      assert.deepEqual(r2.get('a')!.added.map((e) => e.seq), [4]);
      assert.deepEqual(r2.get('b')!.added.map((e) => e.seq), [2]);
      assert.equal(r2.get('a')!.seq, 4);
      assert.equal(await s.telemetryCount('a'), 4);
      assert.equal(await s.telemetryCount('b'), 2);
      assert.deepEqual((await s.recentTelemetry('a', 2)).map((e) => [e.seq, e.data.n]), [[4, 4], [3, 3]]);
      assert.equal((await s.device('a'))!.telemetry_seq, 4);
      assert.equal((await s.counts()).telemetry, 6);
      await s.close();
    });

    test('commands: open until finished, recorded once, only by their device', async () => {
      const s = await engine.open('commands');
      await s.insertDevice({ id: 'a', name: 'a', tokenHash: 'ha', facts: {} });
      const c1 = await s.insertCommand({ id: 'c1', deviceId: 'a', type: 'unpin', payload: {} });
      await s.insertCommand({ id: 'c2', deviceId: 'a', type: 'budget', payload: { budget: { latencyMs: 2 } } });
      assert.equal(c1.status, 'pending');
      await s.markSent(['c1']);
      assert.equal((await s.command('c1'))!.status, 'sent');
      assert.deepEqual((await s.openCommands('a')).map((c) => c.id), ['c1', 'c2']);
      assert.equal(await s.finishCommand('other', 'c1', true, {}, undefined), undefined);
      const done = await s.finishCommand('a', 'c1', true, { took: 1 }, undefined);
      assert.equal(done?.status, 'acked');
      assert.deepEqual(done?.result, { took: 1 });
      assert.equal(await s.finishCommand('a', 'c1', false, undefined, { code: 'X', message: 'late' }), undefined);
      assert.equal((await s.command('c1'))!.status, 'acked');
      // a late "sent" mark does not reopen a finished command
      await s.markSent(['c1', 'c2']);
      assert.equal((await s.command('c1'))!.status, 'acked');
      assert.deepEqual((await s.openCommands('a')).map((c) => c.id), ['c2']);
      assert.deepEqual((await s.counts()).commands, { acked: 1, sent: 1 });
      await s.close();
    });

    test('presence: each claim a higher epoch; a superseded replica cannot release the newer claim', async () => {
      const s = await engine.open('presence');
      const p1 = await s.claimPresence('d', 'r1');
      const p2 = await s.claimPresence('d', 'r2');
      assert.ok(p2.epoch > p1.epoch);
      assert.equal(await s.releasePresence(p1), false);
      assert.equal((await s.presence(['d'])).get('d')?.replicaId, 'r2');
      // the stale replica's heartbeat does not refresh a row it no longer holds
      const before = (await s.presence(['d'])).get('d')!.seenAt;
      await new Promise((r) => setTimeout(r, 5));
      await s.touch(['d'], 'r1');
      assert.equal((await s.presence(['d'])).get('d')!.seenAt, before);
      await s.touch(['d'], 'r2');
      assert.notEqual((await s.presence(['d'])).get('d')!.seenAt, before);
      assert.equal(await s.releasePresence(p2), true);
      assert.equal((await s.presence(['d'])).size, 0);
      // epochs keep rising after a release, so an old claim never matches again
      const p3 = await s.claimPresence('d', 'r1');
      assert.ok(p3.epoch > p2.epoch);
      await s.claimPresence('e', 'r1');
      await s.claimPresence('f', 'r2');
      await s.clearPresence('r1');
      assert.deepEqual([...(await s.presence(['d', 'e', 'f'])).keys()], ['f']);
      await s.close();
    });
  });
}

describe('blob directory shared by replicas', () => {
  test("a starting replica removes its own leftover uploads, not another replica's in flight", async () => {
    using d = tempDir();
    const first = new DirBlobStore(d.path, 'r1');
    writeFileSync(join(first.tmpDir, 'aa.r1.1.x'), 'mine, crashed');
    writeFileSync(join(first.tmpDir, 'bb.r2.1.x'), 'theirs, in flight');
    writeFileSync(join(first.tmpDir, 'cc.r3.1.x'), 'abandoned long ago');
    const old = new Date(Date.now() - 2 * 24 * 3600_000);
    utimesSync(join(first.tmpDir, 'cc.r3.1.x'), old, old);
    new DirBlobStore(d.path, 'r1');
    assert.deepEqual(readdirSync(first.tmpDir), ['bb.r2.1.x']);
  });

  test('garbage collection keeps referenced blobs and, within the grace period, uncommitted ones', async () => {
    using d = tempDir();
    const b = new DirBlobStore(d.path, 'r1');
    const bytes = (s: string) => new TextEncoder().encode(s);
    const sha = (c: string) => c.repeat(64);
    assert.deepEqual(await b.write([{ sha256: sha('a'), bytes: bytes('kept') }, { sha256: sha('b'), bytes: bytes('orphan') }, { sha256: sha('c'), bytes: bytes('in flight') }]), [sha('a'), sha('b'), sha('c')]);
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const c of ['a', 'b', 'c']) utimesSync(b.path(sha(c)), old, old);
    // a publish now reuses 'c' (already present): its mtime is refreshed, so GC leaves it until the commit
    assert.deepEqual(await b.write([{ sha256: sha('c'), bytes: bytes('in flight') }]), []);
    assert.equal(await b.collectGarbage(new Set([sha('a')])), 1);
    assert.equal(existsSync(b.path(sha('a'))), true);
    assert.equal(existsSync(b.path(sha('b'))), false);
    assert.equal(existsSync(b.path(sha('c'))), true);
    assert.equal(new TextDecoder().decode(await b.read(sha('c'))), 'in flight');
    // grace 0 (one process owns the directory): everything unreferenced goes
    assert.equal(await b.collectGarbage(new Set([sha('a')]), 0), 1);
    assert.equal(await b.count(), 1);
  });
});

after(() => dirs[Symbol.dispose]());
