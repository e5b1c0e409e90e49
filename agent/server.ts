/**
 * The agent's local HTTP API (express 5), bound to 127.0.0.1 by default.
 *
 *   POST   /v1/infer    JSON {input: number[]} | {inputs: number[][]}; application/octet-stream (raw
 *                       float32 LE, batch = length / sample size); application/msgpack ({input|inputs},
 *                       Float32Array or arrays) → {label, index, logits, subnet} or {labels, indices, logits, subnet}
 *   GET    /v1/status   the daemon's status document
 *   PUT    /v1/budget   {latencyMs?, memoryMB?} → re-chooses, unpins
 *   POST   /v1/switch   subnet config (or {config, pin?}); pinned until the budget changes or DELETE
 *   DELETE /v1/switch   unpin
 *   GET    /metrics     Prometheus text
 *   GET    /healthz     liveness (alias /v1/health); GET /readyz: ready, a model is serving
 *
 * Every error is JSON {error: {code, message}} with a 4xx/5xx status; a bad request never stops
 * the agent.
 */
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { unpack } from 'msgpackr';
import type { Logger } from 'pino';
import { z } from 'zod';
import { isNestswapError } from '../runtime/errors.js';
import type { SwapRecord } from '../runtime/hot-swap.js';
import type { DaemonHandle } from './daemon.js';

export interface ServerOptions {
  port: number;
  host?: string;
  /** largest accepted request body (default 8 MB) */
  maxBodyBytes?: number;
  logger?: Logger;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const NumberArray = z.array(z.number());
const BudgetBody = z.object({ latencyMs: z.number().positive().finite().optional(), memoryMB: z.number().positive().finite().optional() }).strict();
const SwitchBody = z.object({ config: z.unknown(), pin: z.boolean().optional() }).strict();

function zodMessage(e: z.ZodError): string {
  return e.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
    .join('; ');
}

/** Samples from a decoded body: one Float32Array and its batch size. */
function toBatch(body: unknown, per: number): { data: Float32Array; batch: number; single: boolean } {
  const asArray = (v: unknown, where: string): Float32Array => {
    if (v instanceof Float32Array) return v;
    // msgpack encoders send a Float32Array as bin (raw little-endian bytes) unless told otherwise
    if (v instanceof Uint8Array) {
      if (v.length % 4 !== 0) throw new HttpError(400, 'ERR_INPUT', `${where} is ${v.length} bytes; raw float32 needs a multiple of 4.`);
      const out = new Float32Array(v.length / 4);
      const view = new DataView(v.buffer, v.byteOffset, v.length);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    }
    if (ArrayBuffer.isView(v) || !Array.isArray(v)) throw new HttpError(400, 'ERR_INPUT', `${where} must be an array of numbers or a Float32Array.`);
    const r = NumberArray.safeParse(v);
    if (!r.success) throw new HttpError(400, 'ERR_INPUT', `${where}: ${zodMessage(r.error)}`);
    return Float32Array.from(r.data);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'ERR_INPUT', 'Body must be an object {"input": [...]} or {"inputs": [[...], ...]}.');
  const o = body as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length !== 1 || (keys[0] !== 'input' && keys[0] !== 'inputs'))
    throw new HttpError(400, 'ERR_INPUT', `Body must have exactly one of "input" or "inputs" (got ${keys.map((k) => JSON.stringify(k)).join(', ') || 'none'}).`);
  if ('input' in o) {
    const x = asArray(o.input, 'input');
    if (x.length !== per) throw new HttpError(400, 'ERR_INPUT', `"input" has ${x.length} values; one sample needs ${per}.`);
    return { data: x, batch: 1, single: true };
  }
  const xs = o.inputs;
  if (!Array.isArray(xs) || xs.length === 0) throw new HttpError(400, 'ERR_INPUT', '"inputs" must be a non-empty array of samples.');
  const data = new Float32Array(xs.length * per);
  xs.forEach((x, i) => {
    const a = asArray(x, `inputs[${i}]`);
    if (a.length !== per) throw new HttpError(400, 'ERR_INPUT', `inputs[${i}] has ${a.length} values; one sample needs ${per}.`);
    data.set(a, i * per);
  });
  return { data, batch: xs.length, single: false };
}

function checkFinite(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) throw new HttpError(400, 'ERR_INPUT', `Input value ${i} is ${x[i]}; every value must be finite.`);
}

function swapStatus(r: SwapRecord): number {
  if (r.outcome === 'swapped' || r.outcome === 'unchanged') return 200;
  if (r.outcome === 'superseded') return 409;
  return 422;
}

