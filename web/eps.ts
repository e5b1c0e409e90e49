/**
 * Execution providers of this browser: each of webgpu, webnn and wasm is tried with its own session
 * (onnxruntime-web 1.30 fails a whole session for ['webnn', 'wasm'] when WebNN has no context, so a
 * list would hide which one failed). Each is checked against wasm on the same model; the result says
 * which ran and why each other one did not. Nothing is dropped silently.
 */
import { GraphBuilder } from '../runtime/onnx/graph.js';
import { ModelSession } from '../runtime/session.js';
import { webBackend, type WebOrt } from './ort.js';

export const WEB_EPS = ['webgpu', 'webnn', 'wasm'] as const;
export type WebEp = (typeof WEB_EPS)[number];

export interface EpReport {
  ep: string;
  ok: boolean;
  /** why it is not used (absent API, failed session, wrong output, forced off); null when it ran */
  reason: string | null;
  /** max |output − wasm output| on the probe model */
  maxAbsDiff?: number;
}

/** A small graph with a convolution, as subnets have: y = relu(conv(x)) + 1. */
function probeModel(): Uint8Array {
  const g = new GraphBuilder('ep-probe');
  const x = g.reserve('x');
  const w = Float32Array.from({ length: 4 * 2 * 3 * 3 }, (_, i) => ((i * 7) % 11) / 11 - 0.5);
  const c = g.op('Conv', [x, g.floatTensor('w', w, [4, 2, 3, 3])], { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: { int: 1 } });
  const r = g.op('Relu', [c]);
  g.op('Add', [r, g.floatTensor('one', Float32Array.of(1), [1])], {}, 'y');
  return g.build([{ name: 'x', dims: [1, 2, 6, 6] }], [{ name: 'y', dims: [1, 4, 6, 6] }]);
}

function apiMissing(ep: string): string | null {
  const nav = globalThis.navigator as { gpu?: unknown; ml?: unknown } | undefined;
  if (ep === 'webgpu' && !nav?.gpu) return 'navigator.gpu is absent (this browser has no WebGPU, or it is disabled)';
  if (ep === 'webnn' && !nav?.ml) return 'navigator.ml is absent (this browser has no WebNN)';
  return null;
}

async function tryEp(orts: WebOrt, ep: string, model: Uint8Array, input: Float32Array): Promise<{ out: Float32Array } | { reason: string }> {
  const missing = apiMissing(ep);
  if (missing) return { reason: missing };
  let s: ModelSession | undefined;
  try {
    s = await ModelSession.create(webBackend(await orts.forEp(ep), ep), model, { ep });
    const r = await s.runFirst(input, [1, 2, 6, 6]);
    return { out: Float32Array.from(r.data) };
  } catch (err) {
    return { reason: (err as Error).message };
  } finally {
    await s?.release().catch(() => undefined);
  }
}

/**
 * Probes every EP in `order`; `disabled` names EPs that must not be used (they are reported as such).
 * An EP whose output differs from wasm's by more than `tolerance` is refused too.
 */
export async function probeEps(orts: WebOrt, opts: { order?: readonly string[]; disabled?: readonly string[]; tolerance?: number } = {}): Promise<EpReport[]> {
  const order = opts.order ?? WEB_EPS;
  const model = probeModel();
  const input = Float32Array.from({ length: 72 }, (_, i) => ((i * 13) % 17) / 17 - 0.3);
  const ref = await tryEp(orts, 'wasm', model, input);
  const tolerance = opts.tolerance ?? 1e-3;
  const out: EpReport[] = [];
  for (const ep of order) {
    if (opts.disabled?.includes(ep)) {
      out.push({ ep, ok: false, reason: 'disabled by the page (connect option disableEps)' });
      continue;
    }
    const r = ep === 'wasm' ? ref : await tryEp(orts, ep, model, input);
    if ('reason' in r) {
      out.push({ ep, ok: false, reason: r.reason });
      continue;
    }
    if (!('out' in ref)) {
      out.push({ ep, ok: true, reason: null });
      continue;
    }
    let d = 0;
    for (let i = 0; i < r.out.length; i++) d = Math.max(d, Math.abs(r.out[i]! - ref.out[i]!));
    out.push(d <= tolerance ? { ep, ok: true, reason: null, maxAbsDiff: d } : { ep, ok: false, reason: `output differs from wasm by ${d.toExponential(2)} (> ${tolerance})`, maxAbsDiff: d });
  }
  return out;
}
