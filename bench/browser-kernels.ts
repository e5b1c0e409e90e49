/**
 * Side-by-side measurements under the browser benchmark's inference ratio, on bare onnxruntime-web
 * sessions in a page (no agent around them):
 *  - wasmBuilds: the served graph of a subnet on onnxruntime-web's plain build (what the agent's wasm
 *    EP runs on) and on its JSEP build (webgpu/webnn), alternating blocks, same threads;
 *  - browserThreads: the served graph on the plain build with 1 thread and with the agent's threads
 *    (two module instances in one page: onnxruntime-web fixes its thread count when its wasm starts);
 *  - gemmFloor: a graph of pointwise convolutions only (40 Conv 1×1 of 240↔40 channels on a 7×7 map,
 *    shaped like the largest subnet's late stages), browser wasm against onnxruntime-node at 1 thread
 *    and at the agent's threads. GEMM is the bulk of a subnet's work, so the ratio at each side's
 *    faster thread count is about the least a whole subnet can reach with onnxruntime-web's wasm
 *    kernels on this CPU.
 */
import type { Page } from 'playwright-core';
import { GraphBuilder } from '../runtime/onnx/graph.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { ModelSession } from '../runtime/session.js';

export interface Stats {
  medianMs: number;
  p99Ms: number;
  n: number;
}

/** A chain of `pairs` × (Conv 1×1 240→40, Relu, Conv 1×1 40→240, Relu) on [1, 240, 7, 7]. */
export function pointwiseChain(pairs = 20): { bytes: Uint8Array; dims: number[] } {
  const g = new GraphBuilder('pointwise-chain');
  const w = (n: number, s: number, seed: number) => Float32Array.from({ length: n }, (_, i) => (((((i + seed) * 2654435761) >>> 0) % 1000) / 1000 - 0.5) * s);
  let x = g.reserve('x');
  for (let i = 0; i < pairs; i++) {
    const last = i === pairs - 1;
    x = g.op('Conv', [x, g.floatTensor(`a${i}`, w(40 * 240, 0.06, i), [40, 240, 1, 1]), g.floatTensor(`ab${i}`, w(40, 0.1, i), [40])], { kernel_shape: [1, 1], group: { int: 1 } });
    x = g.op('Relu', [x]);
    x = g.op('Conv', [x, g.floatTensor(`b${i}`, w(40 * 240, 0.15, i + 7), [240, 40, 1, 1]), g.floatTensor(`bb${i}`, w(240, 0.1, i), [240])], { kernel_shape: [1, 1], group: { int: 1 } });
    x = g.op('Relu', [x], {}, last ? 'y' : undefined);
  }
  const dims = [1, 240, 7, 7];
  return { bytes: g.build([{ name: 'x', dims }], [{ name: 'y', dims }]), dims };
}

/**
 * Opens a bare session of `bytes` on module `file` of the registry's /v1/web/ort/ in `page`
 * (window.rawSessions[key]); one module instance per thread count (the query string keeps them apart).
 */
async function openRaw(page: Page, key: string, file: string, bytes: Uint8Array, threads: number): Promise<void> {
  await page.evaluate(
    async ({ key, file, b64, threads }) => {
      const w = window as unknown as { rawSessions?: Record<string, unknown> };
      const ort = await import(`/v1/web/ort/${file}?threads=${threads}`);
      ort.env.wasm.wasmPaths = `${location.origin}/v1/web/ort/`;
      ort.env.wasm.numThreads = threads;
      const model = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      (w.rawSessions ??= {})[key] = { ort, s };
    },
    { key, file, b64: Buffer.from(bytes).toString('base64'), threads },
  );
}

/**
 * `runs` timed single runs of window.rawSessions[key] after `warm` untimed ones. Chromium runs new wasm
 * code on its baseline compiler and optimises hot functions later; the bigger JSEP binary takes longer
 * (its first runs were ~3× slower than its steady state), so each session is warmed for 400 runs first.
 */
function rawTimes(page: Page, key: string, dims: number[], runs: number, warm = 10): Promise<number[]> {
  return page.evaluate(
    async ({ key, dims, runs, warm }) => {
      type Raw = { ort: { Tensor: new (t: string, d: Float32Array, dims: number[]) => unknown }; s: { inputNames: string[]; run(f: Record<string, unknown>): Promise<unknown> } };
      const { ort, s } = (window as unknown as { rawSessions: Record<string, Raw> }).rawSessions[key]!;
      const n = dims.reduce((a, b) => a * b, 1);
      const feeds = { [s.inputNames[0]!]: new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => (i % 17) / 17), dims) };
      for (let i = 0; i < warm; i++) await s.run(feeds);
      const ts: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await s.run(feeds);
        ts.push(performance.now() - t0);
      }
      return ts;
    },
    { key, dims, runs, warm },
  );
}

