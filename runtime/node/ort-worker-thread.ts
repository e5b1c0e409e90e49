/**
 * Worker-thread side of the worker backend (see ort-worker.ts): hosts onnxruntime-node sessions
 * off the main thread. onnxruntime-node's `loadModel` and `run` are synchronous native calls on
 * the calling thread, so here they block only this worker, never the thread serving HTTP.
 */
import { accessSync, constants } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort, threadId } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { BnStatsMap } from '../calibrate.js';
import type { CandidateCheck, CheckedElsewhere } from '../hot-swap.js';
import { buildSubnet, SubnetWeights } from '../materialize.js';
import { SupernetPackage, type Manifest } from '../package.js';
import type { SubnetConfig } from '../space.js';

export type WorkerRequest =
  | { t: 'create'; rid: number; bytes: Uint8Array; options: ort.InferenceSession.SessionOptions }
  /** a verified package's files but its calibration set (the weights SharedArrayBuffer-backed: shared, not copied), kept under `key` */
  | { t: 'package'; rid: number; key: string; manifest: Manifest; files: Map<string, Uint8Array>; location: string }
  /** materialize a subnet of package `key` here (BN folded with `stats`) and open its session */
  | { t: 'build'; rid: number; key: string; config: SubnetConfig; stats?: BnStatsMap; options: ort.InferenceSession.SessionOptions }
  /**
   * materialize a subnet of package `key` (BN folded with `stats`), let onnxruntime optimise it with
   * `options` and save the optimised graph; reply with the optimised model's bytes (a PreparedReply)
   * and keep the optimising session open for one 'check'
   */
  | { t: 'prepare'; rid: number; key: string; config: SubnetConfig; stats?: BnStatsMap; options: ort.InferenceSession.SessionOptions }
  /** warm up and time a prepared session on `check` (a CheckedReply), then close it */
  | { t: 'check'; rid: number; sid: number; check: CheckSpec }
  | { t: 'run'; rid: number; sid: number; input: Float32Array; dims: number[]; outputs: string[] }
  | { t: 'release'; rid: number; sid: number }
  /** build (and drop) the smallest subnet of package `key`: the materializer's code is compiled before a real build needs it */
  | { t: 'warm'; rid: number; key: string };

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

/** How a prepared candidate is warmed up and checked where it is built: the hot swapper's CandidateCheck. */
export type CheckSpec = CandidateCheck;

export interface PreparedReply {
  /** the optimised ONNX (load it with graph optimisation 'disabled': it is already optimised, for this machine),
   * or the raw ONNX when the optimised graph could not be saved (`optimized` false) */
  bytes: Uint8Array;
  optimized: boolean;
  /** the optimising session, open for one 'check' */
  sid: number;
}

/** The check runs' times (ms) and the last run's first output, as the hot swapper takes them. */
export type CheckedReply = CheckedElsewhere;

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
let nextFile = 1;

function packageOf(key: string): SubnetWeights {
  const w = packages.get(key);
  if (!w) throw new Error(`package ${key} was not sent to this worker`);
  return w;
}

function sessionOf(sid: number): ort.InferenceSession {
  const s = sessions.get(sid);
  if (!s) throw new Error(`session ${sid} is not open in this worker`);
  return s;
}

function builtWith(m: { key: string; config: SubnetConfig; stats?: BnStatsMap }): Uint8Array {
  const w = packageOf(m.key);
  // configs cross threads as plain data: validated again here (clear error naming the field)
  const cfg = w.pkg.space.parse(m.config);
  return buildSubnet(w, cfg, m.stats ? { mode: 'fold', stats: m.stats } : { mode: 'fold' }).bytes;
}

let saveDir: string | undefined;
/**
 * Where an optimised graph lives between onnxruntime saving it and this thread reading it back:
 * $TMPDIR when it is set; otherwise /dev/shm where it is a writable directory (memory-backed: the
 * file is gone a moment later; session creation with the save measured 25.5 vs 28.5 ms median to a
 * disk /tmp over the swap bench's four fmnist-ofa subnets, timed alone); otherwise the system's temp dir.
 */
function chooseSaveDir(): string {
  if (process.env.TMPDIR) return tmpdir();
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/**
 * onnxruntime optimises a graph while it creates the session (fusions, constant folding, the
 * NCHWc layout for CPU convolutions): most of a session's creation time. Done here and saved, the
 * graph loads elsewhere with optimisation off, in about half the time, and runs the same.
 */
async function prepare(m: Extract<WorkerRequest, { t: 'prepare' }>): Promise<{ value: PreparedReply; transfer: ArrayBuffer[] }> {
  const bytes = builtWith(m);
  const file = join((saveDir ??= chooseSaveDir()), `nestswap-${process.pid}-${threadId}-${nextFile++}.onnx`);
  try {
    let s: ort.InferenceSession;
    let optimized = true;
    try {
      // severity 3: onnxruntime warns that an NCHWc-optimised graph belongs to this machine, which is the point
      s = await ort.InferenceSession.create(bytes, { ...m.options, optimizedModelFilePath: file, logSeverityLevel: 3 });
    } catch (e) {
      // the model itself may be at fault (then this fails the same way), or only the saving (no writable temp dir):
      // then the raw ONNX goes back and is optimised where it loads
      s = await ort.InferenceSession.create(bytes, m.options).catch(() => Promise.reject(e));
      optimized = false;
    }
    const sid = nextSid++;
    sessions.set(sid, s);
    let out = bytes;
    if (optimized) {
      const buf = await readFile(file);
      // a file read this large owns its memory: hand that over instead of copying it
      out = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength ? new Uint8Array(buf.buffer) : new Uint8Array(buf);
    }
    return { value: { bytes: out, optimized, sid }, transfer: [out.buffer as ArrayBuffer] };
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

async function checkPrepared(m: Extract<WorkerRequest, { t: 'check' }>): Promise<{ value: CheckedReply }> {
  const s = sessionOf(m.sid);
  try {
    const feed = () => ({ [s.inputNames[0]!]: new ort.Tensor('float32', m.check.input, m.check.dims) });
    for (let i = 0; i < m.check.warmupRuns; i++) await s.run(feed());
    const times: number[] = [];
    let out: ort.Tensor | undefined;
    for (let i = 0; i < Math.max(1, m.check.checkRuns); i++) {
      const a = performance.now();
      out = (await s.run(feed()))[s.outputNames[0]!]!;
      times.push(performance.now() - a);
    }
    return { value: { times, output: { data: out!.data as Float32Array, dims: [...out!.dims] } } };
  } finally {
    sessions.delete(m.sid);
    await s.release();
  }
}

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
    case 'warm': {
      const w = packageOf(m.key);
      buildSubnet(w, w.pkg.space.min(), { mode: 'fold' });
      return { value: null };
    }
    case 'package':
      if (!packages.has(m.key)) packages.set(m.key, new SubnetWeights(SupernetPackage.fromVerifiedFiles(m.manifest, m.files, m.location, true)));
      return { value: null };
    case 'build':
      return { value: await open(builtWith(m), m.options) };
    case 'prepare':
      return prepare(m);
    case 'check':
      return checkPrepared(m);
    case 'run': {
      const s = sessionOf(m.sid);
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
