/** Backend: onnxruntime-node (native CPU, and WebGPU where the platform has it). */
import * as ort from 'onnxruntime-node';
import { COMPUTE_MS, type Backend } from '../session.js';

// onnxruntime-node's Linux build sends usage telemetry: every few seconds it starts threads that
// resolve and contact an outside host (seen with strace; ~2% of a core on an idle agent, and DNS
// traffic from devices that may be offline). onnxruntime reads this variable when its environment
// is created, on the first session, after this module has run. Set it to 0 to keep the default.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

/**
 * onnxruntime-node runs a session in a setImmediate callback, so the time from `run()` to its
 * result also counts whatever else the event loop does first (HTTP parsing, other requests). To
 * report the run's own time, as the worker backend does, a timestamp is taken in an immediate
 * queued just before onnxruntime's (immediates run in order, and onnxruntime-common queues its
 * own synchronously inside `run()`, so nothing can come between), and the end is taken when the
 * result arrives (promise continuations run right after that immediate). Runs in flight together
 * queue their immediates in pairs, so each start still falls right before its own run.
 */
function timed(session: ort.InferenceSession): ort.InferenceSession {
  const run = session.run.bind(session) as (...a: unknown[]) => Promise<ort.InferenceSession.OnnxValueMapType>;
  Object.defineProperty(session, 'run', {
    value: async (...args: unknown[]) => {
      let start = 0;
      setImmediate(() => (start = performance.now()));
      const res = await run(...args);
      (res as { [COMPUTE_MS]?: number })[COMPUTE_MS] = performance.now() - start;
      return res;
    },
  });
  return session;
}

const facade = {
  InferenceSession: {
    create: async (...args: Parameters<typeof ort.InferenceSession.create>) => timed(await (ort.InferenceSession.create as (...a: unknown[]) => Promise<ort.InferenceSession>)(...args)),
  },
  Tensor: ort.Tensor,
  env: ort.env,
};

export const nodeBackend: Backend = {
  name: 'node',
  ort: facade as unknown as Backend['ort'],
  version: ort.env.versions.node ?? ort.env.versions.common,
  defaultEp: 'cpu',
};

/** Execution providers this onnxruntime-node build bundles (not necessarily usable here: try them). */
export function bundledEps(): string[] {
  return ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name);
}
