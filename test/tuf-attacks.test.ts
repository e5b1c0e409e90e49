/**
 * Every TUF attack class against a real registry (signed with --keys, publisher-signed targets at a
 * threshold of 2) behind a hostile mirror (a real node:http proxy that tampers, replays, forges or
 * floods), with the real agent client (RegistryClient + tuf-js). Each attack is refused with a stable
 * code, nothing is written outside the agent's data directory, and the agent keeps its last verified
 * package. Then a real `nestswap agent` process behind a frozen mirror keeps serving it, root rotation
 * reaches the client without reinstalling, and python-tuf (an independent TUF client) reads the registry.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, MetadataKind, MetaFile, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import { RegistryClient } from '../agent/registry-client.js';
import { TufClient } from '../agent/tuf-client.js';
import { AdminClient, RegistryApiError } from '../registry/admin-client.js';
import { startRegistry, type RegistryHandle } from '../registry/server.js';
import { initKeyDir, rotateRoot } from '../registry/tuf/keydir.js';
import { readKeyFile } from '../registry/tuf/keys.js';
import { signPackageTargets } from '../registry/tuf/publisher.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { tufDate } from '../runtime/tuf-layout.js';
import { pino } from 'pino';
import { repoPath, tempDir, TINY } from './helpers.js';

const ADMIN = 'admin-token-tuf-attacks-0001';
const ENROLL = 'enroll-token-tuf-attacks-001';
const BIN = repoPath('bin', 'nestswap.js');
const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
type Json = Parameters<typeof Metadata.fromJSON>[1];

interface Upstream {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}
/** An attack: answers a request itself, given the honest upstream answer on demand. */
type Attack = (path: string, upstream: () => Promise<Upstream>, res: ServerResponse) => Promise<boolean>;

/** A mirror in front of the registry: passes everything through unless the current attack answers. */
class Mirror {
  server!: Server;
  url = '';
  attack: Attack | undefined;
  constructor(public upstream: string) {}
  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res).catch(() => res.destroy()));
    // WebSocket upgrades pass through untouched (telemetry, commands)
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const up = new URL(this.upstream);
      const conn = connect(Number(up.port), up.hostname, () => {
        conn.write(`${req.method} ${req.url} HTTP/1.1\r\n${Object.entries(req.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\r\n')}\r\n\r\n`);
        conn.write(head);
        socket.pipe(conn).pipe(socket);
      });
      conn.on('error', () => socket.destroy());
      socket.on('error', () => conn.destroy());
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = req.url ?? '/';
    const fetchUp = async (): Promise<Upstream> => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
      const r = await fetch(`${this.upstream}${path}`, { method: req.method ?? 'GET', headers, ...(chunks.length ? { body: Buffer.concat(chunks) } : {}) });
      const h: Record<string, string> = {};
      r.headers.forEach((v, k) => {
        if (!['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'content-encoding'].includes(k)) h[k] = v;
      });
      return { status: r.status, headers: h, body: Buffer.from(await r.arrayBuffer()) };
    };
    if (this.attack && (await this.attack(path, fetchUp, res))) return;
    const up = await fetchUp();
    res.writeHead(up.status, up.headers).end(up.body);
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const send = (res: ServerResponse, body: Buffer | string, status = 200) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  return true;
};

/** A package directory: the tiny fixture under another name/version (same weights). */
function makePackage(dir: string, name: string, version: string): string {
  cpSync(TINY, dir, { recursive: true });
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { name: string; version: string };
  m.name = name;
  m.version = version;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m, null, 1));
  return dir;
}

/** Every file under `root` outside `skip` (relative paths). */
function filesOutside(root: string, skip: string[]): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (skip.some((s) => p === s || p.startsWith(`${s}/`))) continue;
      if (e.isDirectory()) walk(p);
      else out.push(`${relative(root, p)}:${statSync(p).size}`);
    }
  };
  walk(root);
  return out.sort();
}

