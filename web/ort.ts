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
    return ort;
  })();
  return loading;
}

/** A backend whose sessions run on `ep` ('wasm', 'webgpu', 'webnn'). */
export function webBackend(ort: OrtWeb, ep: string): Backend {
  return { name: 'web', ort: ort as unknown as Backend['ort'], version: ort.env.versions.web ?? ort.env.versions.common, defaultEp: ep };
}
