/** Backend: onnxruntime-node (native CPU, and WebGPU where the platform has it). */
import * as ort from 'onnxruntime-node';
import type { Backend } from '../session.js';

// onnxruntime-node's Linux build sends usage telemetry: every few seconds it starts threads that
// resolve and contact an outside host (seen with strace; ~2% of a core on an idle agent, and DNS
// traffic from devices that may be offline). onnxruntime reads this variable when its environment
// is created, on the first session, after this module has run. Set it to 0 to keep the default.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export const nodeBackend: Backend = {
  name: 'node',
  ort: ort as unknown as Backend['ort'],
  version: ort.env.versions.node ?? ort.env.versions.common,
  defaultEp: 'cpu',
};

/** Execution providers this onnxruntime-node build bundles (not necessarily usable here: try them). */
export function bundledEps(): string[] {
  return ort.listSupportedBackends().filter((b) => b.bundled).map((b) => b.name);
}
