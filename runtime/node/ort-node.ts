/** Backend: onnxruntime-node (native CPU, and WebGPU where the platform has it). */
import * as ort from 'onnxruntime-node';
import type { Backend } from '../session.js';

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