async function nodeTimes(s: ModelSession, dims: number[], runs: number): Promise<number[]> {
  const x = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => (i % 17) / 17);
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.runFirst(x, dims);
    ts.push(performance.now() - t0);
  }
  return ts;
}

async function releaseRaw(page: Page, key: string): Promise<void> {
  await page.evaluate(async (key) => {
    const raw = (window as unknown as { rawSessions: Record<string, { s: { release(): Promise<void> } }> }).rawSessions;
    await raw[key]!.s.release();
    delete raw[key];
  }, key);
}

/** Two keys' sessions timed in alternating blocks after 400 warm-up runs each. */
async function alternate(page: Page, a: string, b: string, dims: number[], runs: number): Promise<[number[], number[]]> {
  await rawTimes(page, a, dims, 0, 400);
  await rawTimes(page, b, dims, 0, 400);
  const xa: number[] = [];
  const xb: number[] = [];
  for (let i = 0; i < 4; i++) {
    xa.push(...(await rawTimes(page, a, dims, runs / 4)));
    xb.push(...(await rawTimes(page, b, dims, runs / 4)));
  }
  return [xa, xb];
}

/** The measurements above; `served` is the subnet graph as the agent serves it on wasm with `threads`. */
export async function kernelSections(page: Page, served: { bytes: Uint8Array; dims: number[]; subnet: string }, threads: number, runs: number, stats: (xs: number[]) => Stats): Promise<Record<string, unknown>> {
  await openRaw(page, 'plain', 'ort.wasm.min.mjs', served.bytes, threads);
  await openRaw(page, 'jsep', 'ort.min.mjs', served.bytes, threads);
  const [plain, jsep] = await alternate(page, 'plain', 'jsep', served.dims, runs);
  await releaseRaw(page, 'jsep');
  const p = stats(plain);
  const j = stats(jsep);
  const wasmBuilds = { subnet: served.subnet, threads, plainBuild: p, jsepBuild: j, jsepOverPlain: +(j.medianMs / p.medianMs).toFixed(2), note: 'bare sessions, wasm EP, both modules in one page, each warmed 400 runs; the agent runs wasm on the plain build' };

  let browserThreads: Record<string, unknown> | undefined;
  if (threads !== 1) {
    await openRaw(page, 'plain1', 'ort.wasm.min.mjs', served.bytes, 1);
    const [one, many] = await alternate(page, 'plain1', 'plain', served.dims, runs);
    await releaseRaw(page, 'plain1');
    const o = stats(one);
    const m = stats(many);
    browserThreads = { subnet: served.subnet, oneThread: o, [`threads${threads}`]: m, speedup: +(o.medianMs / m.medianMs).toFixed(2) };
  }
  await releaseRaw(page, 'plain');

  const chain = pointwiseChain();
  const gemmFloor: Record<string, unknown>[] = [];
  for (const t of threads === 1 ? [1] : [1, threads]) {
    const key = `gemm${t}`;
    await openRaw(page, key, 'ort.wasm.min.mjs', chain.bytes, t);
    const s = await ModelSession.create(nodeBackend, chain.bytes, { threads: t, allowSpinning: false });
    await nodeTimes(s, chain.dims, 10);
    await rawTimes(page, key, chain.dims, 0, 400);
    const web: number[] = [];
    const node: number[] = [];
    for (let b = 0; b < 4; b++) {
      web.push(...(await rawTimes(page, key, chain.dims, runs / 4)));
      node.push(...(await nodeTimes(s, chain.dims, runs / 4)));
    }
    await s.release();
    await releaseRaw(page, key);
    const w = stats(web);
    const n = stats(node);
    gemmFloor.push({ threads: t, browserWasm: w, onnxruntimeNode: n, ratio: +(w.medianMs / n.medianMs).toFixed(2) });
  }
  return { wasmBuilds, ...(browserThreads ? { browserThreads } : {}), gemmFloor: { graph: '40 × Conv 1×1 (240↔40 channels) + Relu on 7×7', macs: 40 * 240 * 40 * 49, byThreads: gemmFloor } };
}
