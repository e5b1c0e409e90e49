/**
 * Registry, in process: real HTTP server, real WebSockets, real SQLite and blob directory.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { AdminClient, packPackageDir, RegistryApiError } from '../registry/admin-client.js';
import { startRegistry, type RegistryHandle } from '../registry/server.js';
import type { RegistryFrame } from '../registry/protocol.js';
import { tempDir } from './helpers.js';
import { makeQueryablePackage, midBudgetMs, profileText, TINY, tinyProfile } from './registry-fixtures.js';

const ADMIN = 'admin-token-0123456789abcdef';
const ENROLL = 'enroll-token-0123456789abcdef';
const packr = new Packr({ useRecords: false, moreTypes: false });

async function code(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RegistryApiError) return { status: err.status, code: err.code };
    throw err;
  }
  assert.fail('expected an error');
}

async function errorOf(res: Response): Promise<{ status: number; code: string }> {
  const body = (await res.json()) as { error: { code: string } };
  return { status: res.status, code: body.error.code };
}

async function enroll(url: string, name: string, extra: Record<string, unknown> = {}): Promise<{ deviceId: string; token: string }> {
  const res = await fetch(`${url}/v1/devices/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ENROLL}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, ...extra }),
  });
  assert.equal(res.status, 201);
  return (await res.json()) as { deviceId: string; token: string };
}

/** A raw WS client collecting decoded frames. */
async function wsClient(url: string, token: string | undefined): Promise<{ ws: WebSocket; frames: RegistryFrame[]; next(t: string, ms?: number): Promise<RegistryFrame>; send(v: unknown): void }> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const frames: RegistryFrame[] = [];
  const waiters: { t: string; resolve: (f: RegistryFrame) => void }[] = [];
  ws.on('message', (d) => {
    const f = packr.unpack(d as Buffer) as RegistryFrame;
    const i = waiters.findIndex((w) => w.t === f.t);
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(f);
    else frames.push(f);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return {
    ws,
    frames,
    send: (v) => ws.send(packr.pack(v)),
    next: (t, ms = 5000) => {
      const i = frames.findIndex((f) => f.t === t);
      if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0]!);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no '${t}' frame within ${ms} ms`)), ms);
        waiters.push({ t, resolve: (f) => (clearTimeout(timer), resolve(f)) });
      });
    },
  };
}

describe('registry', () => {
  const dir = tempDir('nestswap-registry-');
  let reg: RegistryHandle;
  let admin: AdminClient;
  let pkgDir: string;

  before(async () => {
    pkgDir = await makeQueryablePackage(join(dir.path, 'pkg'));
    reg = await startRegistry({ port: 0, dataDir: join(dir.path, 'data'), adminToken: ADMIN, enrollToken: ENROLL, limits: { publishBytes: 8 * 1024 * 1024, wsFrameBytes: 64 * 1024 }, heartbeatMs: 200 });
    admin = new AdminClient(reg.url, ADMIN);
  });
  after(async () => {
    await reg.close();
    dir[Symbol.dispose]();
  });

  const dataDir = () => join(dir.path, 'data');
  const blobFiles = () => readdirSync(join(dataDir(), 'blobs')).flatMap((d) => readdirSync(join(dataDir(), 'blobs', d)));

  test('a corrupted upload (digest mismatch) is refused and leaves nothing behind', async () => {
    const good = (packr.unpack(await packPackageDir(pkgDir)) as { files: Record<string, Uint8Array> }).files;
    const body = { files: { ...good } };
    const w = Buffer.from(body.files['weights.bin']!);
    w[100] = w[100]! ^ 0xff;
    body.files['weights.bin'] = w;
    assert.deepEqual(await code(admin.publishBytes(packr.pack(body))), { status: 400, code: 'ERR_PACKAGE_DIGEST' });
    const short = { files: { ...good, 'weights.bin': w.subarray(0, 10) } };
    assert.deepEqual(await code(admin.publishBytes(packr.pack(short))), { status: 400, code: 'ERR_PACKAGE_SIZE' });
    const missing = { files: { ...good } };
    delete missing.files['calibration.u8'];
    assert.deepEqual(await code(admin.publishBytes(packr.pack(missing))), { status: 400, code: 'ERR_PACKAGE_MANIFEST' });
    assert.deepEqual(await code(admin.publishBytes(packr.pack({ files: { ...good, 'extra.bin': new Uint8Array(3) } }))), { status: 400, code: 'ERR_PACKAGE_MANIFEST' });
    assert.deepEqual(await code(admin.publishBytes(new Uint8Array([0xc1, 0xc1, 0xc1]))), { status: 400, code: 'ERR_VALIDATION' });
    assert.deepEqual(await code(admin.publishBytes(packr.pack({ files: 3 }))), { status: 400, code: 'ERR_VALIDATION' });
    // oversized: over the 8 MiB publish limit
    assert.deepEqual(await code(admin.publishBytes(new Uint8Array(9 * 1024 * 1024))), { status: 413, code: 'ERR_BODY_TOO_LARGE' });
    const res = await fetch(`${reg.url}/v1/supernets`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'text/plain' }, body: 'hi' });
    assert.deepEqual(await errorOf(res), { status: 415, code: 'ERR_UNSUPPORTED_MEDIA' });
    const stats = await admin.stats();
    assert.equal(stats.versions, 0);
    assert.equal(stats.blobs, 0);
    assert.deepEqual(blobFiles(), []);
    assert.deepEqual(readdirSync(join(dataDir(), 'tmp')), []);
  });

  test('publish, list, get, download with ETag/304 and Range/206', async () => {
    const r = await admin.publishDir(pkgDir);
    assert.equal(r.created, true);
    assert.equal(r.name, 'tiny');
    // idempotent re-publish
    assert.equal((await admin.publishDir(pkgDir)).created, false);
    const list = await admin.supernets();
    assert.deepEqual(list.supernets.map((s) => [s.name, s.latest]), [['tiny', '1.0.0-q']]);
    const v = await admin.version('tiny', 'latest');
    assert.equal(v.version, '1.0.0-q');
    const wf = v.files.find((f) => f.path === 'weights.bin')!;
    const full = await fetch(`${reg.url}${wf.url}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(full.status, 200);
    const bytes = new Uint8Array(await full.arrayBuffer());
    assert.deepEqual(Buffer.from(bytes), readFileSync(join(TINY, 'weights.bin')));
    const etag = full.headers.get('etag')!;
    assert.equal(etag, `"${wf.sha256}"`);
    const cached = await fetch(`${reg.url}${wf.url}`, { headers: { authorization: `Bearer ${ADMIN}`, 'if-none-match': etag } });
    assert.equal(cached.status, 304);
    const part = await fetch(`${reg.url}${wf.url}`, { headers: { authorization: `Bearer ${ADMIN}`, range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${bytes.length}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.subarray(100, 200));
    const tail = await fetch(`${reg.url}${wf.url}`, { headers: { authorization: `Bearer ${ADMIN}`, range: `bytes=${bytes.length - 5}-` } });
    assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.subarray(bytes.length - 5));
    const bad = await fetch(`${reg.url}${wf.url}`, { headers: { authorization: `Bearer ${ADMIN}`, range: `bytes=${bytes.length}-` } });
    assert.deepEqual(await errorOf(bad), { status: 416, code: 'ERR_RANGE' });
    // same version, other content: conflict, and no new blobs
    const before = blobFiles().length;
    const body = packr.unpack(await packPackageDir(pkgDir)) as { files: Record<string, Uint8Array> };
    const m = JSON.parse(Buffer.from(body.files['manifest.json']!).toString());
    m.producer = 'someone else';
    body.files['manifest.json'] = Buffer.from(JSON.stringify(m));
    assert.deepEqual(await code(admin.publishBytes(packr.pack(body))), { status: 409, code: 'ERR_CONFLICT' });
    assert.equal(blobFiles().length, before);
    assert.deepEqual(await code(admin.version('tiny', '9.9.9')), { status: 404, code: 'ERR_NOT_FOUND' });
  });

  test('tokens: missing, wrong, and a device acting beyond its rights', async () => {
    assert.deepEqual(await errorOf(await fetch(`${reg.url}/v1/devices`)), { status: 401, code: 'ERR_AUTH_MISSING' });
    assert.deepEqual(await errorOf(await fetch(`${reg.url}/v1/devices`, { headers: { authorization: 'Bearer nope-nope-nope' } })), { status: 401, code: 'ERR_AUTH_INVALID' });
    const wrongEnroll = await fetch(`${reg.url}/v1/devices/enroll`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{"name":"x"}' });
    assert.deepEqual(await errorOf(wrongEnroll), { status: 401, code: 'ERR_AUTH_INVALID' });
    const a = await enroll(reg.url, 'a', { supernet: 'tiny' });
    const b = await enroll(reg.url, 'b', { supernet: 'tiny' });
    const asA = new AdminClient(reg.url, a.token);
    assert.deepEqual(await code(asA.devices()), { status: 403, code: 'ERR_FORBIDDEN' });
    assert.deepEqual(await code(asA.device(b.deviceId)), { status: 403, code: 'ERR_FORBIDDEN' });
    assert.equal((await asA.device(a.deviceId)).id, a.deviceId);
    assert.deepEqual(await code(asA.publishDir(pkgDir)), { status: 403, code: 'ERR_FORBIDDEN' });
    assert.deepEqual(await code(asA.command(b.deviceId, { type: 'unpin' })), { status: 403, code: 'ERR_FORBIDDEN' });
    const profile = JSON.parse(profileText(await tinyProfile()));
    const put = (id: string, token: string, body: string, type = 'application/json') =>
      fetch(`${reg.url}/v1/devices/${id}/profile`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': type }, body });
    assert.deepEqual(await errorOf(await put(b.deviceId, a.token, JSON.stringify(profile))), { status: 403, code: 'ERR_FORBIDDEN' });
    assert.equal(await reg.store.profile(b.deviceId), undefined);
    // a device reads only its own supernet
    const c = await enroll(reg.url, 'c', { supernet: 'other' });
    assert.deepEqual(await code(new AdminClient(reg.url, c.token).version('tiny')), { status: 403, code: 'ERR_FORBIDDEN' });
    assert.equal((await asA.version('tiny')).name, 'tiny');
    // malformed and oversized bodies
    assert.deepEqual(await errorOf(await put(a.deviceId, a.token, '{"format":')), { status: 400, code: 'ERR_VALIDATION' });
    assert.deepEqual(await errorOf(await put(a.deviceId, a.token, '{"format":"nestswap.profile/1"}')), { status: 400, code: 'ERR_PROFILE_INVALID' });
    const badEnroll = await fetch(`${reg.url}/v1/devices/enroll`, { method: 'POST', headers: { authorization: `Bearer ${ENROLL}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', admin: true }) });
    assert.deepEqual(await errorOf(badEnroll), { status: 400, code: 'ERR_VALIDATION' });
    const huge = await fetch(`${reg.url}/v1/devices/enroll`, { method: 'POST', headers: { authorization: `Bearer ${ENROLL}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', facts: { pad: 'x'.repeat(100_000) } }) });
    assert.deepEqual(await errorOf(huge), { status: 413, code: 'ERR_BODY_TOO_LARGE' });
    assert.equal((await reg.store.devices()).filter((d) => d.name === 'x').length, 0);
    assert.equal(await reg.store.profile(a.deviceId), undefined);
  });

  test('a best-model query can answer from the Pareto ladder cached for the profile', async () => {
    const d = await enroll(reg.url, 'laddered', { supernet: 'tiny' });
    const profile = await tinyProfile();
    const res = await fetch(`${reg.url}/v1/devices/${d.deviceId}/profile`, { method: 'PUT', headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' }, body: profileText(profile) });
    assert.equal(res.status, 200);
    const budgetMs = await midBudgetMs(profile);
    const a = await admin.query({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: budgetMs }, from: 'ladder' });
    assert.equal(a.source, 'ladder');
    assert.ok(a.predicted.latencyMs! <= budgetMs, `${a.predicted.latencyMs} <= ${budgetMs}`);
    const b = await admin.query({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: budgetMs * 0.9 }, from: 'ladder' });
    assert.equal(b.source, 'ladder');
    assert.equal(b.cached, true, 'the second query reuses the ladder');
    assert.ok(b.predicted.latencyMs! <= budgetMs * 0.9 && b.predicted.accuracy <= a.predicted.accuracy);
    // (another budget than the next test's: search answers are memoised by profile and budget)
    const s = await admin.query({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: budgetMs * 0.8 } });
    assert.equal(s.source, 'search');
    // below every rung the search answers: here, that nothing fits
    assert.deepEqual(await code(admin.query({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: 1e-6 }, from: 'ladder' })), { status: 422, code: 'ERR_BUDGET_INFEASIBLE' });
  });

  test('profile upload, best-model query by device and by class, materialized ONNX link', async () => {
    const d = await enroll(reg.url, 'queried', { supernet: 'tiny' });
    const asD = new AdminClient(reg.url, d.token);
    assert.deepEqual(await code(admin.query({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: 5 } })), { status: 409, code: 'ERR_NO_PROFILE' });
    const profile = await tinyProfile();
    const res = await fetch(`${reg.url}/v1/devices/${d.deviceId}/profile`, { method: 'PUT', headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' }, body: profileText(profile) });
    assert.equal(res.status, 200);
    const info = await asD.device(d.deviceId);
    assert.equal(info.profile?.deviceClass, 'test-x86-2c');
    // a budget between the smallest and largest subnet's predicted latency
    const budgetMs = await midBudgetMs(profile);
    const q = await admin.query({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: budgetMs } });
    assert.ok(q.predicted.latencyMs! <= budgetMs, `${q.predicted.latencyMs} <= ${budgetMs}`);
    assert.ok(q.predicted.accuracy > 0 && q.predicted.accuracy < 1);
    assert.equal(q.cached, false);
    const again = await asD.query({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: budgetMs } });
    assert.equal(again.cached, true);
    assert.equal(again.subnetId, q.subnetId);
    const byClass = await admin.query({ supernet: 'tiny', deviceClass: 'test-x86-2c', budget: { latencyMs: budgetMs } });
    assert.equal(byClass.subnetId, q.subnetId);
    assert.deepEqual(await code(admin.query({ supernet: 'tiny', device: d.deviceId, budget: { latencyMs: 1e-6 } })), { status: 422, code: 'ERR_BUDGET_INFEASIBLE' });
    assert.deepEqual(await code(admin.query({ supernet: 'tiny', deviceClass: 'nope', budget: { latencyMs: 5 } })), { status: 409, code: 'ERR_NO_PROFILE' });
    assert.deepEqual(await code(admin.query({ supernet: 'tiny', budget: { latencyMs: 5 } } as never)), { status: 400, code: 'ERR_VALIDATION' });
    const onnx = await fetch(q.onnx, { headers: { authorization: `Bearer ${d.token}` } });
    assert.equal(onnx.status, 200);
    const model = new Uint8Array(await onnx.arrayBuffer());
    assert.ok(model.length > 1000);
    const again304 = await fetch(q.onnx, { headers: { authorization: `Bearer ${d.token}`, 'if-none-match': onnx.headers.get('etag')! } });
    assert.equal(again304.status, 304);
    const ort = await import('onnxruntime-node');
    const s = await ort.InferenceSession.create(model);
    const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(144).fill(0.5), [1, 1, 12, 12]) });
    assert.equal(out[s.outputNames[0]!]!.dims.at(-1), 5);
  });

  test('WebSocket: auth, malformed frames, telemetry dedupe across reconnects, commands with resume', async () => {
    await assert.rejects(wsClient(reg.url, undefined), /401/);
    await assert.rejects(wsClient(reg.url, 'not-a-device-token'), /401/);
    const d = await enroll(reg.url, 'ws', { supernet: 'tiny' });
    let c = await wsClient(reg.url, d.token);
    c.send({ t: 'hello' });
    assert.deepEqual(await c.next('welcome'), { t: 'welcome', deviceId: d.deviceId, telemetryAck: 0 });
    // malformed: not msgpack, text, unknown type, bad event
    c.ws.send(Buffer.from([0xc1]));
    assert.equal(((await c.next('error')) as { code: string }).code, 'ERR_VALIDATION');
    c.ws.send('hello');
    assert.equal(((await c.next('error')) as { code: string }).code, 'ERR_VALIDATION');
    c.send({ t: 'telemetry', events: [{ seq: 0, at: 1, kind: 'swap', data: {} }] });
    assert.equal(((await c.next('error')) as { code: string }).code, 'ERR_VALIDATION');
    c.send({ t: 'launch-missiles' });
    assert.equal(((await c.next('error')) as { code: string }).code, 'ERR_VALIDATION');
    assert.equal(await reg.store.telemetryCount(d.deviceId), 0);
    // telemetry, then the same batch again after a reconnect: stored once
    const events = [1, 2, 3].map((seq) => ({ seq, at: Date.now(), kind: 'latency', data: { p50Ms: seq } }));
    c.send({ t: 'telemetry', events });
    assert.deepEqual(await c.next('telemetry-ack'), { t: 'telemetry-ack', seq: 3 });
    c.ws.close();
    c = await wsClient(reg.url, d.token);
    // a hello with a key this registry does not know (a newer agent's) is answered, the key dropped
    c.send({ t: 'hello', packageVersion: '2.0.0', futureField: { any: 1 } });
    assert.equal(((await c.next('welcome')) as { telemetryAck: number }).telemetryAck, 3);
    assert.equal((await admin.device(d.deviceId)).packageVersion, '2.0.0', 'the hello named the version it serves');
    c.send({ t: 'hello', packageVersion: '../x' });
    assert.equal(((await c.next('error')) as { code: string }).code, 'ERR_VALIDATION', 'a version that is no path segment is refused');
    assert.equal((await admin.device(d.deviceId)).packageVersion, '2.0.0');
    c.send({ t: 'telemetry', events: [...events, { seq: 4, at: Date.now(), kind: 'swap', data: { subnetId: 'x', subnet: { ks: [3], e: [3], d: [2], image_size: 12 } } }] });
    assert.deepEqual(await c.next('telemetry-ack'), { t: 'telemetry-ack', seq: 4 });
    assert.equal(await reg.store.telemetryCount(d.deviceId), 4);
    assert.equal((await admin.device(d.deviceId)).subnetId, 'x');
    // a command pushed live, acked
    const pkg = (await import('../runtime/node/fs-source.js')).loadPackageDir;
    const cfg = (await pkg(TINY)).space.min();
    const pending = admin.command(d.deviceId, { type: 'switch', subnet: cfg, waitMs: 5000 });
    const cmd = (await c.next('command')) as Extract<RegistryFrame, { t: 'command' }>;
    assert.equal(cmd.type, 'switch');
    c.send({ t: 'ack', id: cmd.id, ok: true, result: { subnetId: 'min' } });
    const done = await pending;
    assert.equal(done.status, 'acked');
    assert.deepEqual(done.result, { subnetId: 'min' });
    assert.equal((await admin.commandStatus(cmd.id)).status, 'acked');
    // an invalid config is refused before it is stored
    assert.deepEqual(await code(admin.command(d.deviceId, { type: 'switch', subnet: { ...cfg, image_size: 999 } })), { status: 400, code: 'ERR_CONFIG_INVALID' });
    // a command created while the device is away is delivered on its next hello, and re-sent until acked
    c.ws.close();
    await new Promise((r) => setTimeout(r, 50));
    const queued = await admin.command(d.deviceId, { type: 'budget', budget: { latencyMs: 3 } });
    assert.equal(queued.status, 'pending');
    c = await wsClient(reg.url, d.token);
    c.send({ t: 'hello' });
    const re = (await c.next('command')) as Extract<RegistryFrame, { t: 'command' }>;
    assert.equal(re.id, queued.id);
    c.ws.close();
    c = await wsClient(reg.url, d.token);
    c.send({ t: 'hello' });
    assert.equal(((await c.next('command')) as { id: string }).id, queued.id);
    c.send({ t: 'ack', id: queued.id, ok: false, error: { code: 'ERR_BUDGET_INFEASIBLE', message: 'too tight' } });
    for (let i = 0; i < 50 && (await admin.commandStatus(queued.id)).status !== 'failed'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await admin.commandStatus(queued.id)).error?.code, 'ERR_BUDGET_INFEASIBLE');
    // another device cannot ack this device's command
    const other = await enroll(reg.url, 'other', { supernet: 'tiny' });
    const o = await wsClient(reg.url, other.token);
    const third = await admin.command(d.deviceId, { type: 'unpin' });
    o.send({ t: 'ack', id: third.id, ok: true });
    await new Promise((r) => setTimeout(r, 100));
    assert.notEqual((await admin.commandStatus(third.id)).status, 'acked');
    // an oversized frame closes the connection (1009)
    const closed = new Promise<number>((r) => o.ws.once('close', (code) => r(code)));
    o.ws.send(Buffer.alloc(100 * 1024));
    assert.equal(await closed, 1009);
    c.ws.close();
  });

  test('heartbeat drops a connection that stops answering pings', async () => {
    const d = await enroll(reg.url, 'silent', { supernet: 'tiny' });
    // autoPong off: this client never answers pings
    const ws = new WebSocket(`${reg.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${d.token}` }, autoPong: false });
    await new Promise((r) => ws.once('open', r));
    assert.equal(reg.hub.isOnline(d.deviceId), true);
    await new Promise<void>((r) => ws.once('close', () => r()));
    for (let i = 0; i < 50 && reg.hub.isOnline(d.deviceId); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(reg.hub.isOnline(d.deviceId), false);
  });
});
