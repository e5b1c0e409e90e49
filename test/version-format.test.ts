/**
 * The version a user sees (`nestswap --version`, the agent's GET /v1/status, the registry's
 * GET /v1/health) is package.json's, and a package whose manifest format this nestswap does not know
 * is refused with ERR_FORMAT_UNSUPPORTED and a message that says to upgrade.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { isNestswapError } from '../runtime/errors.js';
import { startDaemon } from '../agent/daemon.js';
import { RegistryClient } from '../agent/registry-client.js';
import { startRegistry } from '../registry/server.js';
import { repoPath, tempDir, TINY } from './helpers.js';

const VERSION = (JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string }).version;
const CLI = repoPath('bin', 'nestswap.js');
const ADMIN = 'nsa_version_format_test_0001';
const ENROLL = 'nse_version_format_test_0001';

function packageWithFormat(dir: string, format: unknown): string {
  cpSync(TINY, dir, { recursive: true });
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  m.format = format;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m, null, 1));
  return dir;
}

test('nestswap --version prints package.json version', () => {
  const r = spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, `${VERSION}\n`);
});

test("the agent's GET /v1/status and the registry's GET /v1/health carry the version", async () => {
  using dir = tempDir();
  const d = await startDaemon({ pkg: await loadPackageDir(TINY), budget: { latencyMs: 10_000 }, threads: 1, ladderSize: 2, calibration: { images: 64 }, listen: { port: 0 } });
  try {
    const s = (await (await fetch(`${d.url}/v1/status`)).json()) as { version: string; supernet: string };
    assert.equal(s.version, VERSION);
    assert.equal(s.supernet, 'tiny');
  } finally {
    await d.close();
  }
  const reg = await startRegistry({ port: 0, dataDir: join(dir.path, 'reg'), adminToken: ADMIN, enrollToken: ENROLL });
  try {
    assert.deepEqual(await (await fetch(`${reg.url}/v1/health`)).json(), { ok: true, version: VERSION });
  } finally {
    await reg.close();
  }
});

test('a package in a newer or unknown manifest format is refused: ERR_FORMAT_UNSUPPORTED, "upgrade nestswap"', async () => {
  using dir = tempDir();
  for (const [i, format] of ['nestswap.package/2', 'other.package/1', 7].entries()) {
    const p = packageWithFormat(join(dir.path, `p${i}`), format);
    await assert.rejects(loadPackageDir(p), (e: unknown) => {
      assert.ok(isNestswapError(e, 'ERR_FORMAT_UNSUPPORTED'), String(e));
      assert.match(e.message, /upgrade nestswap/);
      assert.match(e.message, /nestswap\.package\/1/);
      return true;
    });
  }
  // the current format still loads
  assert.equal((await loadPackageDir(packageWithFormat(join(dir.path, 'ok'), 'nestswap.package/1'))).name, 'tiny');
});

test('nestswap agent on a newer package: one line, the code, exit 1', () => {
  using dir = tempDir();
  const p = packageWithFormat(join(dir.path, 'pkg'), 'nestswap.package/2');
  const r = spawnSync(process.execPath, [CLI, 'agent', '--supernet', p, '--latency-ms', '5', '--port', '0', '--data', join(dir.path, 'data')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^nestswap: .*upgrade nestswap.*\[ERR_FORMAT_UNSUPPORTED\]$/);
});

test('the registry refuses to publish a package in a format it does not know (400 ERR_FORMAT_UNSUPPORTED)', async () => {
  using dir = tempDir();
  const p = packageWithFormat(join(dir.path, 'pkg'), 'nestswap.package/2');
  const files: Record<string, Uint8Array> = {};
  for (const f of readdirSync(p)) files[f] = readFileSync(join(p, f));
  const reg = await startRegistry({ port: 0, dataDir: join(dir.path, 'reg'), adminToken: ADMIN, enrollToken: ENROLL });
  try {
    const res = await fetch(`${reg.url}/v1/supernets`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/msgpack' }, body: new Uint8Array(new Packr({ useRecords: false }).pack({ files })) });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'ERR_FORMAT_UNSUPPORTED');
    assert.match(body.error.message, /upgrade/);
  } finally {
    await reg.close();
  }
});

test('an agent refuses a newer package from a (newer) registry before downloading any file', async () => {
  using dir = tempDir();
  const manifest = JSON.parse(readFileSync(join(TINY, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  manifest.format = 'nestswap.package/2';
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestSha256 = createHash('sha256').update(manifestBytes).digest('hex');
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url?.startsWith('/v1/supernets/tiny/versions/')) {
      res.setHeader('content-type', 'application/json');
      const files = [
        { path: 'manifest.json', role: 'manifest', bytes: manifestBytes.length, sha256: manifestSha256, url: '/v1/supernets/tiny/versions/2.0.0/files/manifest.json' },
        { path: 'weights.bin', role: 'weights', bytes: 4, sha256: 'b'.repeat(64), url: '/v1/supernets/tiny/versions/2.0.0/files/weights.bin' },
      ];
      res.end(JSON.stringify({ name: 'tiny', version: '2.0.0', manifestSha256, publishedAt: new Date().toISOString(), manifest, files }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const addr = server.address() as { port: number };
    const url = `http://127.0.0.1:${addr.port}`;
    // an agent enrolled earlier (its saved identity)
    writeFileSync(join(dir.path, 'identity.json'), JSON.stringify({ registry: url, deviceId: 'dev_test', token: 'nsd_test' }));
    const client = new RegistryClient({ url, dataDir: dir.path });
    await assert.rejects(client.ensurePackage('tiny'), (e: unknown) => isNestswapError(e, 'ERR_FORMAT_UNSUPPORTED') && /upgrade nestswap/.test(e.message));
    assert.deepEqual(requests, ['/v1/supernets/tiny/versions/latest']);
  } finally {
    server.close();
  }
});
