/**
 * Three registry replicas (real `nestswap registry` processes) on a real PostgreSQL and a real NATS,
 * ~300 lightweight devices speaking the agent protocol plus two real `nestswap agent` processes
 * with several registry URLs: enrollment, telemetry, a command to every device through a random
 * replica, one replica killed with kill -9 mid-run and restarted; nothing lost or duplicated.
 * Skipped with the reason when PostgreSQL or nats-server is not installed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, JSONCodec, type NatsConnection } from 'nats';
import pg from 'pg';
import { registryUrls } from '../agent/registry-client.js';
import { sha256Hex } from '../runtime/package.js';
import { BIN, Replica } from './cluster.js';
import { tempDir } from './helpers.js';
import { enrollLight, LightAgent } from './light-agent.js';
import { makeQueryablePackage, profileText, tinyProfile } from './registry-fixtures.js';
import { sleep, until as untilEvery } from './processes.js';
import { natsAvailable, postgresAvailable, startNats, startPostgres, type NatsServer, type PostgresServer } from './servers.js';

const ADMIN = 'scale-admin-token-0123456789';
const ENROLL = 'scale-enroll-token-0123456789';
const LIGHT = 300;
const skip = postgresAvailable() ?? natsAvailable();

const until = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 60_000) => untilEvery(what, fn, ms, 200);

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T>(items: T[], n: number, fn: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

describe('registry replicas on PostgreSQL + NATS', { skip: skip ? `replica test skipped: ${skip}` : false, timeout: 900_000 }, () => {
  const dir = tempDir('nestswap-scale-');
  let pgs: PostgresServer;
  let nats: NatsServer;
  let db: pg.Pool;
  let watch: NatsConnection;
  const doneCount = new Map<string, number>();
  const replicas: Replica[] = [];
  const light: LightAgent[] = [];
  const real: { proc: ChildProcess; out: string; device?: string | undefined }[] = [];
  const urls = () => replicas.map((r) => r.url);
  const live = () => replicas.filter((r) => r.running);
  const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
  let pkgDir: string;
  const keyDir = join(dir.path, 'keys');

  /** POST a command through a random live replica (another one if that one is not answering). */
  async function command(deviceId: string, body: Record<string, unknown>): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const r = live()[Math.floor(Math.random() * live().length)]!;
      try {
        const res = await fetch(`${r.url}/v1/devices/${deviceId}/commands`, { method: 'POST', headers: admin, body: JSON.stringify(body) });
        assert.ok(res.status === 202 || res.status === 200, `command: HTTP ${res.status}`);
        return ((await res.json()) as { id: string }).id;
      } catch (err) {
        if (attempt > 5) throw err;
        await sleep(100);
      }
    }
  }

  const commandRows = async (ids: string[]) => (await db.query<{ id: string; status: string; done_at: string | null }>('SELECT id, status, done_at FROM commands WHERE id = ANY($1)', [ids])).rows;

  async function allAcked(ids: string[], what: string): Promise<void> {
    await until(what, async () => ((await commandRows(ids)).every((r) => r.status === 'acked') ? true : undefined), 180_000);
    // every outcome was recorded once: the store announces an outcome only when it records it
    await until(`${what}: outcomes announced`, () => (ids.every((id) => doneCount.has(id)) ? true : undefined), 20_000);
    for (const id of ids) assert.equal(doneCount.get(id), 1, `outcome of ${id} recorded ${doneCount.get(id)} times`);
  }

  function startReal(name: string, order: string[]): void {
    const args = ['agent', '--registry', order.join(','), '--enroll-token', ENROLL, '--supernet', 'tiny', '--name', name, '--latency-ms', '50', '--port', '0', '--threads', '1', '--data', join(dir.path, name), '--log-level', 'info', '--trust-root', join(keyDir, 'root.json')];
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p: { proc: ChildProcess; out: string; device?: string | undefined } = { proc: child, out: '' };
    const on = (d: Buffer) => {
      p.out += d.toString();
      for (const line of p.out.split('\n'))
        if (line.includes('"fleet agent serving"'))
          try {
            p.device = (JSON.parse(line) as { device: string }).device;
          } catch {
            // a partial line
          }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    real.push(p);
  }

  before(async () => {
    [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
    const database = await pgs.createDatabase('nestswap');
    db = new pg.Pool({ connectionString: database, max: 2 });
    watch = await connect({ servers: nats.url });
    const jc = JSONCodec<{ t: string; command?: { id: string } }>();
    watch.subscribe('nestswap.commands.done', { callback: (_e, m) => {
      const id = jc.decode(m.data).command?.id;
      if (id) doneCount.set(id, (doneCount.get(id) ?? 0) + 1);
    } });
    await watch.flush();
    // packages signed with TUF: every replica holds the same keys; the metadata lives in the shared store
    const keys = spawnSync(process.execPath, [BIN, 'keys', 'init', '--out', keyDir, '--json'], { encoding: 'utf8' });
    assert.equal(keys.status, 0, keys.stderr);
    for (const id of ['r0', 'r1', 'r2'])
      replicas.push(new Replica({ id, database, bus: nats.url, blobs: join(dir.path, 'blobs'), dataRoot: dir.path, adminToken: ADMIN, enrollToken: ENROLL, args: ['--keys', keyDir, '--online-targets'] }));
    // started together: migrations run once under the advisory lock
    await Promise.all(replicas.map((r) => r.start()));
    pkgDir = await makeQueryablePackage(join(dir.path, 'pkg'));
  });

  after(async () => {
    await Promise.all(light.map((a) => a.stop()));
    for (const p of real) p.proc.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.kill()));
    await watch?.close();
    await db?.end();
    await nats?.stop();
    await pgs?.stop();
    dir[Symbol.dispose]();
  });

  test('publish on one replica, download from another; a query answered by any replica', async () => {
    const pub = spawnSync(process.execPath, [BIN, 'publish', pkgDir, '--registry', replicas[0]!.url, '--token', ADMIN, '--json'], { encoding: 'utf8' });
    assert.equal(pub.status, 0, pub.stderr);
    const manifest = readFileSync(join(pkgDir, 'manifest.json'));
    const res = await fetch(`${replicas[2]!.url}/v1/supernets/tiny/versions/latest/files/manifest.json`, { headers: admin });
    assert.equal(res.status, 200);
    assert.equal(await sha256Hex(new Uint8Array(await res.arrayBuffer())), await sha256Hex(manifest));
    // a profile uploaded through r1, queried through each replica: the same answer
    const d = await enrollLight(replicas[1]!.url, ENROLL, 'profiled', { supernet: 'tiny' });
    const put = await fetch(`${replicas[1]!.url}/v1/devices/${d.deviceId}/profile`, { method: 'PUT', headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' }, body: profileText(await tinyProfile()) });
    assert.equal(put.status, 200);
    const answers = [];
    for (const r of replicas) {
      const q = await fetch(`${r.url}/v1/query`, { method: 'POST', headers: admin, body: JSON.stringify({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: 1000 } }) });
      assert.equal(q.status, 200, await q.clone().text());
      answers.push(((await q.json()) as { subnetId: string }).subnetId);
    }
    assert.equal(new Set(answers).size, 1, answers.join(' '));
  });

  test('~300 devices and two real agents: enroll, telemetry, a command to every device through a random replica', async () => {
    const u = urls();
    startReal('real-a', [u[0]!, u[1]!, u[2]!]);
    startReal('real-b', [u[1]!, u[2]!, u[0]!]);
    const ids = Array.from({ length: LIGHT }, (_, i) => i);
    await pool(ids, 16, async (i) => {
      const d = await enrollLight(u[i % 3]!, ENROLL, `light-${i}`);
      // each device tries the replicas in its own order, starting on its own one
      light.push(new LightAgent({ ...d, urls: [0, 1, 2].map((k) => u[(i + k) % 3]!) }));
    });
    for (const a of light) a.start();
    await until('all light devices welcomed', () => (light.every((a) => a.welcomed) ? true : undefined), 120_000);
    const spread = [0, 1, 2].map((k) => light.filter((a) => a.url === u[k]).length);
    assert.ok(spread.every((n) => n >= LIGHT / 3 - 1), `connections per replica: ${spread.join(', ')}`);
    for (const a of light) a.telemetry(10);
    await Promise.all(light.map((a) => a.until(() => a.acked === 10, 60_000, 'telemetry acked')));
    for (const p of real) await until('real agents serving', () => p.device, 240_000).catch((err: Error) => assert.fail(`${err.message}: ${p.out.slice(-3000)}`));
    const devices = [...light.map((a) => a.deviceId), ...real.map((p) => p.device!)];
    const cmdIds: string[] = [];
    await pool(devices, 16, async (id) => {
      cmdIds.push(await command(id, { type: 'budget', budget: { latencyMs: 60 } }));
    });
    await allAcked(cmdIds, 'round 1 acked');
    for (const a of light) for (const id of a.deliveries.keys()) assert.ok(cmdIds.includes(id));
    const stored = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM telemetry WHERE device_id = ANY($1)", [light.map((a) => a.deviceId)]);
    assert.equal(stored.rows[0]!.n, LIGHT * 10);
    // the device list, paginated, through any replica: every device, each once
    const seen: string[] = [];
    let after: string | null = null;
    do {
      const page = (await (await fetch(`${u[2]}/v1/devices?limit=100${after ? `&after=${after}` : ''}`, { headers: admin })).json()) as { devices: { id: string; online: boolean }[]; next: string | null };
      seen.push(...page.devices.map((d) => d.id));
      for (const d of page.devices) if (devices.includes(d.id)) assert.equal(d.online, true, `${d.id} online`);
      after = page.next;
    } while (after);
    assert.equal(new Set(seen).size, seen.length);
    for (const id of devices) assert.ok(seen.includes(id));
  });

  test('kill -9 one replica mid-run: devices move to the others, nothing lost or duplicated; restarted, it rejoins', async () => {
    const victim = replicas[1]!;
    const onVictim = light.filter((a) => a.url === victim.url);
    assert.ok(onVictim.length > 50);
    const devices = [...light.map((a) => a.deviceId), ...real.map((p) => p.device!)];
    const cmdIds: string[] = [];
    const half = Math.floor(devices.length / 2);
    // commands and telemetry in flight when the replica dies
    await pool(devices.slice(0, half), 16, async (id) => {
      cmdIds.push(await command(id, { type: 'unpin' }));
    });
    for (const a of light) a.telemetry(10);
    await victim.kill();
    for (const a of light) a.telemetry(10);
    await pool(devices.slice(half), 16, async (id) => {
      cmdIds.push(await command(id, { type: 'unpin' }));
    });
    await until('devices of the killed replica reconnected elsewhere', () => (onVictim.every((a) => a.welcomed && a.url !== victim.url) ? true : undefined), 60_000);
    await allAcked(cmdIds, 'round 2 acked');
    await Promise.all(light.map((a) => a.until(() => a.acked === 30, 60_000, 'all telemetry acked')));
    const per = await db.query<{ device_id: string; n: number; mx: number }>('SELECT device_id, count(*)::int AS n, max(seq)::int AS mx FROM telemetry WHERE device_id = ANY($1) GROUP BY device_id', [light.map((a) => a.deviceId)]);
    assert.equal(per.rows.length, LIGHT);
    for (const r of per.rows) assert.deepEqual([r.n, r.mx], [30, 30], `device ${r.device_id}`);
    // no device is left on the dead replica
    await until('presence moved', async () => ((await db.query("SELECT 1 FROM presence WHERE replica_id = 'r1'")).rowCount === 0 ? true : undefined), 30_000);

    // restarted with the same id, it serves again: a command through it reaches devices on the other replicas
    await victim.start();
    const round3: string[] = [];
    for (const a of light.slice(0, 30)) {
      const res = await fetch(`${victim.url}/v1/devices/${a.deviceId}/commands`, { method: 'POST', headers: admin, body: JSON.stringify({ type: 'unpin', waitMs: 20_000 }) });
      const c = (await res.json()) as { id: string; status: string };
      assert.equal(c.status, 'acked');
      round3.push(c.id);
    }
    await allAcked(round3, 'round 3 acked');
    // and devices connect to it again
    for (const a of light.slice(0, 10)) {
      // a device moves on to the next URL when its connection drops: make that the restarted replica
      a.at = (a.opts.urls.indexOf(victim.url) + 2) % 3;
      a.drop();
    }
    await until('devices reconnected to the restarted replica', () => (light.slice(0, 10).every((a) => a.welcomed && a.url === victim.url) ? true : undefined), 30_000);
    // real agents: every telemetry seq stored exactly once, through whichever replica
    for (const p of real) {
      const t = (await (await fetch(`${replicas[0]!.url}/v1/devices/${p.device}/telemetry?limit=1`, { headers: admin })).json()) as { count: number; telemetrySeq: number };
      assert.equal(t.count, t.telemetrySeq, `${p.device}: ${t.count} stored for seq 1..${t.telemetrySeq}`);
    }
  });

  test('bad flags and unreachable engines are one-line errors with a code', () => {
    const run = (args: string[]) => spawnSync(process.execPath, [BIN, 'registry', '--data', join(dir.path, 'bad'), '--port', '0', ...args], { encoding: 'utf8', timeout: 60_000 });
    const badDb = run(['--database', 'mysql://x']);
    assert.equal(badDb.status, 2);
    assert.match(badDb.stderr, /ERR_USAGE/);
    const badBus = run(['--bus', 'http://x']);
    assert.match(badBus.stderr, /ERR_USAGE/);
    const noDb = run(['--database', `postgres://postgres@127.0.0.1:1/none`]);
    assert.notEqual(noDb.status, 0);
    assert.match(noDb.stderr, /ERR_DATABASE/);
    assert.doesNotMatch(noDb.stderr, /\n\s+at /);
    const noBus = run(['--bus', 'nats://127.0.0.1:1']);
    assert.match(noBus.stderr, /ERR_BUS/);
    assert.throws(() => registryUrls('http://a:1,ftp://b'), /ERR_USAGE|http\(s\) URLs/);
    assert.deepEqual(registryUrls('http://a:1/, http://b:2,http://a:1'), ['http://a:1', 'http://b:2']);
  });
});
