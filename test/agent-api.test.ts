import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pack } from 'msgpackr';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { startDaemon, type DaemonHandle } from '../agent/daemon.js';
import { TINY } from './helpers.js';

let d: DaemonHandle;
let url: string;
const PER = 144; // tiny fixture: 1x12x12
const sample = (v = 0.5) => new Array<number>(PER).fill(v);

before(async () => {
  const pkg = await loadPackageDir(TINY);
  // a budget every subnet fits: the policy has nothing to change while the API is exercised
  d = await startDaemon({
    pkg,
    budget: { latencyMs: 10_000 },
    threads: 1,
    ladderSize: 4,
    calibration: { images: 64 },
    monitor: { intervalMs: 500 },
    listen: { port: 0, maxBodyBytes: 64 * 1024 },
  });
  url = d.url!;
});

after(() => d.close());

async function call(method: string, path: string, body?: unknown, type = 'application/json'): Promise<{ status: number; json: any }> {
  const init: RequestInit = { method, headers: { 'content-type': type } };
  if (body !== undefined) init.body = typeof body === 'string' || body instanceof Uint8Array ? (body as BodyInit) : JSON.stringify(body);
  const r = await fetch(url + path, init);
  const text = await r.text();
  return { status: r.status, json: text && r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

test('status document has the subnet, predictions, observations, budget and swaps', async () => {
  const { status, json } = await call('GET', '/v1/status');
  assert.equal(status, 200);
  assert.equal(json.supernet, 'tiny');
  assert.match(json.subnet.id, /^r\d+-d/);
  assert.ok(Array.isArray(json.subnet.config.ks));
  assert.equal(typeof json.predicted.latencyMs, 'number');
  assert.ok('accuracy' in json.predicted && 'memoryMB' in json.predicted);
  assert.ok('p50Ms' in json.observed && 'p99Ms' in json.observed && 'slowdown' in json.observed);
  assert.deepEqual(json.budget, { latencyMs: 10_000 });
  assert.equal(json.swaps[0].outcome, 'swapped');
  assert.equal(typeof json.swaps[0].timings.totalMs, 'number');
});

test('JSON single sample and batch', async () => {
  const one = await call('POST', '/v1/infer', { input: sample() });
  assert.equal(one.status, 200);
  assert.equal(one.json.logits.length, 5);
  assert.ok(['a', 'b', 'c', 'd', 'e'].includes(one.json.label));
  assert.equal(one.json.label, ['a', 'b', 'c', 'd', 'e'][one.json.index]);
  assert.equal(one.json.subnet, d.status().subnet!.id);
  const two = await call('POST', '/v1/infer', { inputs: [sample(0.1), sample(0.9)] });
  assert.equal(two.status, 200);
  assert.equal(two.json.labels.length, 2);
  assert.equal(two.json.logits.length, 2);
  assert.equal(two.json.logits[0].length, 5);
});

test('binary float32 body (batch inferred from length) and msgpack bodies agree with JSON', async () => {
  const x = Float32Array.from(sample(0.25));
  const json = await call('POST', '/v1/infer', { input: Array.from(x) });
  const bin = new Float32Array(PER * 3).fill(0.25);
  const b = await call('POST', '/v1/infer', new Uint8Array(bin.buffer), 'application/octet-stream');
  assert.equal(b.status, 200);
  assert.equal(b.json.labels.length, 3);
  assert.deepEqual(b.json.logits[0], json.json.logits);
  const m1 = await call('POST', '/v1/infer', pack({ input: x }), 'application/msgpack');
  assert.equal(m1.status, 200);
  assert.deepEqual(m1.json.logits, json.json.logits);
  const m2 = await call('POST', '/v1/infer', pack({ inputs: [Array.from(x)] }), 'application/msgpack');
  assert.equal(m2.status, 200);
  assert.deepEqual(m2.json.logits[0], json.json.logits);
});

test('bad requests get 4xx with a stable code, and the agent keeps serving', async () => {
  const cases: [string, string, unknown, string, number, string][] = [
    ['wrong length', '/v1/infer', { input: [1, 2, 3] }, 'application/json', 400, 'ERR_INPUT'],
    ['batch row of wrong length', '/v1/infer', { inputs: [sample(), [1]] }, 'application/json', 400, 'ERR_INPUT'],
    ['non-number', '/v1/infer', { input: [...sample().slice(1), 'x'] }, 'application/json', 400, 'ERR_INPUT'],
    ['both fields', '/v1/infer', { input: sample(), inputs: [sample()] }, 'application/json', 400, 'ERR_INPUT'],
    ['NaN in binary', '/v1/infer', new Uint8Array(new Float32Array(PER).fill(Number.NaN).buffer), 'application/octet-stream', 400, 'ERR_INPUT'],
    ['binary not a multiple of a sample', '/v1/infer', new Uint8Array(10), 'application/octet-stream', 400, 'ERR_INPUT'],
    ['bad JSON', '/v1/infer', '{"input": [1, 2', 'application/json', 400, 'ERR_BAD_JSON'],
    ['NaN in JSON', '/v1/infer', '{"input": [NaN]}', 'application/json', 400, 'ERR_BAD_JSON'],
    ['bad msgpack', '/v1/infer', new Uint8Array([0xc1, 0xc1, 0xc1]), 'application/msgpack', 400, 'ERR_BAD_MSGPACK'],
    ['wrong content type', '/v1/infer', 'hello', 'text/plain', 415, 'ERR_UNSUPPORTED_MEDIA'],
    ['oversized body', '/v1/infer', { inputs: Array.from({ length: 300 }, () => sample()) }, 'application/json', 413, 'ERR_BODY_TOO_LARGE'],
    ['invalid config', '/v1/switch', { ks: [3], e: [3], d: [2], image_size: 12 }, 'application/json', 400, 'ERR_CONFIG_INVALID'],
    ['config not an object', '/v1/switch', [1, 2], 'application/json', 400, 'ERR_CONFIG_INVALID'],
    ['negative budget', '/v1/budget', { latencyMs: -1 }, 'application/json', 400, 'ERR_BUDGET_INVALID'],
    ['unknown budget field', '/v1/budget', { watts: 3 }, 'application/json', 400, 'ERR_BUDGET_INVALID'],
    ['unknown route', '/v1/nothing', {}, 'application/json', 404, 'ERR_NOT_FOUND'],
  ];
  const before = d.status().subnet!.id;
  for (const [what, path, body, type, status, code] of cases) {
    const method = path === '/v1/budget' ? 'PUT' : 'POST';
    const r = await call(method, path, body, type);
    assert.equal(r.status, status, `${what}: status`);
    assert.equal(r.json.error?.code, code, `${what}: code`);
    assert.equal(typeof r.json.error.message, 'string');
  }
  assert.equal(d.status().subnet!.id, before, 'bad requests change nothing');
  assert.deepEqual(d.status().budget, { latencyMs: 10_000 });
  assert.equal((await call('GET', '/healthz')).status, 200);
  assert.equal((await call('POST', '/v1/infer', { input: sample() })).status, 200);
});

test('explicit switch pins until the budget changes; DELETE unpins', async () => {
  const min = d.pkg.space.min();
  const r = await call('POST', '/v1/switch', min);
  assert.equal(r.status, 200);
  assert.equal(r.json.pinned, true);
  assert.ok(['swapped', 'unchanged'].includes(r.json.swap.outcome));
  assert.equal(d.status().subnet!.id, d.pkg.space.id(min));
  const inf = await call('POST', '/v1/infer', { input: sample() });
  assert.equal(inf.json.subnet, d.pkg.space.id(min));
  const b = await call('PUT', '/v1/budget', { latencyMs: 5000 });
  assert.equal(b.status, 200);
  assert.equal(d.status().pinned, false);
  assert.deepEqual(d.status().budget, { latencyMs: 5000 });
  const again = await call('POST', '/v1/switch', { config: min, pin: true });
  assert.equal(again.json.pinned, true);
  const un = await call('DELETE', '/v1/switch');
  assert.equal(un.status, 200);
  assert.equal(d.status().pinned, false);
});

test('a budget no subnet could ever meet is refused with the cheapest prediction; the budget stays', async () => {
  const fastest = d.status().predicted.latencyMs ?? Infinity;
  const r = await call('PUT', '/v1/budget', { latencyMs: 1e-6 });
  assert.equal(r.status, 422);
  assert.equal(r.json.error.code, 'ERR_BUDGET_INFEASIBLE');
  assert.ok(typeof r.json.error.details.minLatencyMs === 'number' && r.json.error.details.minLatencyMs > 1e-6);
  assert.ok(r.json.error.details.minLatencyMs <= fastest, 'the cheapest subnet is no slower than the serving one');
  assert.deepEqual(d.status().budget, { latencyMs: 5000 }, 'the previous budget still holds');
});

test('an accepted budget reports whether it is met', async () => {
  const r = await call('PUT', '/v1/budget', { latencyMs: 5000 });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.budgetState, { met: true, reason: null });
  assert.deepEqual(r.json.budget, { latencyMs: 5000 });
  const s = await call('GET', '/v1/status');
  assert.deepEqual(s.json.budgetState, { met: true, reason: null });
});

test('metrics are Prometheus text', async () => {
  const r = await fetch(`${url}/metrics`);
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.match(text, /nestswap_inference_requests_total\{subnet="r\d+/);
  assert.match(text, /nestswap_swaps_total\{outcome="swapped"\}/);
  assert.match(text, /nestswap_agent_process_resident_memory_bytes/);
});
