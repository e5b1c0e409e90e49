/**
 * onnxruntime-web as the agent's session backend. The module is loaded from the registry
 * (`<agent.js>/../ort/ort.min.mjs`, with its wasm files next to it), once per page; the execution
 * provider is a property of the backend object, so one module serves several EPs side by side.
 */
import type * as OrtApi from 'onnxruntime-common';
import type { Backend } from '../runtime/session.js';

export type OrtWeb = typeof OrtApi & { env: typeof OrtApi.env & { wasm: { wasmPaths?: string; numThreads?: number; proxy?: boolean } } };

let loading: Promise<OrtWeb> | undefined;

/** Loads onnxruntime-web from `base` (a URL ending in /ort/); multi-threaded when the page is cross-origin isolated. */
export function loadOrt(base: string, threads?: number): Promise<OrtWeb> {
  loading ??= (async () => {
    const ort = (await import(/* @vite-ignore */ `${base}ort.min.mjs`)) as OrtWeb;
    ort.env.wasm.wasmPaths = base;
    const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
    const cores = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency ?? 1;
    ort.env.wasm.numThreads = isolated ? Math.max(1, threads ?? Math.min(4, cores)) : 1;
    return serializeRuns(ort);
  })();
  return loading;
}

/**
 * onnxruntime-web (1.30, the JSEP build that carries WebGPU and WebNN) allows one run at a time in a
 * page, across all its sessions: a run started while another is in flight fails with "Session already
 * started" (on WebGPU the first run compiles shaders for seconds, so the serving model, a calibration
 * and the accuracy predictor do meet). Every session made through the returned module queues its runs
 * and its release behind the one in flight, in call order; a failed run does not block the next.
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
