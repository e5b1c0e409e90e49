/** GET /healthz (liveness), GET /readyz (readiness) and the /v1/health alias, on the agent and on the registry. */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { startDaemon, type DaemonHandle } from '../agent/daemon.js';
import { createApp } from '../agent/server.js';
import { startRegistry } from '../registry/server.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { tempDir, TINY } from './helpers.js';

const get = async (url: string) => {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as { ok?: boolean; subnet?: string; store?: string; error?: { code: string } } };
};

let d: DaemonHandle;
before(async () => {
  d = await startDaemon({ pkg: await loadPackageDir(TINY), budget: { latencyMs: 10_000 }, threads: 1, ladderSize: 2, calibration: { images: 64 }, listen: { port: 0 } });
});
after(() => d.close());

test('agent: /healthz and /v1/health are live; /readyz names the serving subnet', async () => {
  for (const path of ['/healthz', '/v1/health']) assert.deepEqual(await get(d.url + path), { status: 200, body: { ok: true } }, path);
  const ready = await get(`${d.url}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(ready.body.subnet, d.status().subnet!.id);
});

test('agent: /readyz is 503 ERR_NOT_READY while no model serves, and /healthz stays 200', async () => {
  // the same daemon, seen at a moment before its first model serves
  const starting = Object.create(d) as DaemonHandle;
  starting.status = () => ({ ...d.status(), subnet: undefined }) as unknown as ReturnType<DaemonHandle['status']>;
  const server = createApp(starting).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const r = await get(`${url}/readyz`);
    assert.equal(r.status, 503);
    assert.equal(r.body.error?.code, 'ERR_NOT_READY');
    assert.equal((await get(`${url}/healthz`)).status, 200);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('registry: /healthz and /v1/health are live; /readyz is 200 while the store answers and 503 ERR_NOT_READY when it does not', async () => {
  using dir = tempDir();
  const reg = await startRegistry({ port: 0, dataDir: join(dir.path, 'r'), adminToken: 'a'.repeat(20), enrollToken: 'e'.repeat(20), logger: pino({ level: 'silent' }) });
  try {
    for (const path of ['/healthz', '/v1/health']) {
      const r = await get(reg.url + path);
      assert.equal(r.status, 200, path);
      assert.equal(r.body.ok, true, path);
    }
    assert.deepEqual(await get(`${reg.url}/readyz`), { status: 200, body: { ok: true, store: 'sqlite' } });
    await reg.store.close(); // the store goes away under a running server
    const down = await get(`${reg.url}/readyz`);
    assert.equal(down.status, 503);
    assert.equal(down.body.error?.code, 'ERR_NOT_READY');
    assert.equal((await get(`${reg.url}/healthz`)).status, 200, 'still live');
  } finally {
    await reg.close().catch(() => undefined);
  }
});
