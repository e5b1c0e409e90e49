/**
 * Browser agent benchmark → JSON on stdout: Debian's chromium (playwright-core, headless) against a
 * registry started here on 127.0.0.1 with the fmnist-ofa package.
 *
 *   node dist/bench/browser.js [--runs 200] [--profile-ms 20000] [--no-webgpu]
 *
 * Figures, measured side by side in one run:
 *  - single-sample inference, browser wasm (the agent, with its threads) vs onnxruntime-node with 1 thread
 *    and with the same threads, on the same subnets (smallest, middle, largest of fmnist-ofa): median, p99
 *    and the ratio to onnxruntime-node's faster thread count (target ≤ 1.5× for the largest), and the
 *    ratio at the same threads, in alternating blocks so all see the same machine;
 *  - first load (page open → serving) cold (fresh browser profile: bundle, onnxruntime-web, package
 *    download, BN calibration) vs cached (a reload: everything from the caches), in seconds;
 *  - profile wall time in the page (wasm, `--profile-ms` budget);
 *  - swap decision → serving in the page with cached BN statistics (target ≤ 100 ms), median of swaps
 *    alternating between two subnets;
 *  - WebGPU (software adapter here) vs wasm on the smallest subnet (reported, not a target);
 *  - on bare sessions (bench/browser-kernels.ts): onnxruntime-web's plain build vs its JSEP build on
 *    the served largest subnet, that subnet on 1 thread vs the agent's threads, and a GEMM-only graph
 *    browser wasm vs onnxruntime-node at 1 thread and at the agent's threads.
 */
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import { WASM_DEPTHWISE_MATMUL } from '../runtime/materialize.js';
import { Materializer } from '../runtime/materializer.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { ModelSession } from '../runtime/session.js';
import type { SubnetConfig } from '../runtime/space.js';
import { kernelSections } from './browser-kernels.js';
import { chromiumPath, ENROLL, FMNIST, launchChromium, startWebRegistry } from '../test/browser-fixtures.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' }, 'profile-ms': { type: 'string', default: '20000' }, 'no-webgpu': { type: 'boolean', default: false } } });
const RUNS = Number(values.runs);

function stats(xs: number[]): { medianMs: number; p99Ms: number; n: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return { medianMs: +q(0.5).toFixed(4), p99Ms: +q(0.99).toFixed(4), n: s.length };
}

type W = { nestswapReady: Promise<unknown>; nestswap: { connect(o: unknown): Promise<unknown> }; agent: Agent };
type Agent = { infer(x: Float32Array, n: number): Promise<unknown>; switchTo(c: unknown, o?: unknown): Promise<{ outcome: string; timings: { totalMs: number } | null; statsCached: boolean | null; onnxCached: boolean }>; wasmThreads: number; profile: { wallMs: number | null } | null; ep: string };

async function openAgent(page: Page, url: string, opts: Record<string, unknown>): Promise<{ ms: number; threads: number; profileMs: number | null; ep: string }> {
  const t0 = Date.now();
  await page.goto(`${url}/v1/web/`);
  const r = await page.evaluate(async (o) => {
    const w = window as unknown as W;
    await w.nestswapReady;
    w.agent = (await w.nestswap.connect(o)) as Agent;
    return { threads: w.agent.wasmThreads, profileMs: w.agent.profile?.wallMs ?? null, ep: w.agent.ep };
  }, opts);
  return { ms: Date.now() - t0, ...r };
}

/** Single-sample runs of the serving subnet in the page, timed there. */
function pageTimes(page: Page, runs: number): Promise<number[]> {
  return page.evaluate(async (n) => {
    const a = (window as unknown as W).agent;
    const x = Float32Array.from({ length: 784 }, (_, i) => (i % 17) / 17);
    for (let i = 0; i < 10; i++) await a.infer(x, 1);
    const ts: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await a.infer(x, 1);
      ts.push(performance.now() - t0);
    }
    return ts;
  }, runs);
}

