/**
 * Fuzzing every input boundary with fast-check. Property everywhere: bad input is refused with a
 * stable code (a NestswapError `ERR_…`, or an HTTP 4xx whose body names one), the process keeps
 * serving, and nothing is stored. Bounded for CI (NESTSWAP_FUZZ_RUNS cases per property, default 40);
 * `npm run fuzz` runs the same properties longer and prints how many cases ran.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { startDaemon, type DaemonHandle } from '../agent/daemon.js';
import { startRegistry, type RegistryHandle } from '../registry/server.js';
import { parseLatencyTable } from '../runtime/latency-table.js';
import { checkRelativePath, checkSegment, SEGMENT_RE } from '../runtime/names.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { resolveInside } from '../runtime/node/safe-path.js';
import { loadOnnxAccuracyPredictor } from '../runtime/node/search-inputs.js';
import { parseManifest, SupernetPackage, type Manifest } from '../runtime/package.js';
import { parseProfileText, serializeProfile } from '../runtime/profile.js';
import { repoPath, TINY } from './helpers.js';
import { tinyProfile } from './registry-fixtures.js';

const RUNS = Math.max(1, Number(process.env.NESTSWAP_FUZZ_RUNS) || 40);
const packr = new Packr({ useRecords: false, moreTypes: false });
const ADMIN = 'fuzz-admin-token-0123456789';
const ENROLL = 'fuzz-enroll-token-0123456789';
const CODE = /^ERR_[A-Z_]+$/;
const counts: Record<string, number> = {};
const findings: string[] = [];

/** A thrown value must be a stable-coded error, never a TypeError, RangeError or a bare Error. */
function assertCoded(err: unknown, where: string): void {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !CODE.test(code)) {
    findings.push(`${where}: ${(err as Error)?.name}: ${(err as Error)?.message?.slice(0, 200)}`);
    assert.fail(`${where}: uncoded ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
}

async function check<T>(name: string, arb: fc.Arbitrary<T>, body: (v: T) => Promise<void> | void, runs = RUNS): Promise<void> {
  await fc.assert(
    fc.asyncProperty(arb, async (v) => {
      counts[name] = (counts[name] ?? 0) + 1;
      await body(v);
    }),
    { numRuns: runs, ...(process.env.NESTSWAP_FUZZ_SEED ? { seed: Number(process.env.NESTSWAP_FUZZ_SEED) } : {}) },
  );
}

/** Mutations of a JSON document: replace a value somewhere with an arbitrary one, or drop a key. */
function mutated(doc: unknown): fc.Arbitrary<unknown> {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, p: (string | number)[]) => {
    paths.push(p);
    if (paths.length > 4000) return;
    if (Array.isArray(v)) v.slice(0, 8).forEach((x, i) => walk(x, [...p, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...p, k]);
  };
  walk(doc, []);
  return fc.tuple(fc.constantFrom(...paths), fc.oneof(fc.anything(), fc.constant(undefined), fc.string(), fc.double(), fc.integer({ min: -5, max: 300 }))).map(([p, val]) => {
    const copy = structuredClone(doc) as Record<string | number, unknown>;
    if (p.length === 0) return val;
    let cur = copy as Record<string | number, unknown>;
    for (const k of p.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
    if (val === undefined) delete cur[p[p.length - 1]!];
    else cur[p[p.length - 1]!] = val;
    return copy;
  });
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('fuzz: files and documents', () => {
  let manifest: Manifest;
  const files = new Map<string, Uint8Array>();
  before(() => {
    manifest = JSON.parse(readFileSync(join(TINY, 'manifest.json'), 'utf8')) as Manifest;
    for (const f of manifest.files) files.set(f.path, readFileSync(join(TINY, f.path)));
  });

  test('names, versions and paths: accepted exactly when every segment matches, and then resolve inside', async () => {
    await check('names', fc.oneof(fc.string(), fc.constantFrom('..', '.', '/etc', 'a/../b', 'a//b', 'ok', 'a/b', 'C:x', 'a\\b')), (s) => {
      const seg = checkSegment(s);
      assert.equal(seg.ok, SEGMENT_RE.test(s) && s.length <= 128 && s !== '.' && s !== '..');
      const rel = checkRelativePath(s);
      if (rel.ok) assert.ok(resolveInside('/tmp/nestswap-fuzz-root', s).startsWith('/tmp/nestswap-fuzz-root/'));
      else assert.throws(() => resolveInside('/tmp/nestswap-fuzz-root', s), (e: unknown) => ((e as { code: string }).code === 'ERR_PATH_INVALID'));
    });
  });

  test('package manifests: valid, or refused with a code', async () => {
    await check('manifest', fc.oneof(mutated(manifest), fc.anything()), (m) => {
      try {
        parseManifest(m, 'fuzz');
      } catch (err) {
        assertCoded(err, 'parseManifest');
      }
    });
  });

  test('weight indexes and package files: a mutated index (with matching digests) never loads halfway', async () => {
    const idx = manifest.files.find((f) => f.role === 'weights-index')!;
    const indexDoc = JSON.parse(Buffer.from(files.get(idx.path)!).toString('utf8')) as unknown;
    await check('weights-index', fc.oneof(mutated(indexDoc).map((d) => Buffer.from(JSON.stringify(d) ?? 'null')), fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b))), async (bytes) => {
      const m = structuredClone(manifest);
      const e = m.files.find((f) => f.path === idx.path)!;
      e.bytes = bytes.length;
      e.sha256 = sha(bytes);
      const mBytes = Buffer.from(JSON.stringify(m));
      try {
        await SupernetPackage.load({ location: 'fuzz', read: async (p) => (p === 'manifest.json' ? mBytes : p === idx.path ? bytes : files.get(p)!) });
      } catch (err) {
        assertCoded(err, 'SupernetPackage.load(index)');
      }
    });
  });

  test('profiles: valid, or refused with a code', async () => {
    const text = serializeProfile(await tinyProfile());
    const doc = JSON.parse(text) as unknown;
    await check('profile', fc.oneof(mutated(doc).map((d) => JSON.stringify(d) ?? ''), fc.string(), fc.constant(text.slice(0, text.length >> 1))), (t) => {
      try {
        parseProfileText(t, 'fuzz');
      } catch (err) {
        assertCoded(err, 'parseProfileText');
      }
    });
  });

  test('subnet configs: valid, or refused with ERR_CONFIG_INVALID', async () => {
    const pkg = await loadPackageDir(TINY);
    const good = pkg.space.max();
    await check('subnet-config', fc.oneof(mutated(good), fc.anything()), (c) => {
      try {
        pkg.space.parse(c, 'fuzz');
      } catch (err) {
        assertCoded(err, 'space.parse');
      }
    });
  });

  test('latency tables (OFA YAML): valid, or refused with ERR_LATENCY_TABLE_INVALID', async () => {
    const dir = repoPath('test', 'fixtures', 'ofa-reference', 'note10');
    const name = readdirSync(dir).find((f) => f.endsWith('.yaml'))!;
    const text = readFileSync(join(dir, name), 'utf8').split('\n').slice(0, 40).join('\n');
    const cut = fc.tuple(fc.nat({ max: text.length }), fc.string({ maxLength: 20 })).map(([i, s]) => text.slice(0, i) + s + text.slice(i + s.length));
    await check('latency-table', fc.oneof(cut, fc.string(), fc.constant('a: &x 1\nb: *x\n')), (t) => {
      try {
        parseLatencyTable(t, 224, 'fuzz');
      } catch (err) {
        assertCoded(err, 'parseLatencyTable');
      }
    });
  });

  test('accuracy-predictor files: random or truncated bytes are refused with ERR_PREDICTOR_INVALID', async () => {
    const pkg = await loadPackageDir(TINY);
    const real = readFileSync(repoPath('test', 'fixtures', 'ofa-reference', 'ofa_mbv3_w1.2_acc_predictor.onnx'));
    const arb = fc.oneof(fc.uint8Array({ maxLength: 256 }), fc.nat({ max: real.length - 1 }).map((n) => new Uint8Array(real.subarray(0, n))));
    await check('predictor', arb, async (bytes) => {
      try {
        await loadOnnxAccuracyPredictor(bytes, pkg.space);
      } catch (err) {
        assertCoded(err, 'loadOnnxAccuracyPredictor');
      }
    }, Math.max(1, Math.ceil(RUNS / 4)));
  });
});

describe('fuzz: the registry over HTTP and WebSocket', () => {
  let reg: RegistryHandle;
  const url = () => reg.url;
  before(async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    reg = await startRegistry({ port: 0, dataDir: mkdtempSync(join(tmpdir(), 'nestswap-fuzz-reg-')), adminToken: ADMIN, enrollToken: ENROLL, limits: { publishBytes: 1024 * 1024 } });
  });
  after(() => reg.close());

  const expect4xx = async (res: Response, where: string) => {
    const text = await res.text();
    if (res.status >= 500) findings.push(`${where}: HTTP ${res.status} ${text.slice(0, 200)}`);
    assert.ok(res.status >= 400 && res.status < 500, `${where}: HTTP ${res.status} ${text.slice(0, 300)}`);
    const code = (JSON.parse(text) as { error: { code: string } }).error.code;
    assert.match(code, CODE);
  };
  const stats = async () => (await (await fetch(`${url()}/v1/stats`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { supernets: number; versions: number; blobs: number; devices: number; telemetryEvents: number };

  test('publish bodies (msgpack): refused with a code, nothing stored', async () => {
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 2048 }),
      fc.anything().map((v) => packr.pack(v)),
      fc.dictionary(fc.string(), fc.uint8Array({ maxLength: 64 })).map((files) => packr.pack({ files })),
      fc.record({ name: fc.string(), version: fc.string() }).map((m) => packr.pack({ files: { 'manifest.json': Buffer.from(JSON.stringify({ format: 'nestswap.package/1', ...m })) } })),
    );
    await check('registry-publish', body, async (b) => {
      const res = await fetch(`${url()}/v1/supernets`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/msgpack' }, body: Buffer.from(b) });
      await expect4xx(res, 'POST /v1/supernets');
    });
    const s = await stats();
    assert.equal(s.versions, 0);
    assert.equal(s.blobs, 0);
  });

  test('JSON bodies (query, enroll, commands) and query strings: 4xx with a code; the registry keeps serving', async () => {
    const json = fc.oneof(fc.json(), fc.string(), fc.anything().map((v) => { try { return JSON.stringify(v) ?? 'null'; } catch { return '{}'; } }));
    await check('registry-json', fc.tuple(fc.constantFrom('/v1/query', '/v1/devices/dev_nope/commands', '/v1/devices/enroll'), json), async ([path, b]) => {
      const token = path.endsWith('enroll') ? ENROLL : ADMIN;
      const res = await fetch(`${url()}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: b });
      if (path.endsWith('enroll') && res.status === 201) return void (await res.text()); // a valid enrollment is allowed
      await expect4xx(res, `POST ${path}`);
    });
    const seg = fc.oneof(fc.string(), fc.constantFrom('..', '%2e%2e', 'latest', '%00', 'a%2Fb'));
    await check('registry-query-strings', fc.tuple(seg, seg, fc.string()), async ([a, b, q]) => {
      const enc = (s: string) => (/%/.test(s) ? s : encodeURIComponent(s));
      for (const path of [`/v1/supernets/${enc(a)}/versions/${enc(b)}?${encodeURIComponent(q)}`, `/v1/devices/${enc(a)}/telemetry?limit=${encodeURIComponent(q)}`, `/v1/devices?${encodeURIComponent(q)}=${enc(b)}`, `/v1/supernets/${enc(a)}/versions/${enc(b)}/files/${enc(q)}`]) {
        const res = await fetch(`${url()}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } });
        if (res.status < 400) {
          await res.text();
          continue;
        }
        await expect4xx(res, `GET ${path}`);
      }
    });
    assert.equal((await fetch(`${url()}/v1/health`)).status, 200);
    assert.equal((await stats()).versions, 0);
  });

  test('WebSocket frames (msgpack): refused, no telemetry stored, the hub keeps accepting devices', async () => {
    const res = await fetch(`${url()}/v1/devices/enroll`, { method: 'POST', headers: { authorization: `Bearer ${ENROLL}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'fuzz' }) });
    const { token, deviceId } = (await res.json()) as { token: string; deviceId: string };
    let ws: WebSocket | undefined;
    const open = async () => {
      if (ws && ws.readyState === WebSocket.OPEN) return ws;
      ws = new WebSocket(`${url().replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${token}` } });
      await new Promise<void>((r, j) => (ws!.once('open', () => r()), ws!.once('error', j)));
      return ws;
    };
    const frame = fc.oneof(
      fc.uint8Array({ maxLength: 512 }),
      fc.anything().map((v) => packr.pack(v)),
      fc.record({ t: fc.constantFrom('hello', 'telemetry', 'ack', 'x'), events: fc.anything(), id: fc.anything() }).map((v) => packr.pack(v)),
      fc.record({ t: fc.constant('telemetry'), events: fc.array(fc.record({ seq: fc.oneof(fc.integer(), fc.double()), at: fc.anything(), kind: fc.string(), data: fc.anything() }), { maxLength: 4 }) }).map((v) => packr.pack(v)),
    );
    await check('registry-ws', frame, async (b) => {
      const w = await open();
      const answer = new Promise<unknown>((r) => {
        const t = setTimeout(() => r(undefined), 50);
        w.once('message', (d) => (clearTimeout(t), r(packr.unpack(d as Buffer))));
        w.once('close', () => (clearTimeout(t), r('closed')));
      });
      w.send(b);
      const a = await answer;
      if (a && typeof a === 'object' && (a as { t?: string }).t === 'error') assert.match((a as { code: string }).code, CODE);
    });
    ws?.terminate();
    const t = (await (await fetch(`${url()}/v1/devices/${deviceId}/telemetry`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { count: number };
    assert.equal(t.count, 0, 'no fuzzed frame was stored as telemetry');
    assert.ok(await open());
    ws?.terminate();
  });
});

