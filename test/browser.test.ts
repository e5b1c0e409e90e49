/**
 * The browser agent and the dashboard in Debian's chromium (playwright-core, headless, --no-sandbox),
 * served by this test's own registry on 127.0.0.1. Skipped, saying why, where chromium is absent.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Materializer } from '../runtime/materializer.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { flatMemoryPredictor, staticMemoryModel } from '../runtime/search/efficiency.js';
import { ModelSession } from '../runtime/session.js';
import type { SupernetPackage } from '../runtime/package.js';
import { ADMIN, artifactsDir, chromiumPath, ENROLL, FMNIST, fmnistTestBatch, launchChromium, startWebRegistry, type WebRegistry } from './browser-fixtures.js';
import { maxAbsDiff } from './helpers.js';

const CHROMIUM = chromiumPath();
const skip = CHROMIUM ? false : 'chromium is not installed (apt-get install chromium, or set CHROMIUM=/path/to/chromium)';

type Json = Record<string, unknown>;

/** Opens the registry's agent page in a fresh context and waits for the bundle. */
async function agentPage(ctx: BrowserContext, url: string): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto(`${url}/v1/web/`);
  await page.evaluate(() => (window as unknown as { nestswapReady: Promise<unknown> }).nestswapReady);
  return page;
}

/** connect() in the page; the agent stays as window.agent. Returns what the test checks. */
async function connect(page: Page, opts: Json): Promise<Json> {
  return page.evaluate(async (o) => {
    const w = window as unknown as { nestswap: { connect(o: unknown): Promise<Json & { profile: Json | null }> }; agent: unknown };
    const a = await w.nestswap.connect(o);
    w.agent = a;
    const p = a.profile;
    return {
      deviceId: a.deviceId,
      enrolled: a.enrolled,
      ep: a.ep,
      eps: a.eps,
      package: a.package,
      profile: p ? { cached: p.cached, wallMs: p.wallMs, uploaded: await p.uploaded } : null,
      crossOriginIsolated: a.crossOriginIsolated,
      wasmThreads: a.wasmThreads,
    };
  }, opts);
}

async function pageInfer(page: Page, input: Float32Array, batch: number): Promise<{ logits: number[]; subnetId: string; config: unknown }> {
  return page.evaluate(
    async ({ xs, n }) => {
      const a = (window as unknown as { agent: { infer(x: Float32Array, n: number): Promise<{ logits: Float32Array; subnetId: string; config: unknown }> } }).agent;
      const r = await a.infer(Float32Array.from(xs), n);
      return { logits: Array.from(r.logits), subnetId: r.subnetId, config: r.config };
    },
    { xs: Array.from(input), n: batch },
  );
}

