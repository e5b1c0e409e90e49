// WebGPU execution provider check: same ONNX on cpu and webgpu, outputs compared, latency timed.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(import.meta.url);
const ort = require('./node_modules/onnxruntime-node');
const out = { node: process.version, ort: ort.env.versions, backends: ort.listSupportedBackends(), models: [] };
async function time(s, feeds, n) {
  for (let i = 0; i < 5; i++) await s.run(feeds);
  const t = [];
  for (let i = 0; i < n; i++) { const t0 = performance.now(); await s.run(feeds); t.push(performance.now() - t0); }
  t.sort((a, b) => a - b);
  return { median: t[t.length >> 1], p99: t[Math.min(t.length - 1, Math.ceil(0.99 * t.length) - 1)] };
}
for (const [file, dims] of [['tiny.onnx', [1, 1, 12, 12]], ['mbv3.onnx', [1, 3, 224, 224]], ['mbv3.onnx', [16, 3, 224, 224]]]) {
  const bytes = readFileSync(new URL(file, import.meta.url));
  const n = dims.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n); for (let i = 0; i < n; i++) x[i] = (i * 7919 % 1000) / 1000;
  const rec = { file, dims };
  const res = {};
  for (const ep of ['cpu', 'webgpu']) {
    try {
      const t0 = performance.now();
      const s = await ort.InferenceSession.create(bytes, { executionProviders: [ep] });
      const createMs = performance.now() - t0;
      const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', x, dims) };
      const r = await s.run(feeds);
      res[ep] = Array.from(r[s.outputNames[0]].data);
      rec[ep] = { createMs, ...(await time(s, feeds, 50)) };
      await s.release();
    } catch (e) { rec[ep] = { error: String(e && e.message || e) }; }
  }
  if (res.cpu && res.webgpu) {
    let d = 0, m = 0; res.cpu.forEach((v, i) => { d = Math.max(d, Math.abs(v - res.webgpu[i])); m = Math.max(m, Math.abs(v)); });
    rec.maxAbsDiff = d; rec.maxAbsLogit = m;
  }
  out.models.push(rec);
}
console.log(JSON.stringify(out, null, 1));
