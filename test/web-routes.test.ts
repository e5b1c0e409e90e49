/**
 * Without a browser: the agent core and the browser code import no Node modules; the registry serves
 * the bundle, onnxruntime-web's files and the dashboard cross-origin isolated with the right types and
 * cache headers; a WebSocket may carry its device token as a subprotocol (what a page can send).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { buildWeb, webBundleStale } from '../web/build.js';
import { ENROLL, startWebRegistry, type WebRegistry } from './browser-fixtures.js';
import { repoPath } from './helpers.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('agent/core and web/ (the bundle) import no node: modules and no Node-only part of agent/', () => {
  const bad: string[] = [];
  for (const file of [...sources(repoPath('agent', 'core')), ...sources(repoPath('web')).filter((f) => !f.endsWith('build.ts'))]) {
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      const spec = m[1]!;
      const target = spec.startsWith('.') ? relative(repoPath(), join(file, '..', spec)) : spec;
      const nodeOnly = spec.startsWith('node:') || ['onnxruntime-node', 'ws', 'pino', 'prom-client', 'express'].includes(spec);
      const agentOutsideCore = target.startsWith('agent/') && !target.startsWith('agent/core/') && target !== 'agent/policy.js';
      if (nodeOnly || agentOutsideCore || target.startsWith('runtime/node/')) bad.push(`${relative(repoPath(), file)} -> ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

describe('registry web routes', () => {
  let web: WebRegistry;
  before(async () => {
    if (webBundleStale()) await buildWeb();
    web = await startWebRegistry();
  });
  after(() => web?.close());

  const isolated = (r: Response) => {
    assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp');
  };

  test('the agent bundle, its page and the dashboard are served cross-origin isolated', async () => {
    for (const [path, type] of [
      ['/v1/web/agent.js', 'text/javascript'],
      ['/v1/web/dashboard.js', 'text/javascript'],
      ['/v1/web/', 'text/html'],
      ['/dashboard', 'text/html'],
    ] as const) {
      const r = await fetch(`${web.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.ok(r.headers.get('content-type')?.startsWith(type), `${path}: ${r.headers.get('content-type')}`);
      isolated(r);
    }
    const js = await (await fetch(`${web.url}/v1/web/agent.js`)).text();
    assert.match(js, /export\s*\{[^}]*connect/, 'an ES module exporting connect');
  });

  test("onnxruntime-web's wasm is application/wasm with cache headers; other names are refused", async () => {
    const r = await fetch(`${web.url}/v1/web/ort/ort-wasm-simd-threaded.jsep.wasm`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/wasm');
    assert.match(r.headers.get('cache-control') ?? '', /max-age=\d+/);
    assert.ok(r.headers.get('etag'));
    isolated(r);
    const m = await fetch(`${web.url}/v1/web/ort/ort.min.mjs`);
    assert.equal(m.status, 200);
    assert.ok(m.headers.get('content-type')?.startsWith('text/javascript'));
    for (const bad of ['..%2Fpackage.json', 'package.json', 'ort.node.min.js.map%00']) {
      const x = await fetch(`${web.url}/v1/web/ort/${bad}`);
      assert.equal(x.status, 404, bad);
      assert.equal(((await x.json()) as { error: { code: string } }).error.code, 'ERR_NOT_FOUND');
    }
  });

  test('a WebSocket authenticates with the subprotocol bearer.<token> and is answered as nestswap', async () => {
    const res = await fetch(`${web.url}/v1/devices/enroll`, { method: 'POST', headers: { authorization: `Bearer ${ENROLL}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ws-proto' }) });
    const { token } = (await res.json()) as { token: string };
    const wsUrl = `${web.url.replace('http', 'ws')}/v1/ws`;
    const ok = new WebSocket(wsUrl, ['nestswap', `bearer.${token}`]);
    await new Promise<void>((resolve, reject) => {
      ok.once('open', () => resolve());
      ok.once('error', reject);
    });
    assert.equal(ok.protocol, 'nestswap');
    ok.close();
    const bad = new WebSocket(wsUrl, ['nestswap', 'bearer.not-a-token']);
    const status = await new Promise<number>((resolve) => bad.once('unexpected-response', (_req, r) => resolve(r.statusCode ?? 0)));
    assert.equal(status, 401);
  });
});
