/**
 * onnxruntime-web as the agent's session backend. Its modules are loaded from the registry
 * (`<agent.js>/../ort/`, with their wasm files next to them), each once per page, only when an EP
 * needs it: wasm runs on the plain build (`ort.wasm.min.mjs`), webgpu and webnn on the JSEP build
 * (`ort.min.mjs`). A page that asks only for wasm so never fetches the 28 MB JSEP binary, and Chromium
 * optimises the smaller plain one sooner; at steady state the two run the wasm EP within 7% of each
 * other (docs/benchmarks.md#browser-agent). They are separate module instances (their own wasm memory
 * and threads) and report the same version.
 */
import type * as OrtApi from 'onnxruntime-common';
import type { Backend } from '../runtime/session.js';

export type OrtWeb = typeof OrtApi & { env: typeof OrtApi.env & { wasm: { wasmPaths?: string; numThreads?: number; proxy?: boolean } } };

/** The module file each EP runs on. */
export const ORT_MODULE_FOR: Readonly<Record<string, string>> = Object.freeze({ wasm: 'ort.wasm.min.mjs', cpu: 'ort.wasm.min.mjs', webgpu: 'ort.min.mjs', webnn: 'ort.min.mjs' });

/** onnxruntime-web modules of this page, loaded on first use; `forEp` gives the one an EP runs on. */
export interface WebOrt {
  /** wasm threads of every module: up to `threads` (default min(4, cores)) when cross-origin isolated, else 1 */
  readonly threads: number;
  forEp(ep: string): Promise<OrtWeb>;
}

const modules = new Map<string, Promise<OrtWeb>>();

/** The page's onnxruntime-web modules from `base` (a URL ending in /ort/). */
export function webOrt(base: string, threads?: number): WebOrt {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  const cores = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency ?? 1;
  const n = isolated ? Math.max(1, threads ?? Math.min(4, cores)) : 1;
  return {
    threads: n,
    forEp(ep) {
      const file = ORT_MODULE_FOR[ep] ?? 'ort.min.mjs';
      const url = `${base}${file}`;
      let p = modules.get(url);
      if (!p) {
        p = (async () => {
          const ort = (await import(/* @vite-ignore */ url)) as OrtWeb;
          ort.env.wasm.wasmPaths = base;
          ort.env.wasm.numThreads = n;
          return serializeRuns(ort);
        })();
        modules.set(url, p);
        p.catch(() => modules.delete(url));
      }
      return p;
    },
  };
}

/**
 * onnxruntime-web (1.30, the JSEP build that carries WebGPU and WebNN) allows one run at a time in a
 * page, across all its sessions: a run started while another is in flight fails with "Session already
 * started" (on WebGPU the first run compiles shaders for seconds, so the serving model, a calibration
 * and the accuracy predictor do meet). Every session made through the returned module queues its runs
 * and its release behind the one in flight, in call order; a failed run does not block the next. Both
 * builds go through it: the queue is per module, so a wasm run need not wait for a WebGPU one.
 */
export function serializeRuns(ort: OrtWeb): OrtWeb {
  let tail: Promise<unknown> = Promise.resolve();
  const queued = <T>(f: () => Promise<T>): Promise<T> => {
    const p = tail.then(f, f);
    tail = p.catch(() => undefined);
    return p;
  };
  const create = ort.InferenceSession.create.bind(ort.InferenceSession) as (...a: unknown[]) => Promise<OrtApi.InferenceSession>;
  const wrap = (s: OrtApi.InferenceSession): OrtApi.InferenceSession =>
    new Proxy(s, {
      get(target, key) {
        if (key === 'run') return (...a: Parameters<OrtApi.InferenceSession['run']>) => queued(() => target.run(...a));
        if (key === 'release') return () => queued(() => target.release());
        const v: unknown = Reflect.get(target, key, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const InferenceSession = { create: async (...a: unknown[]) => wrap(await create(...a)) } as unknown as OrtWeb['InferenceSession'];
  return { ...ort, InferenceSession };
}

/** A backend whose sessions run on `ep` ('wasm', 'webgpu', 'webnn'). */
export function webBackend(ort: OrtWeb, ep: string): Backend {
  return { name: 'web', ort: ort as unknown as Backend['ort'], version: ort.env.versions.web ?? ort.env.versions.common, defaultEp: ep };
}
