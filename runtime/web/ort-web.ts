/** Backend: onnxruntime-web (WebAssembly; the same build browsers use). */
import * as ort from 'onnxruntime-web';
import type { Backend } from '../session.js';

export const webBackend: Backend = {
  name: 'web',
  ort: ort as unknown as Backend['ort'],
  version: ort.env.versions.web ?? ort.env.versions.common,
  defaultEp: 'wasm',
};