describe('fuzz: the agent HTTP API', () => {
  let d: DaemonHandle;
  before(async () => {
    const pkg = await loadPackageDir(TINY);
    d = await startDaemon({ pkg, budget: { latencyMs: 10_000 }, threads: 1, ladderSize: 4, calibration: { images: 64 }, monitor: { intervalMs: 500 }, listen: { port: 0, maxBodyBytes: 64 * 1024 } });
  });
  after(() => d.close());

  test('infer, budget and switch bodies of any type and content: 4xx with a code, the agent keeps serving', async () => {
    const before = d.status().subnet?.id;
    // .npy: the real preamble with any version, header length, header text and data
    const npy = fc
      .tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 0xffff }), fc.string({ maxLength: 120 }), fc.uint8Array({ maxLength: 1024 }))
      .map(([ver, len, head, data]) => {
        const pre = Buffer.from('\x93NUMPY\x00\x00\x00\x00', 'latin1');
        pre[6] = ver;
        pre.writeUInt16LE(len % 2 ? Buffer.byteLength(head) : len, 8);
        return Buffer.concat([pre, Buffer.from(head), Buffer.from(data)]);
      });
    const body = fc.oneof(fc.uint8Array({ maxLength: 1024 }).map((b) => Buffer.from(b)), fc.json().map((s) => Buffer.from(s)), fc.anything().map((v) => Buffer.from(packr.pack(v))), npy);
    const route = fc.constantFrom(['POST', '/v1/infer'], ['PUT', '/v1/budget'], ['POST', '/v1/switch']);
    const type = fc.constantFrom('application/json', 'application/msgpack', 'application/octet-stream', 'application/x-npy', 'text/plain', '');
    await check('agent-api', fc.tuple(route, type, body), async ([[method, path], ct, b]) => {
      const res = await fetch(`${d.url}${path}`, { method, headers: ct ? { 'content-type': ct } : {}, body: b });
      const text = await res.text();
      if (res.status < 400) return; // e.g. a valid budget or a valid input tensor
      if (res.status >= 500) findings.push(`${method} ${path} (${ct}): HTTP ${res.status} ${text.slice(0, 200)}`);
      assert.ok(res.status < 500, `${method} ${path} ${ct}: HTTP ${res.status} ${text.slice(0, 300)}`);
      assert.match((JSON.parse(text) as { error: { code: string } }).error.code, CODE);
    });
    const s = await fetch(`${d.url}/v1/status`);
    assert.equal(s.status, 200);
    assert.ok(before);
  });
});

after(() => {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  process.stdout.write(`${JSON.stringify({ fuzz: { runsPerProperty: RUNS, total, counts, findings } })}\n`);
});
