/**
 * The registry's side of TUF, each refusal with its stable code: uploads of targets and roots
 * (threshold, version, files it does not hold, expiry), a registry without keys, key directories
 * that do not match the root, and the key and publish commands' bad input.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Metadata, MetadataKind, TargetFile, Targets } from '@tufjs/models';
import { TufClient } from '../agent/tuf-client.js';
import { AdminClient, RegistryApiError } from '../registry/admin-client.js';
import { startRegistry, type RegistryHandle } from '../registry/server.js';
import { initKeyDir, rotateRoot } from '../registry/tuf/keydir.js';
import { readKeyFile } from '../registry/tuf/keys.js';
import { signPackageTargets } from '../registry/tuf/publisher.js';
import { tufDate } from '../runtime/tuf-layout.js';
import { pino } from 'pino';
import { repoPath, tempDir, TINY } from './helpers.js';

const ADMIN = 'admin-token-tuf-registry-001';
const ENROLL = 'enroll-token-tuf-registry-001';
const BIN = repoPath('bin', 'nestswap.js');
type Json = Parameters<typeof Metadata.fromJSON>[1];
const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
/** For commands that talk to the registry of this process: its event loop must keep running. */
async function cliAsync(args: string[]): Promise<{ status: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null>((r) => child.once('close', r));
  return { status, stderr };
}

async function apiCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RegistryApiError) return err.code;
    throw err;
  }
  return 'no error';
}