const pageStatus = (page: Page) => page.evaluate(() => (window as unknown as { agent: { status(): Json } }).agent.status()) as Promise<Json & { subnet: { id: string } | null; pinned: boolean; connected: boolean }>;

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined | false>): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() - t0 > ms) assert.fail(`timed out after ${ms} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Logits of `cfg` on onnxruntime-node: materialized and BN-calibrated here, as the browser did there. */
async function nodeLogits(pkg: SupernetPackage, cfg: unknown, input: Float32Array, batch: number): Promise<Float32Array> {
  const m = new Materializer(pkg, nodeBackend);
  const built = await m.materialize(pkg.space.parse(cfg), {});
  const s = await ModelSession.create(nodeBackend, built.bytes, { threads: 1 });
  try {
    return Float32Array.from((await s.runFirst(input, [batch, ...pkg.manifest.input.shape])).data);
  } finally {
    await s.release();
  }
}

/** A page call with its own deadline: a hang fails the test naming the step, not the whole file at its timeout. */
function step<T>(what: string, p: Promise<T>, ms = 180_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`WebGPU test: '${what}' did not answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

describe('browser agent in chromium', { skip, timeout: 1_800_000 }, () => {
  let web: WebRegistry;
  let browser: Browser;
  let pkg: SupernetPackage;
  let deviceCtx: BrowserContext;
  let device: Page;
  let deviceId = '';
  const imgs = fmnistTestBatch(200);
  const requests: string[] = [];

  before(async () => {
    web = await startWebRegistry();
    browser = await launchChromium();
    pkg = await loadPackageDir(FMNIST);
    deviceCtx = await browser.newContext();
    deviceCtx.on('request', (r) => requests.push(r.url()));
  });
  after(async () => {
    await browser?.close();
    await web?.close();
  });

  test('enrolls, profiles on wasm, uploads the profile, and serves 200 Fashion-MNIST test images within 1e-4 of onnxruntime-node on the same subnet', async () => {
    device = await agentPage(deviceCtx, web.url);
    const r = await connect(device, { enrollToken: ENROLL, supernet: 'fmnist-ofa', budget: { latencyMs: 50 }, eps: ['wasm'], profile: { budgetMs: 6000 }, intervalMs: 500 });
    deviceId = r.deviceId as string;
    assert.equal(r.enrolled, true);
    assert.equal(r.ep, 'wasm');
    assert.equal(r.crossOriginIsolated, true, 'the registry serves the agent page cross-origin isolated');
    assert.equal((r.package as Json).downloadedFiles, 7, 'every package file (manifest included) downloaded once');
    const prof = r.profile as Json;
    assert.equal(prof.cached, false);
    assert.equal(prof.uploaded, true);
    const info = (await web.admin.devices()).devices.find((d) => d.id === deviceId)!;
    assert.equal(info.profile?.ep, 'wasm', 'the registry holds the profile measured on wasm');
    assert.equal((info.facts as Json).ep, 'wasm');

    await until('the WebSocket to the registry', 60_000, async () => (await pageStatus(device)).connected);
    const out = await pageInfer(device, imgs.input, 200);
    assert.equal(out.logits.length, 2000);
    const ref = await nodeLogits(pkg, out.config, imgs.input, 200);
    const d = maxAbsDiff(out.logits, ref);
    assert.ok(d <= 1e-4, `browser wasm vs onnxruntime-node on ${out.subnetId}: max |Δlogit| = ${d}`);
    let correct = 0;
    for (let i = 0; i < 200; i++) {
      const row = out.logits.slice(i * 10, i * 10 + 10);
      if (row.indexOf(Math.max(...row)) === imgs.labels[i]) correct++;
    }
    assert.ok(correct >= 150, `a trained model classifies most test images (${correct}/200)`);
  });

  test('the dashboard shows the device, its latency plot and Pareto front, and a switch clicked there is obeyed by the tab', async () => {
    assert.ok(deviceId, 'needs the enrolled device');
    const dash = await (await browser.newContext({ viewport: { width: 1280, height: 1400 } })).newPage();
    await dash.goto(`${web.url}/dashboard`);
    assert.ok(!dash.url().includes(ADMIN));
    await dash.fill('#token', ADMIN);
    await dash.click('#signin-form button[type=submit]');
    const row = dash.locator(`#devices tr[data-device="${deviceId}"]`);
    await row.waitFor({ timeout: 30_000 });
    await until('the device shown online', 30_000, async () => (await row.locator('[data-col=state]').textContent()) === 'online');
    assert.equal(await row.locator('[data-col=ep]').textContent(), 'wasm');
    assert.match((await row.locator('[data-col=profile]').textContent()) ?? '', /^wasm · /);
    assert.equal(await row.locator('[data-col=budget]').textContent(), '50 ms');
    assert.equal(await row.locator('[data-col=package]').textContent(), `fmnist-ofa@${pkg.manifest.version}`, 'the version its hello said it serves');
    assert.ok(!dash.url().includes(ADMIN), 'the admin token never appears in a URL');
    await row.click();
    await dash.locator('#device-page').waitFor();
    const front = dash.locator('#front-plot');
    await until('the Pareto front', 120_000, async () => Number(await front.getAttribute('data-points')) > 1);
    await until('latency windows in the plot', 60_000, async () => Number(await dash.locator('#latency-plot').getAttribute('data-points')) > 0);
    assert.ok((await dash.locator('#latency-plot canvas').count()) > 0, 'uPlot drew the latency plot');
    assert.equal(await front.getAttribute('data-budget-ms'), '50');
    const serving = (await pageStatus(device)).subnet!.id;
    await until('the serving subnet marked on the front', 30_000, async () => (await dash.locator('#serving').textContent()) === serving);

    // switch to another point of the front, by clicking it
    const target = dash.locator('#front tr[data-subnet] button.switch').first();
    const targetId = await target.locator('xpath=ancestor::tr').getAttribute('data-subnet');
    assert.ok(targetId && targetId !== serving);
    await target.click();
    const st = await until('the tab serving the clicked subnet, pinned', 120_000, async () => {
      const s = await pageStatus(device);
      return s.subnet?.id === targetId && s.pinned ? s : undefined;
    });
    assert.equal(st.connected, true);
    await until('the dashboard showing the new subnet', 30_000, async () => (await dash.locator('#serving').textContent()) === targetId);
    await until('the swap in the history', 30_000, async () => (await dash.locator(`#swaps tr[data-outcome=swapped][data-to="${targetId}"]`).count()) >= 1);
    await dash.screenshot({ path: join(artifactsDir(), 'dashboard.png'), fullPage: true });

    // unpin from the dashboard: back to the policy's choice
    await dash.click('#unpin');
    await until('unpinned', 60_000, async () => !(await pageStatus(device)).pinned);
  });

  test('a reload reuses the device token, the cached package and the cached profile: nothing is downloaded', async () => {
    assert.ok(deviceId, 'needs the enrolled device');
    requests.length = 0;
    await device.reload();
    await device.evaluate(() => (window as unknown as { nestswapReady: Promise<unknown> }).nestswapReady);
    const r = await connect(device, { supernet: 'fmnist-ofa', budget: { latencyMs: 50 }, eps: ['wasm'], profile: { budgetMs: 6000 } });
    assert.equal(r.deviceId, deviceId);
    assert.equal(r.enrolled, false);
    assert.equal((r.package as Json).downloadedFiles, 0);
    assert.equal((r.profile as Json).cached, true);
    assert.deepEqual(requests.filter((u) => u.includes('/files/')), [], 'no package file requested');
    const out = await pageInfer(device, imgs.input.subarray(0, 784 * 10), 10);
    assert.equal(out.logits.length, 100);
  });

  test('WebNN is reported unavailable with its reason; a failing EP falls back to the next one and says so', async () => {
    const page = await agentPage(await browser.newContext(), web.url);
    const p = (await page.evaluate(() => (window as unknown as { nestswap: { probe(): Promise<unknown> } }).nestswap.probe())) as { eps: { ep: string; ok: boolean; reason: string | null }[] };
    assert.deepEqual(p.eps.map((e) => e.ep), ['webgpu', 'webnn', 'wasm']);
    const webnn = p.eps.find((e) => e.ep === 'webnn')!;
    const hasMl = await page.evaluate(() => 'ml' in navigator);
    if (!hasMl) {
      assert.equal(webnn.ok, false);
      assert.match(webnn.reason ?? '', /navigator\.ml is absent/);
    } else assert.ok(webnn.ok || (webnn.reason ?? '').length > 0, 'WebNN either runs or says why not');
    assert.equal(p.eps.find((e) => e.ep === 'wasm')!.ok, true);

    // 'webgl' is not in this onnxruntime-web build: its session fails for real, and wasm serves
    const memoryMB = flatMemoryPredictor(staticMemoryModel(pkg.arch, pkg.space.image_size_list)).memoryMB(pkg.space.min()) * 1.02;
    const r = await connect(page, { enrollToken: ENROLL, supernet: 'fmnist-ofa', budget: { memoryMB }, eps: ['webgl', 'wasm'], profile: false });
    assert.equal(r.ep, 'wasm');
    const eps = r.eps as { ep: string; ok: boolean; reason: string | null }[];
    assert.equal(eps[0]!.ep, 'webgl');
    assert.equal(eps[0]!.ok, false);
    assert.ok((eps[0]!.reason ?? '').length > 0, 'the failure is reported with its reason');
    const info = (await web.admin.devices()).devices.find((d) => d.id === r.deviceId)!;
    assert.equal((info.facts as { ep: string }).ep, 'wasm');
    assert.equal((info.facts as { eps: { ep: string; ok: boolean }[] }).eps[0]!.ok, false, 'the registry is told which EP failed');
  });

  test('WebGPU (software adapter) gives outputs within 1e-3 of wasm on the same subnet', async (t) => {
    const memoryMB = flatMemoryPredictor(staticMemoryModel(pkg.arch, pkg.space.image_size_list)).memoryMB(pkg.space.min()) * 1.02;
    const gpuPage = await step('open the page', agentPage(await browser.newContext(), web.url));
    const probe = (await step('probe webgpu', gpuPage.evaluate(() => (window as unknown as { nestswap: { probe(o: unknown): Promise<unknown> } }).nestswap.probe({ eps: ['webgpu'] })))) as { eps: { ok: boolean; reason: string | null }[] };
    if (!probe.eps[0]!.ok) return t.skip(`WebGPU does not run in this chromium: ${probe.eps[0]!.reason}`);
    const opts = { enrollToken: ENROLL, supernet: 'fmnist-ofa', budget: { memoryMB }, profile: false };
    const g = await step('connect on webgpu', connect(gpuPage, { ...opts, eps: ['webgpu'] }));
    assert.equal(g.ep, 'webgpu');
    const cpuPage = await agentPage(await browser.newContext(), web.url);
    const c = await connect(cpuPage, { ...opts, eps: ['wasm'] });
    assert.equal(c.ep, 'wasm');
    const batch = imgs.input.subarray(0, 784 * 20);
    const a = await step('infer on webgpu', pageInfer(gpuPage, batch, 20));
    const b = await pageInfer(cpuPage, batch, 20);
    assert.equal(a.subnetId, b.subnetId, 'the same budget picks the same subnet');
    const d = maxAbsDiff(a.logits, b.logits);
    t.diagnostic(`webgpu vs wasm on ${a.subnetId}: max |Δlogit| = ${d}`);
    assert.ok(d <= 1e-3, `webgpu vs wasm: ${d}`);
  });
});