export function createApp(d: DaemonHandle, opts: Omit<ServerOptions, 'port' | 'host'> = {}): express.Express {
  const limit = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const log = opts.logger;
  const per = d.sampleShape.reduce((a, b) => a * b, 1);
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', false);
  app.use(express.json({ limit, strict: false }));
  app.use(express.raw({ type: ['application/octet-stream', 'application/msgpack', 'application/x-msgpack'], limit }));

  app.post('/v1/infer', async (req: Request, res: Response) => {
    const type = req.is(['application/json', 'application/octet-stream', 'application/msgpack', 'application/x-msgpack']);
    let batch: { data: Float32Array; batch: number; single: boolean };
    if (type === 'application/json') batch = toBatch(req.body, per);
    else if (type === 'application/octet-stream') {
      const buf = req.body as Buffer;
      if (!Buffer.isBuffer(buf) || buf.length === 0 || buf.length % (4 * per) !== 0)
        throw new HttpError(400, 'ERR_INPUT', `Binary body has ${Buffer.isBuffer(buf) ? buf.length : 0} bytes; it must be a positive multiple of ${4 * per} (float32 samples of ${per} values).`);
      // copy into an aligned buffer (the request's may be at any offset), little-endian
      const data = new Float32Array(buf.length / 4);
      const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
      for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
      batch = { data, batch: data.length / per, single: false };
    } else if (type === 'application/msgpack' || type === 'application/x-msgpack') {
      let body: unknown;
      try {
        body = unpack(req.body as Buffer);
      } catch {
        throw new HttpError(400, 'ERR_BAD_MSGPACK', 'Body is not valid msgpack.');
      }
      batch = toBatch(body, per);
    } else throw new HttpError(415, 'ERR_UNSUPPORTED_MEDIA', `Content-Type '${req.get('content-type') ?? ''}' is not supported; use application/json, application/octet-stream or application/msgpack.`);
    checkFinite(batch.data);
    const r = await d.infer(batch.data, batch.batch);
    const rows: number[][] = [];
    for (let i = 0; i < batch.batch; i++) rows.push(Array.from(r.logits.subarray(i * r.classes, (i + 1) * r.classes)));
    if (batch.single) res.json({ label: r.labels[0], index: r.indices[0], logits: rows[0], subnet: r.subnetId });
    else res.json({ labels: r.labels, indices: r.indices, logits: rows, subnet: r.subnetId });
  });

  app.get('/v1/status', (_req, res) => {
    res.json(d.status());
  });

  app.put('/v1/budget', async (req, res) => {
    if (!req.is('application/json')) throw new HttpError(415, 'ERR_UNSUPPORTED_MEDIA', 'Send the budget as application/json.');
    const r = BudgetBody.safeParse(req.body);
    if (!r.success) throw new HttpError(400, 'ERR_BUDGET_INVALID', zodMessage(r.error));
    const b: { latencyMs?: number; memoryMB?: number } = {};
    if (r.data.latencyMs !== undefined) b.latencyMs = r.data.latencyMs;
    if (r.data.memoryMB !== undefined) b.memoryMB = r.data.memoryMB;
    // accepted whether or not it can be met right now (budgetState says); ERR_BUDGET_INFEASIBLE (422) when never
    const swap = await d.setBudget(b);
    const s = d.status();
    res.json({ budget: s.budget, effectiveBudget: s.effectiveBudget, budgetState: s.budgetState, swap });
  });

  app.post('/v1/switch', async (req, res) => {
    if (!req.is('application/json')) throw new HttpError(415, 'ERR_UNSUPPORTED_MEDIA', 'Send the subnet config as application/json.');
    // either a bare config or {config, pin}
    const wrapped = SwitchBody.safeParse(req.body);
    const cfg = wrapped.success ? wrapped.data.config : req.body;
    const pin = wrapped.success ? (wrapped.data.pin ?? true) : true;
    const swap = await d.switchTo(cfg, { pin });
    res.status(swapStatus(swap)).json({ pinned: d.status().pinned, swap });
  });

  app.delete('/v1/switch', async (_req, res) => {
    const swap = await d.unpin();
    res.status(swapStatus(swap)).json({ pinned: false, swap });
  });

  app.get('/metrics', async (_req, res) => {
    res.type(d.metrics.contentType).send(await d.metrics.metrics());
  });

  // liveness: the process answers; /v1/health is its alias (the registry's older name)
  const live = (_req: Request, res: Response) => {
    res.json({ ok: true });
  };
  app.get('/healthz', live);
  app.get('/v1/health', live);
  // readiness: a model is serving
  app.get('/readyz', (_req, res) => {
    const s = d.status();
    if (s.subnet) res.json({ ok: true, subnet: s.subnet.id });
    else res.status(503).json({ error: { code: 'ERR_NOT_READY', message: 'No model is serving yet.' } });
  });

  app.use((req, _res, next) => next(new HttpError(404, 'ERR_NOT_FOUND', `No route ${req.method} ${req.path}.`)));

  // express 5 forwards rejected promises of async handlers here
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    let status = 500;
    let code = 'ERR_INTERNAL';
    let message = 'Internal error.';
    let details: unknown;
    const e = err as { type?: string; status?: number; message?: string };
    if (err instanceof HttpError) ({ status, code, message } = err);
    else if (isNestswapError(err)) {
      code = err.code;
      message = err.message;
      status = code === 'ERR_SWAP' ? 503 : code === 'ERR_HEALTH_CHECK' || code === 'ERR_BUDGET_INFEASIBLE' ? 422 : 400;
      if (code === 'ERR_BUDGET_INFEASIBLE') details = err.details; // the cheapest prediction: what the client can ask for
    } else if (e?.type === 'entity.too.large') {
      status = 413;
      code = 'ERR_BODY_TOO_LARGE';
      message = `Request body is larger than ${limit} bytes.`;
    } else if (e?.type === 'entity.parse.failed') {
      code = 'ERR_BAD_JSON';
      status = 400;
      message = 'Body is not valid JSON.';
    } else if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
      status = e.status;
      code = 'ERR_BAD_REQUEST';
      message = e.message ?? 'Bad request.';
    }
    if (status >= 500) log?.error({ err }, 'request failed');
    res.status(status).json({ error: { code, message, ...(details !== undefined ? { details } : {}) } });
  });
  return app;
}

export async function startServer(d: DaemonHandle, opts: ServerOptions): Promise<{ url: string; close(): Promise<void> }> {
  const app = createApp(d, opts);
  const host = opts.host ?? '127.0.0.1';
  const server = await new Promise<import('node:http').Server>((resolve, reject) => {
    const s = app.listen(opts.port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  server.keepAliveTimeout = 5000;
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
