/**
 * A hostile registry on 127.0.0.1 (a real node:http server) against the real
 * RegistryClient.ensurePackage: every finding of the trust review, each refused with its stable code,
 * and nothing written outside the agent's data directory. Then the honest registry's side: it refuses
 * to publish the same names, versions and paths.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Packr } from 'msgpackr';
import { RegistryClient } from '../agent/registry-client.js';
import { AdminClient, packPackageDir, RegistryApiError } from '../registry/admin-client.js';
import { startRegistry, type RegistryHandle } from '../registry/server.js';
import { tempDir } from './helpers.js';
import { makeQueryablePackage } from './registry-fixtures.js';

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const MANIFEST = Buffer.from('{"hostile":true}');
const packr = new Packr({ useRecords: false, moreTypes: false });

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A registry that answers whatever the current test scripts. */
class HostileRegistry {
  server!: Server;
  url = '';
  route: Handler = (_q, r) => r.writeHead(404).end();
  requests: string[] = [];
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.requests.push(`${req.method} ${req.url}`);
      if (req.url === '/v1/devices/enroll') return void res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ deviceId: 'dev_x', token: 't' }));
      this.route(req, res);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
  /** Serves `info` as the version metadata and `files[path]` as the file bodies. */
  serve(info: Record<string, unknown>, files: Record<string, Buffer | ((res: ServerResponse) => void)>): void {
    this.route = (req, res) => {
      const u = decodeURIComponent(req.url ?? '');
      if (/^\/v1\/supernets\/[^/]+\/versions\/[^/]+$/.test(req.url ?? '')) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(info));
      const m = /\/files\/(.+)$/.exec(u);
      const body = m ? files[m[1]!] : undefined;
      if (typeof body === 'function') return body(res);
      if (body) return void res.writeHead(200, { 'content-length': body.length }).end(body);
      res.writeHead(404).end();
    };
  }
}

function versionInfo(version: string, files: { path: string; bytes: number; sha256: string }[]): Record<string, unknown> {
  return {
    name: 'victim-net',
    version,
    manifestSha256: sha(MANIFEST),
    publishedAt: new Date().toISOString(),
    manifest: {},
    files: [{ path: 'manifest.json', role: 'manifest', bytes: MANIFEST.length, sha256: sha(MANIFEST) }, ...files.map((f) => ({ role: 'weights', ...f }))].map((f) => ({
      ...f,
      url: `/v1/supernets/victim-net/versions/${encodeURIComponent(version)}/files/${encodeURIComponent(f.path)}`,
    })),
  };
}

/** Every file under `root` (relative), following no links. */
function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(root, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return String((err as { code?: string }).code);
  }
  assert.fail('expected a refusal');
}

