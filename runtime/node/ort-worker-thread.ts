/**
 * Worker-thread side of the worker backend (see ort-worker.ts): hosts onnxruntime-node sessions
 * off the main thread. onnxruntime-node's `loadModel` and `run` are synchronous native calls on
 * the calling thread, so here they block only this worker, never the thread serving HTTP.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

export type WorkerRequest =
  | { t: 'create'; rid: number; bytes: Uint8Array; options: ort.InferenceSession.SessionOptions }
  | { t: 'run'; rid: number; sid: number; input: Float32Array; dims: number[]; outputs: string[] }
  | { t: 'release'; rid: number; sid: number };

export type WorkerReply =
  | { rid: number; ok: true; value: unknown }
  | { rid: number; ok: false; message: string };

export interface CreatedReply {
  sid: number;
  inputNames: string[];
  outputNames: string[];
  inputMetadata: ort.InferenceSession.ValueMetadata[];
  outputMetadata: ort.InferenceSession.ValueMetadata[];
}

export interface RunReply {
  /** the run's time in this worker (ms), including onnxruntime-node's own wrapping */
  ms: number;
  outputs: Record<string, { data: Float32Array; dims: readonly number[] }>;
}

const port = parentPort;
if (!port) throw new Error('ort-worker-thread must run in a worker thread.');

const sessions = new Map<number, ort.InferenceSession>();
let nextSid = 1;

async function handle(m: WorkerRequest): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> {
  switch (m.t) {
    case 'create': {
      const s = await ort.InferenceSession.create(m.bytes, m.options);
      const sid = nextSid++;
      sessions.set(sid, s);
      const value: CreatedReply = { sid, inputNames: [...s.inputNames], outputNames: [...s.outputNames], inputMetadata: [...s.inputMetadata], outputMetadata: [...s.outputMetadata] };
      return { value };
    }
    case 'run': {
      const s = sessions.get(m.sid);
      if (!s) throw new Error(`session ${m.sid} is not open in this worker`);
      const t0 = performance.now();
      const res = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', m.input, m.dims) }, m.outputs);
      const ms = performance.now() - t0;
      const value: RunReply = { ms, outputs: {} };
      const transfer: ArrayBuffer[] = [];
      for (const name of m.outputs) {
        const t = res[name]!;
        // outputs own fresh buffers: hand them over instead of copying
        const data = t.data as Float32Array;
        value.outputs[name] = { data, dims: [...t.dims] };
        if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !transfer.includes(data.buffer as ArrayBuffer)) transfer.push(data.buffer as ArrayBuffer);
      }
      return { value, transfer };
    }
    case 'release': {
      const s = sessions.get(m.sid);
      sessions.delete(m.sid);
      await s?.release();
      return { value: null };
    }
  }
}

port.on('message', (m: WorkerRequest) => {
  handle(m).then(
    ({ value, transfer }) => port.postMessage({ rid: m.rid, ok: true, value } satisfies WorkerReply, transfer ?? []),
    (e: unknown) => port.postMessage({ rid: m.rid, ok: false, message: e instanceof Error ? e.message : String(e) } satisfies WorkerReply),
  );
});