describe('TUF on the registry side', { timeout: 120_000 }, () => {
  const dir = tempDir('nestswap-tuf-registry-');
  const keys = join(dir.path, 'keys');
  let reg: RegistryHandle;
  let admin: AdminClient;

  before(async () => {
    initKeyDir(keys);
    reg = await startRegistry({ port: 0, dataDir: join(dir.path, 'registry'), adminToken: ADMIN, enrollToken: ENROLL, tuf: { keyDir: keys } });
    admin = new AdminClient(reg.url, ADMIN);
    await admin.publishDir(TINY);
  });
  after(async () => {
    await reg?.close();
    dir[Symbol.dispose]();
  });

  /** Targets of the next version naming the tiny package as stored, signed with `keyFile`. */
  const nextTargets = async (o: { keyFile?: string; version?: number; sha256?: string; expiresMs?: number } = {}) => {
    const cur = await reg.tuf!.targets();
    const files = await reg.store.files('tiny', '1.0.0');
    const t = new Targets({
      version: o.version ?? cur.signed.version + 1,
      specVersion: '1.0.31',
      expires: tufDate(Date.now() + (o.expiresMs ?? 86_400_000)),
      targets: Object.fromEntries(files.map((f) => [`tiny/1.0.0/${f.path}`, new TargetFile({ path: `tiny/1.0.0/${f.path}`, length: f.bytes, hashes: { sha256: o.sha256 ?? f.sha256 } })])),
    });
    const md = new Metadata(t);
    const k = readKeyFile(o.keyFile ?? join(keys, 'targets.key.json'));
    md.sign((d) => k.sign(d));
    return JSON.stringify(md.toJSON());
  };

  test('an upload without the targets threshold is ERR_TUF_SIGNATURE; a wrong version ERR_TUF_VERSION; files it lacks or an expired one ERR_TUF_INVALID', async () => {
    assert.equal(await apiCode(admin.putTufMetadata('targets', await nextTargets({ keyFile: join(keys, 'snapshot.key.json') }))), 'ERR_TUF_SIGNATURE');
    assert.equal(await apiCode(admin.putTufMetadata('targets', await nextTargets({ version: 7 }))), 'ERR_TUF_VERSION');
    assert.equal(await apiCode(admin.putTufMetadata('targets', await nextTargets({ sha256: 'ab'.repeat(32) }))), 'ERR_TUF_INVALID');
    assert.equal(await apiCode(admin.putTufMetadata('targets', await nextTargets({ expiresMs: -60_000 }))), 'ERR_TUF_INVALID');
    assert.equal(await apiCode(admin.putTufMetadata('targets', '{"signed": 1}')), 'ERR_TUF_INVALID');
    const before = (await reg.tuf!.targets()).signed.version;
    assert.equal((await admin.putTufMetadata('targets', await nextTargets())).version, before + 1);
    // the snapshot and timestamp now name it
    const ts = Metadata.fromJSON(MetadataKind.Timestamp, JSON.parse(await admin.tufMetadata('timestamp.json')) as Json);
    const snap = Metadata.fromJSON(MetadataKind.Snapshot, JSON.parse(await admin.tufMetadata(`${ts.signed.snapshotMeta.version}.snapshot.json`)) as Json);
    assert.equal(snap.signed.meta['targets.json']?.version, before + 1);
  });

  test('uploads need the admin token; metadata reads need none; target files need a token that reads the package', async () => {
    const anon = await fetch(`${reg.url}/v1/tuf/targets`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(anon.status, 401);
    assert.equal(((await anon.json()) as { error: { code: string } }).error.code, 'ERR_AUTH_MISSING');
    assert.equal((await fetch(`${reg.url}/v1/tuf/metadata/1.root.json`)).status, 200);
    assert.equal((await fetch(`${reg.url}/v1/tuf/metadata/0.root.json`)).status, 404);
    // the target files are the package's own bytes: no token, no weights
    const file = (await admin.version('tiny', '1.0.0')).files.find((f) => f.path === 'weights.bin')!;
    const target = `${reg.url}/v1/tuf/targets/tiny/1.0.0/${file.sha256}.weights.bin`;
    const anonFile = await fetch(target);
    assert.equal(anonFile.status, 401);
    assert.equal(((await anonFile.json()) as { error: { code: string } }).error.code, 'ERR_AUTH_MISSING');
    assert.equal((await fetch(target, { headers: { authorization: 'Bearer not-a-token-of-this-registry' } })).status, 401);
    const ok = await fetch(target, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(ok.status, 200);
    assert.equal(createHash('sha256').update(new Uint8Array(await ok.arrayBuffer())).digest('hex'), file.sha256);
    // a device reads the targets of its own supernet only
    const enroll = async (supernet: string) =>
      (await (await fetch(`${reg.url}/v1/devices/enroll`, { method: 'POST', headers: { authorization: `Bearer ${ENROLL}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: `d-${supernet}`, supernet }) })).json()) as { token: string };
    assert.equal((await fetch(target, { headers: { authorization: `Bearer ${(await enroll('tiny')).token}` } })).status, 200);
    const other = await fetch(target, { headers: { authorization: `Bearer ${(await enroll('other-supernet')).token}` } });
    assert.equal(other.status, 403);
    assert.equal(((await other.json()) as { error: { code: string } }).error.code, 'ERR_FORBIDDEN');
    assert.equal((await fetch(`${reg.url}/v1/tuf/targets/tiny/1.0.0/${'0'.repeat(64)}.weights.bin`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 404);
  });

  test('a root not signed by the current root key is ERR_TUF_SIGNATURE; a replayed one ERR_TUF_VERSION', async () => {
    const other = join(dir.path, 'other-keys');
    initKeyDir(other);
    const forged = JSON.parse(readFileSync(join(other, '1.root.json'), 'utf8')) as { signed: { version: number } };
    forged.signed.version = 2;
    assert.equal(await apiCode(admin.putTufMetadata('root', JSON.stringify(forged))), 'ERR_TUF_SIGNATURE');
    assert.equal(await apiCode(admin.putTufMetadata('root', readFileSync(join(keys, '1.root.json'), 'utf8'))), 'ERR_TUF_VERSION');
    const rotated = rotateRoot(keys);
    assert.equal((await admin.putTufMetadata('root', readFileSync(rotated.rootFile, 'utf8'))).version, 2);
  });

  test('the agent follows the rotation, and a damaged local root is restored from its own copy', async () => {
    const agentDir = join(dir.path, 'agent-rotation');
    const tuf = TufClient.open({ registry: reg.url, dataDir: agentDir, logger: pino({ level: 'silent' }), trustRoot: join(keys, '1.root.json') });
    const targets = await tuf.refresh();
    assert.equal(tuf.rootVersion(), 2);
    assert.ok(Object.keys(targets).some((p) => p.startsWith('tiny/1.0.0/')));
    writeFileSync(join(agentDir, 'tuf', 'metadata', 'root.json'), '{"torn');
    await tuf.refresh();
    assert.equal(JSON.parse(readFileSync(join(agentDir, 'tuf', 'metadata', 'root.json'), 'utf8')).signed.version, 2);
    // an older --trust-root given again later does not replace the newer installed one
    TufClient.open({ registry: reg.url, dataDir: agentDir, logger: pino({ level: 'silent' }), trustRoot: join(keys, '1.root.json') });
    assert.equal(tuf.rootVersion(), 2);
  });

  test('the registry re-signs the timestamp before it expires', async () => {
    const k = join(dir.path, 'short-keys');
    initKeyDir(k);
    const short = await startRegistry({ port: 0, dataDir: join(dir.path, 'short'), adminToken: ADMIN, tuf: { keyDir: k, lifetimes: { timestampS: 6 }, refreshMs: 100 } });
    try {
      const read = async () => (JSON.parse(await new AdminClient(short.url, ADMIN).tufMetadata('timestamp.json')) as { signed: { version: number; expires: string } }).signed;
      const first = await read();
      const seen = [first.version];
      for (let i = 0; i < 80 && seen.length < 3; i++) {
        await new Promise((r) => setTimeout(r, 250));
        const t = await read();
        assert.ok(Date.parse(t.expires) > Date.now(), `timestamp ${t.version} is unexpired when served`);
        if (t.version !== seen[seen.length - 1]) seen.push(t.version);
      }
      assert.ok(seen.length >= 3, `re-signed twice within 20 s: versions ${seen.join(', ')}`);
      assert.deepEqual([...seen].sort((x, y) => x - y), seen, 'versions only go up');
    } finally {
      await short.close();
    }
  });

  test('a registry without --keys answers ERR_TUF_DISABLED; one whose keys the root does not name refuses to start (ERR_TUF_KEY)', async () => {
    const plain = await startRegistry({ port: 0, dataDir: join(dir.path, 'plain'), adminToken: ADMIN });
    try {
      const r = await fetch(`${plain.url}/v1/tuf/metadata/timestamp.json`);
      assert.equal(r.status, 404);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'ERR_TUF_DISABLED');
    } finally {
      await plain.close();
    }
    const mixed = join(dir.path, 'mixed');
    cpSync(keys, mixed, { recursive: true });
    cpSync(join(dir.path, 'other-keys', 'timestamp.key.json'), join(mixed, 'timestamp.key.json'));
    await assert.rejects(startRegistry({ port: 0, dataDir: join(dir.path, 'mixed-reg'), adminToken: ADMIN, tuf: { keyDir: mixed } }), (e: { code?: string }) => e.code === 'ERR_TUF_KEY');
  });

  test('the publisher refuses to sign on top of targets its key did not sign (ERR_METADATA_SIGNATURE) and a key of another role (ERR_TUF_KEY)', async () => {
    const online = join(dir.path, 'online-keys');
    initKeyDir(online);
    const onlineReg = await startRegistry({ port: 0, dataDir: join(dir.path, 'online-reg'), adminToken: ADMIN, tuf: { keyDir: online, onlineTargets: true } });
    try {
      const a = new AdminClient(onlineReg.url, ADMIN);
      await a.publishDir(TINY); // signed by the registry's targets key
      await assert.rejects(signPackageTargets(a, TINY, [join(keys, 'targets.key.json')]), (e: { code?: string }) => e.code === 'ERR_METADATA_SIGNATURE');
      await assert.rejects(signPackageTargets(a, TINY, [join(online, 'snapshot.key.json')]), (e: { code?: string }) => e.code === 'ERR_TUF_KEY');
    } finally {
      await onlineReg.close();
    }
  });

  test('key files and roots that do not verify: ERR_TUF_KEY, ERR_TRUST_ROOT_INVALID; CLI bad input: ERR_USAGE', async () => {
    const bad = join(dir.path, 'bad.key.json');
    const k = JSON.parse(readFileSync(join(keys, 'targets.key.json'), 'utf8')) as { keyid: string };
    k.keyid = 'f'.repeat(64);
    writeFileSync(bad, JSON.stringify(k));
    assert.throws(() => readKeyFile(bad), (e: { code?: string }) => e.code === 'ERR_TUF_KEY');
    const root = JSON.parse(readFileSync(join(keys, '1.root.json'), 'utf8')) as { signed: { expires: string } };
    root.signed.expires = '2099-01-01T00:00:00Z';
    const tampered = join(dir.path, 'tampered-root.json');
    writeFileSync(tampered, JSON.stringify(root));
    assert.throws(() => TufClient.open({ registry: reg.url, dataDir: join(dir.path, 'agent'), logger: pino({ level: 'silent' }), trustRoot: tampered }), (e: { code?: string }) => e.code === 'ERR_TRUST_ROOT_INVALID');
    const again = cli(['keys', 'init', '--out', keys]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /\[ERR_USAGE\]$/m);
    const thr = cli(['keys', 'init', '--out', join(dir.path, 'k2'), '--threshold', 'targets=3/2']);
    assert.equal(thr.status, 2);
    assert.match(thr.stderr, /\[ERR_USAGE\]$/m);
    const pub = await cliAsync(['publish', TINY, '--registry', reg.url, '--token', ADMIN, '--sign-targets', bad]);
    assert.equal(pub.status, 1);
    assert.match(pub.stderr, /\[ERR_TUF_KEY\]$/m);
    const noKeys = cli(['registry', '--online-targets', '--port', '0', '--data', join(dir.path, 'x')]);
    assert.equal(noKeys.status, 2);
    assert.match(noKeys.stderr, /\[ERR_USAGE\]$/m);
  });
});
