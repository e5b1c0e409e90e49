/**
 * Worker-thread side of the worker backend (see ort-worker.ts): hosts onnxruntime-node sessions
 * off the main thread. onnxruntime-node's `loadModel` and `run` are synchronous native calls on
 * the calling thread, so here they block only this worker, never the thread serving HTTP.
 */
import { accessSync, constants } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort, threadId, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { BnStatsMap } from '../calibrate.js';
import type { CandidateCheck, CheckedElsewhere } from '../hot-swap.js';
import { buildSubnet, SubnetWeights } from '../materialize.js';
import { nchwcSupport, verifyNchwc } from './nchwc.js';
import { SupernetPackage, type Manifest } from '../package.js';
import type { SubnetConfig } from '../space.js';

export type WorkerRequest =
  | { t: 'create'; rid: number; bytes: Uint8Array; options: ort.InferenceSession.SessionOptions }
  /**
   * a verified package's files but its calibration set (the weights SharedArrayBuffer-backed: shared, not copied), kept under `key`;
   * `nchwcBlock`: its NCHWc block size as another worker of this process found it (0: not written), so it is not probed and checked again
   */
  | { t: 'package'; rid: number; key: string; manifest: Manifest; files: Map<string, Uint8Array>; location: string; nchwcBlock?: number }
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
  /**
   * build (and drop) the smallest subnet of package `key`: the materializer's code is compiled before a real build needs it;
   * and settle whether its graphs are written in the NCHWc layout here (a WarmedReply)
   */
  | { t: 'warm'; rid: number; key: string };

export interface WarmedReply {
  /** the package's NCHWc block size here (0: onnxruntime optimises its graphs); absent when the worker does not write NCHWc */
  nchwcBlock?: number;
  /** this worker probed and checked it itself (else it was handed the answer with the package) */
  nchwcChecked?: boolean;
}

/** What a worker is started with. */
export interface WorkerThreadData {
  /** write graphs in onnxruntime's NCHWc layout where possible (WorkerBackendOptions.nchwc; default true) */
  nchwc?: boolean;
}

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
  /** optimised by the materializer writing onnxruntime's NCHWc layout itself (see nchwc.ts), not by onnxruntime */
  nchwc: boolean;
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
const emitNchwc = (workerData as WorkerThreadData | null)?.nchwc !== false;

const sessions = new Map<number, ort.InferenceSession>();
/** prepared sessions still being created (a prepared NCHWc graph's bytes are sent before its session here is open) */
const opening = new Map<number, Promise<ort.InferenceSession>>();
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

function builtWith(m: { key: string; config: SubnetConfig; stats?: BnStatsMap }, nchwcBlock = 0): Uint8Array {
  const w = packageOf(m.key);
  // configs cross threads as plain data: validated again here (clear error naming the field)
  const cfg = w.pkg.space.parse(m.config);
  return buildSubnet(w, cfg, { mode: 'fold', ...(m.stats ? { stats: m.stats } : {}), ...(nchwcBlock ? { nchwcBlock } : {}) }).bytes;
}

/** per package: the NCHWc block size its graphs are written with here, 0 where onnxruntime optimises them */
const nchwcBlocks = new Map<string, Promise<number>>();
function nchwcBlockOf(key: string): Promise<number> {
  let p = nchwcBlocks.get(key);
  if (!p) {
    const w = packageOf(key);
    p = nchwcSupport().then(async (s) => (s.block && (await verifyNchwc(w, s.block)) === null ? s.block : 0));
    nchwcBlocks.set(key, p);
  }
  return p;
}

/**
 * The NCHWc form stands for what onnxruntime's 'all' optimisation makes for its CPU execution
 * provider: used only for sessions asked with those (the defaults), else onnxruntime optimises.
 */
async function nchwcBlockFor(key: string, options: ort.InferenceSession.SessionOptions): Promise<number> {
  const level = options.graphOptimizationLevel ?? 'all';
  const eps = options.executionProviders ?? ['cpu'];
  const cpuOnly = eps.every((e) => (typeof e === 'string' ? e : e.name) === 'cpu');
  return emitNchwc && level === 'all' && cpuOnly ? nchwcBlockOf(key) : 0;
}

function preparedSession(sid: number): Promise<ort.InferenceSession> | ort.InferenceSession {
  return sessions.get(sid) ?? opening.get(sid) ?? Promise.reject(new Error(`session ${sid} is not open in this worker`));
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
 * graph loads elsewhere with optimisation off, in about half the time, and runs the same. Where the
 * materializer can write that optimised graph itself (onnxruntime's NCHWc layout, see nchwc.ts),
 * onnxruntime's optimiser is skipped altogether.
 */
async function prepare(m: Extract<WorkerRequest, { t: 'prepare' }>): Promise<{ value: PreparedReply; transfer: ArrayBuffer[] }> {
  const block = await nchwcBlockFor(m.key, m.options);
  if (block) {
    // already in the form onnxruntime's optimiser would give it: the bytes go back at once and this
    // thread opens its own session of them (for the check) while the serving thread opens one too
    const bytes = builtWith(m, block);
    const sid = nextSid++;
    const p = ort.InferenceSession.create(bytes.slice(), { ...m.options, graphOptimizationLevel: 'disabled' });
    opening.set(sid, p);
    p.then(
      (s) => {
        opening.delete(sid);
        sessions.set(sid, s);
      },
      () => opening.delete(sid), // the failure reaches whoever asks for the check
    );
    return { value: { bytes, optimized: true, nchwc: true, sid }, transfer: [bytes.buffer as ArrayBuffer] };
  }
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
    return { value: { bytes: out, optimized, nchwc: false, sid }, transfer: [out.buffer as ArrayBuffer] };
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

async function checkPrepared(m: Extract<WorkerRequest, { t: 'check' }>): Promise<{ value: CheckedReply }> {
  const s = await preparedSession(m.sid);
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
      // whether this package's graphs are written in the NCHWc layout here (probed and checked once per process)
      if (!emitNchwc) return { value: {} satisfies WarmedReply };
      const checked = !nchwcBlocks.has(m.key);
      return { value: { nchwcBlock: await nchwcBlockOf(m.key), nchwcChecked: checked } satisfies WarmedReply };
    }
    case 'package':
      if (!packages.has(m.key)) packages.set(m.key, new SubnetWeights(SupernetPackage.fromVerifiedFiles(m.manifest, m.files, m.location, true)));
      if (m.nchwcBlock !== undefined && !nchwcBlocks.has(m.key)) nchwcBlocks.set(m.key, Promise.resolve(m.nchwcBlock));
      return { value: null };
    case 'build': {
      const block = await nchwcBlockFor(m.key, m.options);
      return { value: await open(builtWith(m, block), block ? { ...m.options, graphOptimizationLevel: 'disabled' } : m.options) };
    }
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
      const s = sessions.get(m.sid) ?? (await opening.get(m.sid)?.catch(() => undefined));
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
