/**
 * Backend: onnxruntime-node sessions hosted in worker threads.
 *
 * onnxruntime-node runs `loadModel` (parse + graph optimisation, ~13 ms for the largest
 * fmnist-ofa subnet) and `run` synchronously on the thread that calls them. On the main thread
 * every session a hot swap creates stalls every request that arrives meanwhile. This backend
 * keeps sessions in a small pool of workers: a new session goes to the worker hosting the fewest
 * open sessions, so a swap's candidate is created, warmed up and checked on one worker while the
 * serving session answers on the other. The main thread only posts inputs and receives logits
 * (outputs are transferred, not copied).
 *
 * It plugs in where `nodeBackend` does: `ModelSession.create(workerBackend(), bytes)`. A worker
 * that dies fails its pending calls and its sessions with ERR_SESSION; the next session starts a
 * fresh worker. Idle workers do not keep the process alive.
 */
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type * as OrtApi from 'onnxruntime-common';
import type { BnStatsMap } from '../calibrate.js';
import type { SupernetPackage } from '../package.js';
import { COMPUTE_MS, type Backend, type Ort } from '../session.js';
import type { SubnetConfig } from '../space.js';
import { nodeBackend } from './ort-node.js';
import type { CheckedReply, WarmedReply, WorkerThreadData, CheckSpec, CreatedReply, PreparedReply, RunReply, WorkerReply, WorkerRequest } from './ort-worker-thread.js';

export type { CheckedReply, CheckSpec };

export interface PreparedSubnet {
  /** the optimised ONNX: load it with graph optimisation 'disabled' (when `optimized`; else the raw ONNX) */
  bytes: Uint8Array;
  optimized: boolean;
  /** written by the materializer in onnxruntime's NCHWc layout (runtime/node/nchwc.ts), not optimised by onnxruntime */
  nchwc: boolean;
  /** the optimising session's warm-up and check, running in the worker while the caller loads `bytes` */
  checked: Promise<CheckedReply>;
}

// Distributive Omit, so each request kind keeps its own fields.
type RequestBody = WorkerRequest extends infer R ? (R extends { rid: number } ? Omit<R, 'rid'> : never) : never;

class Host {
  readonly worker: Worker;
  sessions = 0;
  /** packages already sent to this worker, by key */
  readonly packages = new Set<string>();
  dead: Error | undefined;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private rid = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** has built a subnet (its materializer code is compiled) */
  warmed = false;

  constructor(
    private readonly onExit: (h: Host) => void,
    /** ms without sessions or calls after which the worker ends (undefined: it stays) */
    private readonly idleExitMs?: number,
    data: WorkerThreadData = {},
  ) {
    this.worker = new Worker(new URL('./ort-worker-thread.js', import.meta.url), { workerData: data });
    this.worker.unref();
    this.worker.on('message', (r: WorkerReply) => {
      const p = this.pending.get(r.rid);
      if (!p) return;
      this.pending.delete(r.rid);
      if (this.pending.size === 0) {
        this.worker.unref();
        this.idleCheck();
      }
      if (r.ok) p.resolve(r.value);
      else p.reject(new Error(r.message));
    });
    const fail = (e: Error) => {
      if (this.dead) return;
      this.dead = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      this.onExit(this);
    };
    this.worker.on('error', (e) => fail(new Error(`onnxruntime worker failed: ${e.message}`)));
    this.worker.on('exit', (code) => fail(new Error(`onnxruntime worker exited (code ${code})`)));
  }

  call<T>(msg: RequestBody, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const rid = ++this.rid;
    clearTimeout(this.idleTimer);
    return new Promise<T>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(rid, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...msg, rid }, transfer);
    });
  }

  /** Resolves once no call is pending (or after `maxMs`): terminating a worker inside a native run aborts the process. */
  async settled(maxMs: number): Promise<void> {
    const until = performance.now() + maxMs;
    while (this.pending.size > 0 && !this.dead && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
  }

  /** Once nothing is open or pending, the worker (its V8 heap, its onnxruntime arenas) goes after `idleExitMs`. */
  idleCheck(): void {
    if (this.idleExitMs === undefined || this.sessions > 0 || this.pending.size > 0 || this.dead) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.sessions === 0 && this.pending.size === 0) void this.worker.terminate();
    }, this.idleExitMs);
    this.idleTimer.unref();
  }
}

class WorkerSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly OrtApi.InferenceSession.ValueMetadata[];
  readonly outputMetadata: readonly OrtApi.InferenceSession.ValueMetadata[];
  private released = false;

  constructor(
    private readonly host: Host,
    private readonly sid: number,
    created: CreatedReply,
  ) {
    this.inputNames = created.inputNames;
    this.outputNames = created.outputNames;
    this.inputMetadata = created.inputMetadata;
    this.outputMetadata = created.outputMetadata;
  }

  async run(feeds: Record<string, OrtApi.Tensor>, fetches?: readonly string[]): Promise<Record<string, OrtApi.Tensor>> {
    const x = feeds[this.inputNames[0]!];
    if (!x || x.type !== 'float32') throw new Error(`the worker backend runs one float32 input named '${this.inputNames[0]}'`);
    const outputs = [...(fetches ?? this.outputNames)];
    const r = await this.host.call<RunReply>({ t: 'run', sid: this.sid, input: x.data as Float32Array, dims: [...x.dims], outputs });
    const res: Record<string, OrtApi.Tensor> & { [COMPUTE_MS]?: number } = {};
    for (const name of outputs) res[name] = new ort.Tensor('float32', r.outputs[name]!.data, r.outputs[name]!.dims) as unknown as OrtApi.Tensor;
    res[COMPUTE_MS] = r.ms;
    return res;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.host.sessions--;
    if (!this.host.dead) await this.host.call({ t: 'release', sid: this.sid });
    this.host.idleCheck();
  }
}

export interface WorkerBackendOptions {
  /** Worker threads in the pool (default 2: one serving, one building the next model). */
  workers?: number;
  /** End a worker after this long with no session open and no call pending (default: never). */
  idleExitMs?: number;
  /**
   * Write subnets in onnxruntime's NCHWc layout where this machine's onnxruntime has it and the
   * sessions use its CPU provider with full optimisation (default true; runtime/node/nchwc.ts);
   * false leaves that optimisation to onnxruntime at session creation.
   */
  nchwc?: boolean;
}

/**
 * Files of a verified package to hand to workers: the weights copied once into shared memory (every
 * worker reads the same bytes), the small files cloned, the calibration set left out (a worker
 * builds subnets from statistics computed here).
 */
const shared = new WeakMap<SupernetPackage, Map<string, Uint8Array>>();
function sharedFiles(pkg: SupernetPackage): Map<string, Uint8Array> {
  let files = shared.get(pkg);
  if (!files) {
    files = new Map();
    for (const f of pkg.manifest.files) {
      const bytes = pkg.files.get(f.path)!;
      if (f.role === 'calibration') continue;
      if (f.role !== 'weights') {
        files.set(f.path, bytes);
        continue;
      }
      const view = new Uint8Array(new SharedArrayBuffer(bytes.length));
      view.set(bytes);
      files.set(f.path, view);
    }
    shared.set(pkg, files);
  }
  return files;
}

export interface WorkerBackend extends Backend {
  /**
   * Materializes a subnet inside a worker (BN folded with `stats`) and opens its session there:
   * neither the ONNX build nor onnxruntime's model load runs on the calling thread, and the ONNX
   * bytes never cross threads. The package goes to each worker once, its large files shared.
   */
  openSubnet(pkg: SupernetPackage, config: SubnetConfig, stats: BnStatsMap | undefined, options?: OrtApi.InferenceSession.SessionOptions): Promise<OrtApi.InferenceSession>;
  /**
   * Materializes a subnet inside a worker and has onnxruntime optimise it there with `options` (the
   * options the serving session will have, optimisation level included); returns the optimised
   * model, which loads on the serving thread with optimisation 'disabled' in about half the time of
   * the raw ONNX and runs the same, as soon as it is saved. Meanwhile the worker warms up and times
   * its own session of it on `check` (`checked`). For the CPU execution provider on this machine:
   * the optimised graph is specific to both. On x86 with onnxruntime's default optimisation the
   * worker writes the optimised (NCHWc) form itself and skips onnxruntime's optimiser (nchwc.ts):
   * the bytes come back right after the materializer, and the worker's session opens meanwhile.
   */
  prepareSubnet(pkg: SupernetPackage, config: SubnetConfig, stats: BnStatsMap | undefined, options: OrtApi.InferenceSession.SessionOptions, check: CheckSpec): Promise<PreparedSubnet>;
  /**
   * Starts a worker (when none is up), hands it `pkg` and has it build the smallest subnet once, so a
   * build asked for soon does not also pay the worker's start (~0.25 s here: a V8 isolate, the modules,
   * onnxruntime's binding) nor a cold compile of the materializer. Resolves when it is ready.
   */
  warm(pkg: SupernetPackage): Promise<void>;
  /** open sessions per live worker, in start order */
  occupancy(): number[];
  /**
   * For a package a worker was warmed with: the NCHWc block size its graphs are written with (0: onnxruntime
   * optimises them) and how many workers probed and checked that (later workers are handed the answer).
   */
  nchwcOf(pkg: SupernetPackage): { block: number; checks: number } | undefined;
  close(): Promise<void>;
}

