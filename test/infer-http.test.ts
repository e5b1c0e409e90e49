/** POST /v1/infer on the bare node:http path: raw float32 in and out, over TCP and a Unix socket. */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDaemon, type DaemonHandle } from '../agent/daemon.js';
import { startServer } from '../agent/server.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { isNestswapError } from '../runtime/errors.js';
import { npyBytes } from '../agent/npy.js';
import { tempDir, TINY } from './helpers.js';

const PER = 144; // tiny fixture: 1x12x12
const dir = tempDir('nestswap-infer-');
const socket = join(dir.path, 'agent.sock');
let d: DaemonHandle;
before(async () => {
  d = await startDaemon({ pkg: await loadPackageDir(TINY), budget: { latencyMs: 10_000 }, threads: 1, ladderSize: 2, calibration: { images: 64 }, listen: { port: 0, socket } });
});
after(async () => {
  await d.close();
  dir[Symbol.dispose]();
});

function post(where: { url?: string; socketPath?: string }, body: Buffer, headers: Record<string, string>, chunked = false): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const u = where.url ? new URL(where.url) : undefined;
    const req = request(
      { ...(u ? { host: u.hostname, port: u.port } : { socketPath: where.socketPath! }), path: '/v1/infer', method: 'POST', headers: chunked ? headers : { ...headers, 'content-length': String(body.length) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    if (chunked) {
      req.write(body.subarray(0, 100));
      req.end(body.subarray(100));
    } else req.end(body);
  });
}

const inputs = (batch: number) => Float32Array.from({ length: batch * PER }, (_, i) => ((i * 37) % 101) / 100);

