/**
 * Worker-thread side of the worker backend (see ort-worker.ts): hosts onnxruntime-node sessions
 * off the main thread. onnxruntime-node's `loadModel` and `run` are synchronous native calls on
 * the calling thread, so here they block only this worker, never the thread serving HTTP.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { BnStatsMap } from '../calibrate.js';
import { buildSubnet, SubnetWeights } from '../materialize.js';
import { SupernetPackage, type Manifest } from '../package.js';
import type { SubnetConfig } from '../space.js';

export type WorkerRequest =
  | { t: 'create'; rid: number; bytes: Uint8Array; options: ort.InferenceSession.SessionOptions }
  /** a verified package's files but its calibration set (the weights SharedArrayBuffer-backed: shared, not copied), kept under `key` */
  | { t: 'package'; rid: number; key: string; manifest: Manifest; files: Map<string, Uint8Array>; location: string }
  /** materialize a subnet of package `key` here (BN folded with `stats`) and open its session */
  | { t: 'build'; rid: number; key: string; config: SubnetConfig; stats?: BnStatsMap; options: ort.InferenceSession.SessionOptions }
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
const packages = new Map<string, SubnetWeights>();
let nextSid = 1;

async function open(bytes: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<CreatedReply> {
  const s = await ort.InferenceSession.create(bytes, options);
  const sid = nextSid++;
  sessions.set(sid, s);
  return { sid, inputNames: [...s.inputNames], outputNames: [...s.outputNames], inputMetadata: [...s.inputMetadata], outputMetadata: [...s.outputMetadata] };
}

async function handle(m: WorkerRequest): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> {
  switch (m.t) {
    case 'create':
      return { value: await open(m.bytes, m.options) };
    case 'package':
      if (!packages.has(m.key)) packages.set(m.key, new SubnetWeights(SupernetPackage.fromVerifiedFiles(m.manifest, m.files, m.location, true)));
      return { value: null };
    case 'build': {
      const w = packages.get(m.key);
      if (!w) throw new Error(`package ${m.key} was not sent to this worker`);
      const { bytes } = buildSubnet(w, m.config, m.stats ? { mode: 'fold', stats: m.stats } : { mode: 'fold' });
      return { value: await open(bytes, m.options) };
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