/** A backend whose sessions live in worker threads. Each call makes an independent pool. */
export function workerBackend(opts: WorkerBackendOptions = {}): WorkerBackend {
  const size = Math.max(1, Math.floor(opts.workers ?? 2));
  const hosts: Host[] = [];
  let turn = 0;
  const pick = (): Host => {
    // an idle worker first: a second one starts only when every worker already hosts a session
    const idle = hosts.find((h) => h.sessions === 0);
    if (idle) return idle;
    if (hosts.length < size) {
      const h = new Host((dead) => {
        const i = hosts.indexOf(dead);
        if (i >= 0) hosts.splice(i, 1);
      }, opts.idleExitMs, { nchwc: opts.nchwc ?? true });
      hosts.push(h);
      return h;
    }
    // fewest open sessions; ties rotate
    let best = hosts[turn++ % hosts.length]!;
    for (const h of hosts) if (h.sessions < best.sessions) best = h;
    return best;
  };
  const open = async (request: (host: Host) => Promise<CreatedReply>): Promise<WorkerSession> => {
    const host = pick();
    host.sessions++;
    try {
      const created = await request(host);
      return new WorkerSession(host, created.sid, created);
    } catch (e) {
      host.sessions--;
      throw e;
    }
  };
  /** per package: the NCHWc block size a warmed worker settled (probe + check), handed to later workers */
  const nchwc = new Map<string, { block: number; checks: number }>();
  const sendPackage = (host: Host, pkg: SupernetPackage) => {
    const key = pkg.weightsDigest;
    if (host.packages.has(key)) return;
    // messages to one worker are handled in order: no need to wait before the next request
    const known = nchwc.get(key);
    host
      .call({ t: 'package', key, manifest: pkg.manifest, files: sharedFiles(pkg), location: pkg.location, ...(known ? { nchwcBlock: known.block } : {}) })
      .catch(() => host.packages.delete(key));
    host.packages.add(key);
  };
  const InferenceSession = {
    create: (bytes: Uint8Array, options: OrtApi.InferenceSession.SessionOptions = {}) =>
      open((host) => host.call<CreatedReply>({ t: 'create', bytes, options: options as ort.InferenceSession.SessionOptions })),
  };
  const facade = { InferenceSession, Tensor: ort.Tensor, env: ort.env } as unknown as Ort;
  return {
    // the same onnxruntime-node build as nodeBackend: only where sessions live differs
    ...nodeBackend,
    ort: facade,
    // a WorkerSession stands in for an onnxruntime session, as the facade's `create` results do
    openSubnet: (pkg, config, stats, options = {}) =>
      open((host) => {
        sendPackage(host, pkg);
        return host.call<CreatedReply>({ t: 'build', key: pkg.weightsDigest, config, ...(stats ? { stats } : {}), options: options as ort.InferenceSession.SessionOptions });
      }) as unknown as Promise<OrtApi.InferenceSession>,
    async prepareSubnet(pkg, config, stats, options, check) {
      const host = pick();
      sendPackage(host, pkg);
      const p = await host.call<PreparedReply>({ t: 'prepare', key: pkg.weightsDigest, config, ...(stats ? { stats } : {}), options: options as ort.InferenceSession.SessionOptions });
      const checked = host.call<CheckedReply>({ t: 'check', sid: p.sid, check });
      checked.catch(() => undefined); // the caller may fail before it awaits this; it still sees the rejection when it does
      host.warmed = true;
      return { bytes: p.bytes, optimized: p.optimized, nchwc: p.nchwc, checked };
    },
    async warm(pkg) {
      const host = pick();
      if (host.warmed && host.packages.has(pkg.weightsDigest)) {
        host.idleCheck(); // already warm: only its idle time starts over
        return;
      }
      sendPackage(host, pkg);
      // messages are handled in order: once this answers the worker holds the package and has built one subnet
      const r = await host.call<WarmedReply>({ t: 'warm', key: pkg.weightsDigest });
      if (r.nchwcBlock !== undefined) {
        const before = nchwc.get(pkg.weightsDigest);
        nchwc.set(pkg.weightsDigest, { block: r.nchwcBlock, checks: (before?.checks ?? 0) + (r.nchwcChecked ? 1 : 0) });
      }
      host.warmed = true;
    },
    occupancy: () => hosts.map((h) => h.sessions),
    nchwcOf: (pkg) => nchwc.get(pkg.weightsDigest),
    async close() {
      // calls in flight finish first (a run, a build): onnxruntime aborts the process when its
      // thread is torn down inside a native call
      await Promise.all(hosts.splice(0).map(async (h) => {
        await h.settled(5000);
        await h.worker.terminate();
      }));
    },
  };
}