test('a raw float32 body with Accept: application/octet-stream answers raw float32 logits equal to the JSON answer', async () => {
  const x = inputs(3);
  const bin = await post({ url: d.url! }, Buffer.from(x.buffer), { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' });
  assert.equal(bin.status, 200);
  assert.equal(bin.headers['content-type'], 'application/octet-stream');
  const classes = Number(bin.headers['x-nestswap-classes']);
  assert.equal(Number(bin.headers['x-nestswap-batch']), 3);
  assert.equal(bin.body.length, 3 * classes * 4);
  const logits = new Float32Array(bin.body.buffer.slice(bin.body.byteOffset, bin.body.byteOffset + bin.body.length));
  const json = await post({ url: d.url! }, Buffer.from(JSON.stringify({ inputs: [0, 1, 2].map((i) => Array.from(x.subarray(i * PER, (i + 1) * PER))) })), { 'content-type': 'application/json' });
  const j = JSON.parse(json.body.toString()) as { logits: number[][]; indices: number[]; subnet: string };
  assert.equal(bin.headers['x-nestswap-subnet'], j.subnet);
  assert.deepEqual(String(bin.headers['x-nestswap-indices']).split(',').map(Number), j.indices);
  j.logits.flat().forEach((v, i) => assert.ok(Math.abs(v - logits[i]!) < 1e-5, `logit ${i}`));
});

test('the Unix socket serves the same API, a chunked body (no Content-Length) too', async () => {
  const x = inputs(1);
  const tcp = await post({ url: d.url! }, Buffer.from(x.buffer), { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' });
  const unix = await post({ socketPath: socket }, Buffer.from(x.buffer), { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' }, true);
  assert.equal(unix.status, 200);
  assert.deepEqual(unix.body, tcp.body);
  const status = await new Promise<number>((resolve, reject) => request({ socketPath: socket, path: '/readyz' }, (res) => resolve(res.statusCode!)).on('error', reject).end());
  assert.equal(status, 200, 'every route, not only inference');
});

test('errors on the fast path keep their codes: wrong size, too large, non-finite, wrong type', async () => {
  const cases: [Buffer, string, number, string][] = [
    [Buffer.alloc(PER * 4 + 4), 'application/octet-stream', 400, 'ERR_INPUT'],
    [Buffer.from(Float32Array.from({ length: PER }, () => Number.NaN).buffer), 'application/octet-stream', 400, 'ERR_INPUT'],
    [Buffer.from('{"input": [1,'), 'application/json', 400, 'ERR_BAD_JSON'],
    [Buffer.from('hello'), 'text/plain', 415, 'ERR_UNSUPPORTED_MEDIA'],
    [Buffer.alloc(9 * 1024 * 1024), 'application/octet-stream', 413, 'ERR_BODY_TOO_LARGE'],
  ];
  for (const [body, type, status, code] of cases) {
    const r = await post({ url: d.url! }, body, { 'content-type': type, accept: 'application/octet-stream' });
    assert.equal(r.status, status, code);
    assert.equal((JSON.parse(r.body.toString()) as { error: { code: string } }).error.code, code);
  }
  assert.equal((await post({ url: d.url! }, Buffer.from(inputs(1).buffer), { 'content-type': 'application/octet-stream' })).status, 200, 'still serving');
});

/** A .npy as numpy writes it: magic, version, header length, the dict padded to 64 bytes with '\\n', then `data`. */
function npy(dict: string, data: Buffer, version = 1): Buffer {
  const pre = version === 1 ? 10 : 12;
  const pad = (64 - ((pre + dict.length + 1) % 64)) % 64;
  const text = Buffer.from(`${dict}${' '.repeat(pad)}\n`, 'latin1');
  const head = Buffer.alloc(pre);
  head.write('\x93NUMPY', 'latin1');
  head[6] = version;
  if (version === 1) head.writeUInt16LE(text.length, 8);
  else head.writeUInt32LE(text.length, 8);
  return Buffer.concat([head, text, data]);
}

const raw = { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' };

test('a .npy body (float32 or float64, format 1 or 2, any shape of whole samples) answers what the raw body answers; Accept: application/x-npy answers a .npy', async () => {
  const x = inputs(2);
  const want = await post({ url: d.url! }, Buffer.from(x.buffer), raw);
  assert.equal(want.status, 200);
  const f8 = Buffer.alloc(x.length * 8);
  x.forEach((v, i) => f8.writeDoubleLE(v, i * 8));
  const bodies: [string, Buffer][] = [
    ['f4 (2, 144)', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 144), }", Buffer.from(x.buffer))],
    ['f4 (2, 1, 12, 12) v2', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 12, 12), }", Buffer.from(x.buffer), 2)],
    ['f8 (288,)', npy("{'descr': '<f8', 'fortran_order': False, 'shape': (288,), }", f8)],
    ['written by npyBytes', npyBytes(x, [2, PER])],
  ];
  for (const [what, body] of bodies) {
    const r = await post({ url: d.url! }, body, { 'content-type': 'application/x-npy', accept: 'application/octet-stream' });
    assert.equal(r.status, 200, `${what}: ${r.body.toString()}`);
    assert.equal(r.headers['x-nestswap-batch'], '2', what);
    assert.deepEqual(r.body, want.body, what);
  }
  const a = await post({ url: d.url! }, Buffer.from(x.buffer), { 'content-type': 'application/octet-stream', accept: 'application/x-npy' });
  assert.equal(a.headers['content-type'], 'application/x-npy');
  const classes = Number(a.headers['x-nestswap-classes']);
  assert.equal(a.body.subarray(0, 8).toString('latin1'), '\x93NUMPY\x01\x00');
  const hlen = a.body.readUInt16LE(8);
  assert.equal((10 + hlen) % 64, 0, 'data aligned as numpy aligns it');
  assert.match(a.body.toString('latin1', 10, 10 + hlen), new RegExp(`^\\{'descr': '<f4', 'fortran_order': False, 'shape': \\(2, ${classes}\\), \\} *\\n$`));
  assert.deepEqual(a.body.subarray(10 + hlen), want.body, 'the same logits after the header');
});

test('bad .npy bodies: one line with ERR_BAD_NPY (not a .npy) or ERR_INPUT (a .npy of the wrong kind)', async () => {
  const x = Buffer.from(inputs(1).buffer);
  const cases: [string, Buffer, string][] = [
    ['raw float32 sent as npy', x, 'ERR_BAD_NPY'],
    ['version 9', Buffer.concat([Buffer.from('\x93NUMPY\x09\x00', 'latin1'), x]), 'ERR_BAD_NPY'],
    ['header longer than the body', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 144), }", Buffer.alloc(0)).subarray(0, 40), 'ERR_BAD_NPY'],
    ['no shape', npy("{'descr': '<f4', 'fortran_order': False, }", x), 'ERR_BAD_NPY'],
    ['shape not integers', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, x), }", x), 'ERR_BAD_NPY'],
    ['data shorter than the shape', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 144), }", x), 'ERR_BAD_NPY'],
    ['int32', npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 144), }", x), 'ERR_INPUT'],
    ['big-endian float32', npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 144), }", x), 'ERR_INPUT'],
    ['Fortran order', npy("{'descr': '<f4', 'fortran_order': True, 'shape': (12, 12), }", x), 'ERR_INPUT'],
    ['not whole samples', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100,), }", x.subarray(0, 400)), 'ERR_INPUT'],
    ['no values', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 144), }", Buffer.alloc(0)), 'ERR_INPUT'],
  ];
  for (const [what, body, code] of cases) {
    const r = await post({ url: d.url! }, body, { 'content-type': 'application/x-npy' });
    assert.equal(r.status, 400, what);
    const e = (JSON.parse(r.body.toString()) as { error: { code: string; message: string } }).error;
    assert.equal(e.code, code, `${what}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), `${what}: one line`);
  }
  const nan = Buffer.from(Float32Array.from({ length: PER }, (_, i) => (i === 7 ? Number.NaN : 0)).buffer);
  const r = await post({ url: d.url! }, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 144), }", nan), { 'content-type': 'application/x-npy' });
  assert.equal((JSON.parse(r.body.toString()) as { error: { code: string } }).error.code, 'ERR_INPUT', 'NaN in a .npy');
});

test('every answer carries the model\'s own time for the request (Server-Timing compute;dur), within the round trip', async () => {
  const x = Buffer.from(inputs(1).buffer);
  for (const [type, body] of [
    ['application/octet-stream', x],
    ['application/json', Buffer.from(JSON.stringify({ input: Array.from(inputs(1)) }))],
  ] as const) {
    const t0 = performance.now();
    const r = await post({ url: d.url! }, body, { 'content-type': type });
    const rtt = performance.now() - t0;
    const m = /^compute;dur=(\d+\.\d{3})$/.exec(String(r.headers['server-timing']));
    assert.ok(m, `${type}: ${r.headers['server-timing']}`);
    assert.ok(Number(m[1]) > 0 && Number(m[1]) < rtt, `${type}: ${m[1]} ms of a ${rtt} ms round trip`);
  }
});

test('--socket refuses to replace a file that is not a socket, or a socket in use', async () => {
  const path = join(dir.path, 'not-a-socket');
  writeFileSync(path, 'keep me');
  await assert.rejects(startServer(d, { port: 0, socket: path }), (e) => isNestswapError(e, 'ERR_USAGE'));
  assert.ok(existsSync(path));
  await assert.rejects(startServer(d, { port: 0, socket }), (e) => isNestswapError(e, 'ERR_USAGE'), 'a live socket is not taken over');
});
