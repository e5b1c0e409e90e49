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

test('--socket refuses to replace a file that is not a socket, or a socket in use', async () => {
  const path = join(dir.path, 'not-a-socket');
  writeFileSync(path, 'keep me');
  await assert.rejects(startServer(d, { port: 0, socket: path }), (e) => isNestswapError(e, 'ERR_USAGE'));
  assert.ok(existsSync(path));
  await assert.rejects(startServer(d, { port: 0, socket }), (e) => isNestswapError(e, 'ERR_USAGE'), 'a live socket is not taken over');
});