const pageSwitch = (page: Page, cfg: SubnetConfig) => page.evaluate((c) => (window as unknown as W).agent.switchTo(c, { pin: true }), cfg as unknown as Record<string, unknown>);

async function main(): Promise<void> {
  if (!chromiumPath()) {
    process.stdout.write(`${JSON.stringify({ benchmark: 'browser', skipped: 'chromium is not installed' })}\n`);
    return;
  }
  const pkg = await loadPackageDir(FMNIST);
  const web = await startWebRegistry();
  const browser = await launchChromium();
  const out: Record<string, unknown> = { benchmark: 'browser', date: new Date().toISOString(), chromium: browser.version(), runs: RUNS };
  try {
    // cold first load: a fresh browser profile, no profile measurement (that is timed below)
    const coldCtx = await browser.newContext();
    const cold = await coldCtx.newPage();
    const c1 = await openAgent(cold, web.url, { enrollToken: ENROLL, supernet: 'fmnist-ofa', eps: ['wasm'], profile: false });
    const c2 = await openAgent(cold, web.url, { supernet: 'fmnist-ofa', eps: ['wasm'], profile: false });
    out.firstLoad = { coldS: +(c1.ms / 1000).toFixed(2), cachedS: +(c2.ms / 1000).toFixed(2), note: 'page open → serving the largest subnet (no budget, no profile); cold includes the package download and BN calibration' };

    // profile wall time in the page
    const profCtx = await browser.newContext();
    const prof = await openAgent(await profCtx.newPage(), web.url, { enrollToken: ENROLL, supernet: 'fmnist-ofa', eps: ['wasm'], profile: { budgetMs: Number(values['profile-ms']) } });
    out.profile = { budgetMs: Number(values['profile-ms']), wallS: prof.profileMs === null ? null : +(prof.profileMs / 1000).toFixed(1) };

    // browser wasm (the agent, its threads) vs onnxruntime-node on the same subnets at 1 thread and at
    // the agent's threads, alternating blocks; the headline ratio is against onnxruntime-node's faster one
    const threads = c2.threads;
    const nodeThreads = threads === 1 ? [1] : [1, threads];
    const mid = pkg.space.uniform(pkg.space.ks_list[1]!, pkg.space.expand_list[1]!, pkg.space.depth_list[1]!, pkg.space.image_size_list[1]!);
    const subnets: [string, SubnetConfig][] = [['smallest', pkg.space.min()], ['middle', mid], ['largest', pkg.space.max()]];
    const m = new Materializer(pkg, nodeBackend);
    const rows: Record<string, unknown>[] = [];
    const x = Float32Array.from({ length: 784 }, (_, i) => (i % 17) / 17);
    for (const [name, cfg] of subnets) {
      await pageSwitch(cold, cfg);
      const bytes = (await m.materialize(cfg, {})).bytes;
      const sessions = await Promise.all(nodeThreads.map((t) => ModelSession.create(nodeBackend, bytes, { threads: t, allowSpinning: false })));
      for (const s of sessions) for (let i = 0; i < 10; i++) await s.runFirst(x, [1, 1, 28, 28]);
      const web: number[] = [];
      const node: number[][] = sessions.map(() => []);
      for (let b = 0; b < 4; b++) {
        web.push(...(await pageTimes(cold, RUNS / 4)));
        for (const [k, s] of sessions.entries())
          for (let i = 0; i < RUNS / 4; i++) {
            const t0 = performance.now();
            await s.runFirst(x, [1, 1, 28, 28]);
            node[k]!.push(performance.now() - t0);
          }
      }
      for (const s of sessions) await s.release();
      const w = stats(web);
      const n = node.map((ts, k) => ({ threads: nodeThreads[k]!, ...stats(ts) }));
      const fastest = n.reduce((a, b) => (b.medianMs < a.medianMs ? b : a));
      const same = n.find((r) => r.threads === threads)!;
      rows.push({
        subnet: name,
        subnetId: pkg.space.id(cfg),
        browserWasm: { threads, ...w },
        onnxruntimeNode: n,
        ratio: +(w.medianMs / fastest.medianMs).toFixed(2),
        ratioSameThreads: +(w.medianMs / same.medianMs).toFixed(2),
      });
    }
    out.inference = { threads, subnets: rows, target: 'largest subnet ratio ≤ 1.5', note: 'ratio: against onnxruntime-node at its faster thread count; ratioSameThreads: at the browser agent\'s' };

    // swap decision → serving with cached statistics: alternate between two subnets already calibrated
    const a = pkg.space.min();
    const b = mid;
    const swaps: number[] = [];
    const how = { fromOnnxCache: 0, builtFromCachedStats: 0, waitedForCalibration: 0 };
    for (let i = 0; i < 10; i++) {
      const r = await pageSwitch(cold, i % 2 ? a : b);
      if (r.outcome === 'swapped' && r.timings) {
        swaps.push(r.timings.totalMs);
        if (r.onnxCached) how.fromOnnxCache++;
        else if (r.statsCached) how.builtFromCachedStats++;
        else how.waitedForCalibration++;
      }
    }
    out.swap = { decisionToServing: stats(swaps), ...how, target: 'median ≤ 100 ms with cached statistics' };

    // the largest subnet with the wasm depthwise lowering off (plain Conv graph), side by side with it on
    const plainPage = await coldCtx.newPage();
    await openAgent(plainPage, web.url, { supernet: 'fmnist-ofa', eps: ['wasm'], profile: false, depthwiseMatMul: false });
    await pageSwitch(plainPage, pkg.space.max());
    await pageSwitch(cold, pkg.space.max());
    const plain: number[] = [];
    const lowered: number[] = [];
    for (let blk = 0; blk < 4; blk++) {
      plain.push(...(await pageTimes(plainPage, RUNS / 4)));
      lowered.push(...(await pageTimes(cold, RUNS / 4)));
    }
    await plainPage.close();
    const pl = stats(plain);
    const lo = stats(lowered);
    out.depthwiseLowering = { subnet: 'largest', plainConv: pl, lowered: lo, speedup: +(pl.medianMs / lo.medianMs).toFixed(2) };

    if (!values['no-webgpu']) {
      const gpuPage = await (await browser.newContext()).newPage();
      try {
        const g = await openAgent(gpuPage, web.url, { enrollToken: ENROLL, supernet: 'fmnist-ofa', eps: ['webgpu'], profile: false, budget: {} });
        await pageSwitch(gpuPage, a);
        await pageSwitch(cold, a);
        const gw = stats(await pageTimes(gpuPage, RUNS / 2));
        const ww = stats(await pageTimes(cold, RUNS / 2));
        out.webgpu = { ep: g.ep, subnet: 'smallest', webgpu: gw, wasm: ww, ratio: +(gw.medianMs / ww.medianMs).toFixed(2), note: 'software adapter (no GPU on this machine)' };
      } catch (err) {
        out.webgpu = { error: (err as Error).message.split('\n')[0] };
      }
    }

    // bare sessions, with every agent page closed (their idle probes and thread pools would share the
    // two cores): the plain vs the JSEP build of onnxruntime-web, and the GEMM-only ratio to onnxruntime-node
    await Promise.all(browser.contexts().map((c) => c.close()));
    const rawPage = await (await browser.newContext()).newPage();
    await rawPage.goto(`${web.url}/v1/web/`);
    const served = (await m.materialize(pkg.space.max(), { depthwiseMatMul: WASM_DEPTHWISE_MATMUL })).bytes;
    Object.assign(out, await kernelSections(rawPage, { bytes: served, dims: [1, 1, 28, 28], subnet: 'largest' }, threads, RUNS, stats));
  } finally {
    await browser.close();
    await web.close();
  }
  process.stdout.write(`${JSON.stringify(out, null, 1)}\n`);
}

await main();