describe('hostile registry against RegistryClient.ensurePackage', () => {
  const tmp = tempDir('nestswap-hostile-');
  const host = new HostileRegistry();
  // the agent's data directory is tmp/agent/data; siblings and parents are what must stay untouched
  const dataDir = join(tmp.path, 'agent', 'data');
  const victim = join(tmp.path, 'victim');
  let client: RegistryClient;
  let outsideBefore: string[];

  before(async () => {
    await host.start();
    mkdirSync(victim, { recursive: true });
    writeFileSync(join(victim, 'precious.txt'), 'keep me');
    client = new RegistryClient({ url: host.url, dataDir, limits: { downloadTimeoutMs: 400, minBytesPerSecond: 1024 * 1024, metadataTimeoutMs: 400, metadataMaxBytes: 64 * 1024 } });
    await client.enroll('e', { name: 'd' });
    outsideBefore = listTree(tmp.path).filter((p) => !p.startsWith(join('agent', 'data')));
  });
  after(async () => {
    await client.close();
    await host.close();
    tmp[Symbol.dispose]();
  });

  const outsideNow = () => listTree(tmp.path).filter((p) => !p.startsWith(join('agent', 'data')));
  const assertNothingOutside = () => {
    assert.deepEqual(outsideNow(), outsideBefore);
    assert.equal(readFileSync(join(victim, 'precious.txt'), 'utf8'), 'keep me');
  };

  test('files[].path = "../../../../escape.txt" is refused: ERR_PATH_INVALID, nothing written', async () => {
    const evil = Buffer.from('pwned');
    host.serve(versionInfo('1.0.0', [{ path: '../../../../escape.txt', bytes: evil.length, sha256: sha(evil) }]), { 'manifest.json': MANIFEST, '../../../../escape.txt': evil });
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_PATH_INVALID');
    assertNothingOutside();
    assert.ok(!listTree(dataDir).some((p) => p.endsWith('escape.txt')));
  });

  test('absolute and dot paths are refused the same way', async () => {
    for (const path of ['/tmp/abs.txt', '.', '..', 'a/../../b', 'a\\..\\b', '.hidden', 'ok/./x', '']) {
      host.serve(versionInfo('1.0.0', [{ path, bytes: 1, sha256: sha('x') }]), { 'manifest.json': MANIFEST });
      assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_PATH_INVALID', path);
    }
    assertNothingOutside();
  });

  test('version = "../../../victim" is refused: ERR_VERSION_INVALID, the sibling directory survives', async () => {
    host.serve(versionInfo('../../../victim', []), { 'manifest.json': MANIFEST });
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_VERSION_INVALID');
    for (const v of ['..', '.', '/abs', 'a/b', 'current.json', 'served.json', 'latest']) {
      host.serve(versionInfo(v, []), { 'manifest.json': MANIFEST });
      assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_VERSION_INVALID', v);
    }
    assertNothingOutside();
    assert.ok(existsSync(join(victim, 'precious.txt')));
  });

  test('a name or version asked for by the caller is checked too', async () => {
    assert.equal(await codeOf(client.ensurePackage('../victim')), 'ERR_NAME_INVALID');
    assert.equal(await codeOf(client.ensurePackage('victim-net', '../../x')), 'ERR_VERSION_INVALID');
    // the registry answering for another package is refused
    host.serve({ ...versionInfo('1.0.0', []), name: 'other' }, { 'manifest.json': MANIFEST });
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_METADATA_INVALID');
  });

  test('a 5-byte file served as 20 MiB: refused with at most 5 bytes written (declared length)', async () => {
    const big = Buffer.alloc(20 * 1024 * 1024, 7);
    host.serve(versionInfo('2.0.0', [{ path: 'w.bin', bytes: 5, sha256: sha('12345') }]), { 'manifest.json': MANIFEST, 'w.bin': big });
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_PACKAGE_SIZE');
    const sizes = listTree(dataDir).map((p) => statSync(join(dataDir, p))).filter((s) => s.isFile()).map((s) => s.size);
    assert.ok(Math.max(...sizes) < 64 * 1024, `largest file in the data dir: ${Math.max(...sizes)} bytes`);
    assertNothingOutside();
  });

  test('a 5-byte file streamed as 20 MiB without content-length: refused as soon as byte 6 arrives', async () => {
    const chunk = Buffer.alloc(64 * 1024, 9);
    let sent = 0;
    host.serve(versionInfo('2.0.1', [{ path: 'w.bin', bytes: 5, sha256: sha('12345') }]), {
      'manifest.json': MANIFEST,
      'w.bin': (res) => {
        res.writeHead(200, { 'transfer-encoding': 'chunked' });
        const push = () => {
          while (sent < 20 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
          if (sent >= 20 * 1024 * 1024) res.end();
          else res.once('drain', push);
        };
        res.on('close', () => res.removeAllListeners('drain'));
        push();
      },
    });
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_PACKAGE_SIZE');
    const files = listTree(dataDir).filter((p) => statSync(join(dataDir, p)).isFile());
    for (const f of files) assert.ok(statSync(join(dataDir, f)).size <= 64 * 1024, `${f} is ${statSync(join(dataDir, f)).size} bytes`);
    assert.ok(!files.some((f) => f.endsWith('w.bin.part')), 'the oversized part is removed');
    assertNothingOutside();
  });

  test('a download that never finishes hits its deadline: ERR_DOWNLOAD_TIMEOUT', async () => {
    host.serve(versionInfo('3.0.0', [{ path: 'slow.bin', bytes: 100, sha256: sha('x') }]), {
      'manifest.json': MANIFEST,
      'slow.bin': (res) => {
        res.writeHead(200, { 'content-length': 100 });
        res.write(Buffer.alloc(10)); // then nothing, forever
      },
    });
    const t0 = Date.now();
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_DOWNLOAD_TIMEOUT');
    assert.ok(Date.now() - t0 < 30_000);
  });

  test('metadata that never answers, or is too large, is refused', async () => {
    host.route = () => undefined; // accepts the request, never answers
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_DOWNLOAD_TIMEOUT');
    const huge = { ...versionInfo('4.0.0', []), manifest: { pad: 'x'.repeat(200 * 1024) } };
    host.serve(huge, {});
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_METADATA_TOO_LARGE');
    host.route = (_q, r) => void r.writeHead(200, { 'content-type': 'application/json' }).end('{"name": 3}');
    assert.equal(await codeOf(client.ensurePackage('victim-net')), 'ERR_METADATA_INVALID');
  });

  test('a link planted in the cache cannot redirect the final-directory replacement', async () => {
    mkdirSync(join(dataDir, 'packages'), { recursive: true });
    symlinkSync(victim, join(dataDir, 'packages', 'linked-net'));
    host.serve({ ...versionInfo('1.0.0', []), name: 'linked-net' }, { 'manifest.json': MANIFEST });
    assert.equal(await codeOf(client.ensurePackage('linked-net')), 'ERR_PATH_ESCAPE');
    assertNothingOutside();
  });

  test('an honest answer still installs, inside the data directory', async () => {
    const w = Buffer.from('weights!');
    host.serve(versionInfo('5.0.0', [{ path: 'w.bin', bytes: w.length, sha256: sha(w) }]), { 'manifest.json': MANIFEST, 'w.bin': w });
    const got = await client.ensurePackage('victim-net');
    assert.equal(got.version, '5.0.0');
    assert.equal(got.dir, join(dataDir, 'packages', 'victim-net', '5.0.0'));
    assert.equal(readFileSync(join(got.dir, 'w.bin'), 'utf8'), 'weights!');
    assertNothingOutside();
  });
});

describe('the registry refuses hostile names on publish', () => {
  const tmp = tempDir('nestswap-hostile-pub-');
  let reg: RegistryHandle;
  let admin: AdminClient;
  let good: Record<string, Uint8Array>;
  before(async () => {
    const pkgDir = await makeQueryablePackage(join(tmp.path, 'pkg'));
    good = (packr.unpack(await packPackageDir(pkgDir)) as { files: Record<string, Uint8Array> }).files;
    reg = await startRegistry({ port: 0, dataDir: join(tmp.path, 'data'), adminToken: 'admin-token-0123456789abcdef', enrollToken: 'enroll-token-0123456789abcdef' });
    admin = new AdminClient(reg.url, 'admin-token-0123456789abcdef');
  });
  after(async () => {
    await reg.close();
    tmp[Symbol.dispose]();
  });
  const publishWith = async (edit: (m: Record<string, unknown>) => void, files: Record<string, Uint8Array> = good) => {
    const m = JSON.parse(Buffer.from(files['manifest.json']!).toString('utf8')) as Record<string, unknown>;
    edit(m);
    try {
      await admin.publishBytes(packr.pack({ files: { ...files, 'manifest.json': Buffer.from(JSON.stringify(m)) } }));
    } catch (err) {
      if (err instanceof RegistryApiError) return `${err.status} ${err.code}`;
      throw err;
    }
    return 'accepted';
  };

  test('a version such as "../../../victim" is refused: 400 ERR_VERSION_INVALID', async () => {
    for (const v of ['../../../victim', '..', '', 'a/b', ' 1.0', 'x'.repeat(200)]) assert.equal(await publishWith((m) => (m.version = v)), '400 ERR_VERSION_INVALID', v);
  });

  test('a reserved version is refused at publish: latest (the alias for the newest), current.json and served.json (an agent cache\'s pointers)', async () => {
    for (const v of ['latest', 'current.json', 'served.json']) assert.equal(await publishWith((m) => (m.version = v)), '400 ERR_VERSION_INVALID', v);
  });

  test('a manifest file path or a body key with ".." is refused: 400 ERR_PATH_INVALID', async () => {
    assert.equal(await publishWith((m) => ((m.files as { path: string }[])[0]!.path = '../escape.bin')), '400 ERR_PATH_INVALID');
    assert.equal(await publishWith(() => undefined, { ...good, '../x': new Uint8Array(1) }), '400 ERR_PATH_INVALID');
    assert.equal(await publishWith(() => undefined, { ...good, '.': new Uint8Array(1) }), '400 ERR_PATH_INVALID');
  });

  test('a name that is no path segment is refused: 400 ERR_NAME_INVALID; nothing was stored', async () => {
    assert.equal(await publishWith((m) => (m.name = '../victim')), '400 ERR_NAME_INVALID');
    assert.deepEqual((await admin.supernets()).supernets, []);
    assert.equal(await publishWith(() => undefined), 'accepted');
  });
});