async function refused(code: string, p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: { code?: string; message?: string }) => {
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return true;
  });
}

describe('TUF attacks against a signed registry behind a hostile mirror', { timeout: 300_000 }, () => {
  const dir = tempDir('nestswap-tuf-attacks-');
  const keys = join(dir.path, 'keys');
  const regData = join(dir.path, 'registry');
  const agentData = join(dir.path, 'agent');
  const fleet = join(agentData, 'fleet');
  const work = join(dir.path, 'work');
  let reg: RegistryHandle;
  let mirror: Mirror;
  let admin: AdminClient;
  let client: RegistryClient;
  let tuf: TufClient;
  let outside: string[];
  const targetKeys = () => [join(keys, 'targets.key.json'), join(keys, 'targets-2.key.json')];
  const startReg = () =>
    startRegistry({ port: 0, dataDir: regData, adminToken: ADMIN, enrollToken: ENROLL, tuf: { keyDir: keys, lifetimes: { timestampS: 4 }, refreshMs: 250 } });
  const publish = async (name: string, version: string, sign = true) => {
    const d = makePackage(join(work, `pkg-${name}-${version}`), name, version);
    await admin.publishDir(d);
    if (sign) await signPackageTargets(admin, d, targetKeys());
    return d;
  };
  /** The agent still has exactly its last verified package, and it loads (every digest checked again). */
  const keepsServing = async (version: string) => {
    const c = client.cachedPackage('tiny');
    assert.equal(c?.version, version);
    await loadPackageDir(c.dir);
    assert.deepEqual(filesOutside(dir.path, [agentData, regData, keys, work]), outside, 'nothing written outside the data directories');
  };

  before(async () => {
    initKeyDir(keys, { roles: { targets: { keys: 2, threshold: 2 } } });
    reg = await startReg();
    mirror = new Mirror(reg.url);
    await mirror.start();
    admin = new AdminClient(reg.url, ADMIN);
    await publish('tiny', '1.0.0');
    tuf = TufClient.open({ registry: mirror.url, dataDir: fleet, logger: pino({ level: 'silent' }), trustRoot: join(keys, 'root.json') });
    client = new RegistryClient({ url: mirror.url, dataDir: fleet, tuf });
    await client.enroll(ENROLL, { name: 'victim', supernet: 'tiny' });
    const first = await client.ensurePackage('tiny');
    assert.equal(first.version, '1.0.0');
    assert.equal(first.seq, 1);
    assert.equal(first.downloaded, true);
    await publish('tiny', '2.0.0');
    outside = filesOutside(dir.path, [agentData, regData, keys, work]);
  });
  after(async () => {
    await mirror?.close();
    await reg?.close();
    dir[Symbol.dispose]();
  });

  test('arbitrary installation: a tampered manifest is refused (ERR_PACKAGE_DIGEST)', async () => {
    mirror.attack = async (path, up, res) => {
      if (!/^\/v1\/tuf\/targets\/tiny\/2\.0\.0\/[0-9a-f]{64}\.manifest\.json$/.test(path)) return false;
      const u = await up();
      return send(res, u.body.toString().replace('"2.0.0"', '"6.6.6"'));
    };
    await refused('ERR_PACKAGE_DIGEST', client.ensurePackage('tiny'));
    await keepsServing('1.0.0');
  });

  test('arbitrary installation: a tampered blob is refused (ERR_PACKAGE_DIGEST)', async () => {
    mirror.attack = async (path, up, res) => {
      if (!path.startsWith('/v1/tuf/targets/tiny/2.0.0/') || !path.endsWith('.weights.bin')) return false;
      const u = await up();
      u.body[100] = u.body[100]! ^ 0xff;
      res.writeHead(200, { 'content-length': String(u.body.length) }).end(u.body);
      return true;
    };
    await refused('ERR_PACKAGE_DIGEST', client.ensurePackage('tiny'));
    await keepsServing('1.0.0');
  });

  test('arbitrary installation: tampered targets metadata is refused (ERR_METADATA_MISMATCH)', async () => {
    await publish('tiny', '2.1.0'); // new targets the agent has not seen yet
    mirror.attack = async (path, up, res) => {
      if (!/^\/v1\/tuf\/metadata\/\d+\.targets\.json$/.test(path)) return false;
      const u = await up();
      const md = JSON.parse(u.body.toString()) as { signed: { targets: Record<string, { hashes: { sha256: string } }> } };
      for (const t of Object.values(md.signed.targets)) t.hashes.sha256 = sha('evil');
      return send(res, JSON.stringify(md));
    };
    await refused('ERR_METADATA_MISMATCH', client.ensurePackage('tiny'));
    await keepsServing('1.0.0');
  });

  test('endless data: a target is capped at its signed length (ERR_PACKAGE_SIZE), metadata at its limit (ERR_METADATA_TOO_LARGE)', async () => {
    let sent = 0;
    const flood = (res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const more = () => {
        while (!res.destroyed && sent < 512 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('close', () => undefined);
      more();
      return true;
    };
    mirror.attack = async (path, _up, res) => (path.startsWith('/v1/tuf/targets/tiny/') && path.endsWith('.weights.bin') ? flood(res) : false);
    await refused('ERR_PACKAGE_SIZE', client.ensurePackage('tiny'));
    assert.ok(sent < 64 * 1024 * 1024, `the client stopped reading early (${sent} bytes sent)`);
    const staging = join(fleet, 'packages', '.staging');
    for (const d of existsSync(staging) ? readdirSync(staging) : [])
      for (const f of readdirSync(join(staging, d))) assert.ok(statSync(join(staging, d, f)).size <= 272_308, `${f} is no larger than its signed length`);
    sent = 0;
    mirror.attack = async (path, _up, res) => (path === '/v1/tuf/metadata/timestamp.json' ? flood(res) : false);
    await refused('ERR_METADATA_TOO_LARGE', client.ensurePackage('tiny'));
    await keepsServing('1.0.0');
  });

  test('mix-and-match: targets of another version under the snapshot\'s name are refused (ERR_METADATA_MISMATCH)', async () => {
    await publish('tiny', '2.2.0');
    mirror.attack = async (path, up, res) => {
      const m = /^\/v1\/tuf\/metadata\/(\d+)\.targets\.json$/.exec(path);
      if (!m) return false;
      const older = await fetch(`${reg.url}/v1/tuf/metadata/${Number(m[1]) - 1}.targets.json`);
      void up;
      return send(res, Buffer.from(await older.arrayBuffer()));
    };
    await refused('ERR_METADATA_MISMATCH', client.ensurePackage('tiny'));
    await keepsServing('1.0.0');
  });

  test('malicious mirror: a repository signed by other keys is refused (ERR_METADATA_SIGNATURE)', async () => {
    const evilKeys = join(work, 'evil-keys');
    initKeyDir(evilKeys);
    const evil = await startRegistry({ port: 0, dataDir: join(work, 'evil-registry'), adminToken: ADMIN, enrollToken: ENROLL, tuf: { keyDir: evilKeys, onlineTargets: true } });
    try {
      const evilAdmin = new AdminClient(evil.url, ADMIN);
      await evilAdmin.publishDir(makePackage(join(work, 'evil-pkg'), 'tiny', '9.0.0'));
      mirror.attack = async (path, _up, res) => {
        if (!path.startsWith('/v1/tuf/')) return false;
        const r = await fetch(`${evil.url}${path}`);
        res.writeHead(r.status, { 'content-type': 'application/json' }).end(Buffer.from(await r.arrayBuffer()));
        return true;
      };
      await refused('ERR_METADATA_SIGNATURE', client.ensurePackage('tiny'));
    } finally {
      await evil.close();
    }
    await keepsServing('1.0.0');
  });

  test('key compromise below threshold: targets signed by 1 of 2 targets keys (and the online keys) are refused', async () => {
    // the attacker holds the registry (snapshot + timestamp keys) and one of the two targets keys
    const [k1] = targetKeys().map(readKeyFile);
    const snapKey = readKeyFile(join(keys, 'snapshot.key.json'));
    const tsKey = readKeyFile(join(keys, 'timestamp.key.json'));
    const cur = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(await admin.tufMetadata(`${(await reg.tuf!.targets()).signed.version}.targets.json`)) as Json);
    const evilManifest = Buffer.from(JSON.stringify({ evil: true }));
    const targets = new Targets({
      version: cur.signed.version + 1,
      specVersion: '1.0.31',
      expires: tufDate(Date.now() + 86_400_000),
      targets: { ...cur.signed.targets, 'tiny/9.0.0/manifest.json': new TargetFile({ path: 'tiny/9.0.0/manifest.json', length: evilManifest.length, hashes: { sha256: sha(evilManifest) }, unrecognizedFields: { custom: { nestswap: { supernet: 'tiny', version: '9.0.0', seq: 99 } } } }) },
    });
    const tMd = new Metadata(targets);
    tMd.sign((d) => k1!.sign(d));
    const tJson = JSON.stringify(tMd.toJSON());
    // the honest registry refuses it too
    await assert.rejects(admin.putTufMetadata('targets', tJson), (e: RegistryApiError) => e.code === 'ERR_TUF_SIGNATURE');
    const snap = new Metadata(new Snapshot({ version: 100_000, specVersion: '1.0.31', expires: tufDate(Date.now() + 86_400_000), meta: { 'targets.json': new MetaFile({ version: targets.version, length: tJson.length, hashes: { sha256: sha(tJson) } }) } }));
    snap.sign((d) => snapKey.sign(d));
    const sJson = JSON.stringify(snap.toJSON());
    const ts = new Metadata(new Timestamp({ version: 100_000, specVersion: '1.0.31', expires: tufDate(Date.now() + 86_400_000), snapshotMeta: new MetaFile({ version: 100_000, length: sJson.length, hashes: { sha256: sha(sJson) } }) }));
    ts.sign((d) => tsKey.sign(d));
    const forged: Record<string, string> = { 'timestamp.json': JSON.stringify(ts.toJSON()), '100000.snapshot.json': sJson, [`${targets.version}.targets.json`]: tJson };
    mirror.attack = async (path, _up, res) => {
      const f = /^\/v1\/tuf\/metadata\/(.+)$/.exec(path)?.[1];
      return f !== undefined && forged[f] !== undefined ? send(res, forged[f]) : false;
    };
    await refused('ERR_METADATA_SIGNATURE', client.ensurePackage('tiny'));
    await keepsServing('1.0.0');
    // that forged timestamp (valid: the timestamp key is compromised) is now the agent's: the fast-forward test recovers from it
  });

  test('fast-forward (online keys compromised) freezes updates (ERR_METADATA_ROLLBACK) until the snapshot and timestamp keys are rotated; root rotation reaches the client', async () => {
    mirror.attack = undefined;
    // the agent trusted the fast-forwarded timestamp version 100000: the honest one is "older"
    await refused('ERR_METADATA_ROLLBACK', client.ensurePackage('tiny'));
    await keepsServing('1.0.0');
    // the operator rotates the online keys (root v2, signed offline by the root key) and restarts the registry with them
    const rotated = rotateRoot(keys, { replace: ['snapshot', 'timestamp'] });
    assert.equal(rotated.rootVersion, 2);
    assert.deepEqual(await admin.putTufMetadata('root', readFileSync(rotated.rootFile, 'utf8')), { role: 'root', version: 2 });
    await reg.close();
    reg = await startReg();
    mirror.upstream = reg.url;
    admin = new AdminClient(reg.url, ADMIN);
    assert.equal(tuf.rootVersion(), 1);
    const got = await client.ensurePackage('tiny');
    assert.equal(tuf.rootVersion(), 2, 'the agent follows the rotation without a new --trust-root');
    assert.equal(got.version, '2.2.0');
    assert.equal(got.seq, 4);
    assert.equal(got.downloaded, true);
    await keepsServing('2.2.0');
  });

  test('rollback: older metadata (ERR_METADATA_ROLLBACK) and an older package version (ERR_PACKAGE_ROLLBACK) are refused', async () => {
    const oldTs = await fetch(`${reg.url}/v1/tuf/metadata/timestamp.json`).then((r) => r.text());
    await client.ensurePackage('tiny');
    await publish('tiny', '3.0.0');
    // the agent takes 3.0.0 (a newer timestamp); then the mirror replays the old timestamp
    assert.equal((await client.ensurePackage('tiny')).version, '3.0.0');
    mirror.attack = async (path, _up, res) => (path === '/v1/tuf/metadata/timestamp.json' ? send(res, oldTs) : false);
    const v = (JSON.parse(oldTs) as { signed: { version: number } }).signed.version;
    const trusted = (JSON.parse(readFileSync(join(fleet, 'tuf', 'metadata', 'timestamp.json'), 'utf8')) as { signed: { version: number } }).signed.version;
    assert.ok(trusted > v, `the agent trusts timestamp ${trusted} > replayed ${v}`);
    await refused('ERR_METADATA_ROLLBACK', client.ensurePackage('tiny'));
    mirror.attack = undefined;
    await keepsServing('3.0.0');
    await refused('ERR_PACKAGE_ROLLBACK', client.ensurePackage('tiny', '1.0.0'));
    await keepsServing('3.0.0');
  });

  test('extraneous target: an unsigned version on the registry is never installed (ERR_TARGET_UNKNOWN)', async () => {
    await publish('tiny', '4.0.0', false);
    const latest = await client.ensurePackage('tiny');
    assert.equal(latest.version, '3.0.0', 'the newest signed version, not the newest uploaded');
    await refused('ERR_TARGET_UNKNOWN', client.ensurePackage('tiny', '4.0.0'));
    assert.equal(existsSync(join(fleet, 'packages', 'tiny', '4.0.0')), false);
    await keepsServing('3.0.0');
  });

  test('wrong software: another supernet\'s (signed) manifest served for ours is refused (ERR_PACKAGE_DIGEST)', async () => {
    await publish('twin', '1.0.0');
    await publish('tiny', '5.0.0');
    const otherManifest = readFileSync(join(work, 'pkg-twin-1.0.0', 'manifest.json'));
    mirror.attack = async (path, _up, res) => (/^\/v1\/tuf\/targets\/tiny\/5\.0\.0\/[0-9a-f]{64}\.manifest\.json$/.test(path) ? send(res, otherManifest) : false);
    await refused('ERR_PACKAGE_DIGEST', client.ensurePackage('tiny'));
    mirror.attack = undefined;
    await keepsServing('3.0.0');
  });

  test('indefinite freeze: an expired timestamp is refused (ERR_METADATA_EXPIRED); a real agent process keeps serving its verified package', async () => {
    const frozen = await fetch(`${reg.url}/v1/tuf/metadata/timestamp.json`).then((r) => r.text());
    const expires = Date.parse((JSON.parse(frozen) as { signed: { expires: string } }).signed.expires);
    mirror.attack = async (path, _up, res) => (path === '/v1/tuf/metadata/timestamp.json' ? send(res, frozen) : false);
    await sleep(Math.max(0, expires - Date.now()) + 1100);
    await refused('ERR_METADATA_EXPIRED', client.ensurePackage('tiny'));
    await keepsServing('3.0.0');
    // the same data directory, now a real agent process behind the frozen mirror
    const child = spawn(process.execPath, [BIN, 'agent', '--registry', mirror.url, '--enroll-token', ENROLL, '--supernet', 'tiny', '--latency-ms', '50', '--port', '0', '--threads', '1', '--data', agentData, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const t0 = Date.now();
      let ready: { url: string; version: string } | undefined;
      while (!ready && Date.now() - t0 < 120_000 && child.exitCode === null) {
        await sleep(200);
        ready = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; url: string; version: string }).find((l) => l.msg === 'fleet agent serving');
      }
      assert.ok(ready, `agent serving: ${out.slice(-2000)}`);
      assert.equal(ready.version, '3.0.0');
      assert.match(out, /"code":"ERR_METADATA_EXPIRED".*update refused: serving the last verified package/);
      const r = await fetch(`${ready.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: new Array(144).fill(0.5) }) });
      assert.equal(r.status, 200);
      // and the registry hears of the refusal (telemetry through the mirror's WebSocket passthrough)
      const deviceId = (JSON.parse(readFileSync(join(fleet, 'identity.json'), 'utf8')) as { deviceId: string }).deviceId;
      let reported = false;
      for (let i = 0; i < 100 && !reported; i++) {
        const t = await admin.telemetry(deviceId, 50);
        reported = t.events.some((e) => e.kind === 'error' && e.data.code === 'ERR_METADATA_EXPIRED');
        if (!reported) await sleep(200);
      }
      assert.ok(reported, 'an error telemetry event with ERR_METADATA_EXPIRED reached the registry');
    } finally {
      child.kill('SIGKILL');
    }
    mirror.attack = undefined;
    await keepsServing('3.0.0');
  });

  test('fleet mode without a trusted root refuses to start (ERR_TRUST_ROOT_MISSING) unless --insecure-no-signatures', () => {
    const r = spawnSync(process.execPath, [BIN, 'agent', '--registry', mirror.url, '--enroll-token', ENROLL, '--supernet', 'tiny', '--latency-ms', '50', '--data', join(work, 'no-root')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\[ERR_TRUST_ROOT_MISSING\]/);
    assert.equal(existsSync(join(work, 'no-root', 'fleet', 'identity.json')), false, 'it did not even enroll');
  });

  test('python-tuf (an independent TUF client) refreshes, finds and downloads a target from the registry', async (t) => {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import securesystemslib, requests'], { encoding: 'utf8' });
    if (probe.status !== 0) return t.skip('python3-securesystemslib is not installed (apt-get install python3-securesystemslib)');
    // asynchronous: the registry runs in this process and must keep answering
    const run = async (target: string, token = ADMIN) => {
      const child = spawn('/usr/bin/python3', [repoPath('test', 'tuf-interop.py'), reg.url, join(keys, '1.root.json'), join(work, 'py', `${target.replace(/\//g, '_')}-${token.length}`), target, token], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((r) => child.once('close', r));
      return JSON.parse(out.trim().split('\n').pop() ?? '{}') as { ok: boolean; sha256?: string; root_version?: number; custom?: { nestswap?: { seq: number } }; error?: string };
    };
    const m = await run('tiny/3.0.0/manifest.json');
    assert.equal(m.ok, true, JSON.stringify(m));
    assert.equal(m.sha256, sha(readFileSync(join(work, 'pkg-tiny-3.0.0', 'manifest.json'))));
    assert.equal(m.root_version, 2, 'python-tuf followed the root rotation from version 1');
    assert.equal(m.custom?.nestswap?.seq, 5, '1.0.0, 2.0.0, 2.1.0, 2.2.0, then 3.0.0');
    const w = await run('tiny/3.0.0/weights.bin');
    assert.equal(w.sha256, sha(readFileSync(join(TINY, 'weights.bin'))));
    assert.equal((await run('tiny/4.0.0/manifest.json')).error, 'TargetNotFound', 'the unsigned version is not a target for python-tuf either');
    // metadata is public, the files are not: without a token that reads the package the download is refused
    const anon = await run('tiny/3.0.0/weights.bin', '');
    assert.equal(anon.ok, false);
    assert.equal(anon.root_version, undefined);
    assert.match(`${anon.error}`, /DownloadHTTPError|DownloadError/);
  });
});
