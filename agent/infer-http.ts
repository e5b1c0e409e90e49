/**
 * The agent's inference route, `POST /v1/infer`, on the bare node:http request: the server hands it
 * the request before express sees it (agent/server.ts), so a local call pays for node:http and the
 * model, little else. Bodies: raw little-endian float32 (`application/octet-stream`, read straight
 * into an aligned buffer and used as the input tensor without a copy), a NumPy `.npy` array
 * (`application/x-npy`, agent/npy.ts), JSON `{input}` / `{inputs}`, or msgpack with the JSON shapes.
 * Answers: JSON, or with `Accept: application/octet-stream` the raw float32 logits (batch × classes)
 * (`Accept: application/x-npy`: the same as a `.npy`) and headers `x-nestswap-subnet`,
 * `x-nestswap-batch`, `x-nestswap-classes`, `x-nestswap-indices` (comma-separated argmax per sample).
 * Every answer has `Server-Timing: compute;dur=MS`, the model's own run time for the request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { endianness } from 'node:os';
import { unpack } from 'msgpackr';
import type { Logger } from 'pino';
import { z } from 'zod';
import { isNestswapError } from '../runtime/errors.js';
import type { DaemonHandle } from './daemon.js';
import { HttpError } from './http-error.js';
import { npyBytes, parseNpy } from './npy.js';

export { HttpError };

const NumberArray = z.array(z.number());

export function zodMessage(e: z.ZodError): string {
  return e.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
    .join('; ');
}

/** Samples from a decoded body: one Float32Array and its batch size. */
export function toBatch(body: unknown, per: number): { data: Float32Array; batch: number; single: boolean } {
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


/** Status, code and JSON body for any error of the agent's API. */
export function errorAnswer(err: unknown, limit: number): { status: number; body: { error: { code: string; message: string; details?: unknown } } } {
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
  return { status, body: { error: { code, message, ...(details !== undefined ? { details } : {}) } } };
}

const LITTLE_ENDIAN = endianness() === 'LE';
const TYPES = new Set(['application/json', 'application/octet-stream', 'application/x-npy', 'application/msgpack', 'application/x-msgpack']);

/** The media type of a Content-Type header, lower case, without parameters. */
function mediaType(h: string | undefined): string {
  if (!h) return '';
  const i = h.indexOf(';');
  return (i < 0 ? h : h.slice(0, i)).trim().toLowerCase();
}

/** The whole body in one buffer of its own (offset 0: aligned for a Float32Array view), at most `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers['content-length'];
    const n = declared === undefined ? -1 : Number(declared);
    if (n > limit) return reject(new HttpError(413, 'ERR_BODY_TOO_LARGE', `Request body is larger than ${limit} bytes.`));
    let buf = n >= 0 ? Buffer.allocUnsafeSlow(n) : undefined;
    const chunks: Buffer[] = [];
    let got = 0;
    req.on('data', (c: Buffer) => {
      if (got + c.length > (buf ? buf.length : limit)) {
        req.removeAllListeners('data');
        reject(new HttpError(buf ? 400 : 413, buf ? 'ERR_BAD_REQUEST' : 'ERR_BODY_TOO_LARGE', buf ? 'Body is longer than its Content-Length.' : `Request body is larger than ${limit} bytes.`));
        return;
      }
      if (buf) c.copy(buf, got);
      else chunks.push(c);
      got += c.length;
    });
    req.on('end', () => {
      if (!buf) {
        buf = Buffer.allocUnsafeSlow(got);
        let at = 0;
        for (const c of chunks) at += c.copy(buf, at);
      }
      if (got !== buf.length) reject(new HttpError(400, 'ERR_BAD_REQUEST', 'Body is shorter than its Content-Length.'));
      else resolve(buf);
    });
    req.on('error', reject);
  });
}

/** A raw float32 body as the input tensor: a view of the buffer (no copy) on little-endian hosts. */
function floatsOf(buf: Buffer, per: number): Float32Array {
  if (buf.length === 0 || buf.length % (4 * per) !== 0)
    throw new HttpError(400, 'ERR_INPUT', `Binary body has ${buf.length} bytes; it must be a positive multiple of ${4 * per} (float32 samples of ${per} values).`);
  if (LITTLE_ENDIAN && buf.byteOffset % 4 === 0) return new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const out = new Float32Array(buf.length / 4);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function decode(type: string, buf: Buffer, per: number): { data: Float32Array; batch: number; single: boolean } {
  if (type === 'application/octet-stream') {
    const data = floatsOf(buf, per);
    return { data, batch: data.length / per, single: false };
  }
  if (type === 'application/x-npy') {
    const { data, shape } = parseNpy(buf);
    if (data.length === 0 || data.length % per !== 0)
      throw new HttpError(400, 'ERR_INPUT', `.npy array of shape (${shape.join(', ')}) has ${data.length} values; it must be a positive multiple of ${per} (samples of ${per} values).`);
    return { data, batch: data.length / per, single: false };
  }
  let body: unknown;
  if (type === 'application/json') {
    try {
      body = JSON.parse(buf.toString('utf8'));
    } catch {
      throw new HttpError(400, 'ERR_BAD_JSON', 'Body is not valid JSON.');
    }
  } else {
    try {
      body = unpack(buf);
    } catch {
      throw new HttpError(400, 'ERR_BAD_MSGPACK', 'Body is not valid msgpack.');
    }
  }
  return toBatch(body, per);
}

/** The answer's form from the Accept header: raw float32, .npy, or JSON (the default). */
function answerForm(accept: string | undefined): 'raw' | 'npy' | 'json' {
  if (accept === undefined || accept.includes('application/json')) return 'json';
  if (accept.includes('application/octet-stream')) return 'raw';
  return accept.includes('application/x-npy') ? 'npy' : 'json';
}

function send(res: ServerResponse, status: number, type: string, body: Buffer | string, extra?: Record<string, string>): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

export interface InferHttpOptions {
  maxBodyBytes: number;
  logger?: Logger;
}

/** The `POST /v1/infer` handler over node:http's request and response (also mounted in express). */
export function inferHandler(d: DaemonHandle, opts: InferHttpOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const per = d.sampleShape.reduce((a, b) => a * b, 1);
  const limit = opts.maxBodyBytes;
  const run = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const type = mediaType(req.headers['content-type']);
    if (!TYPES.has(type))
      throw new HttpError(415, 'ERR_UNSUPPORTED_MEDIA', `Content-Type '${req.headers['content-type'] ?? ''}' is not supported; use application/json, application/octet-stream, application/x-npy or application/msgpack.`);
    const batch = decode(type, await readBody(req, limit), per);
    checkFinite(batch.data);
    const r = await d.infer(batch.data, batch.batch);
    // the model's own time for this request, for clients that separate it from the round trip
    const timing = `compute;dur=${r.computeMs.toFixed(3)}`;
    const form = answerForm(req.headers.accept);
    if (form !== 'json') {
      const logits = r.logits;
      const bytes =
        form === 'npy'
          ? npyBytes(logits, [batch.batch, r.classes])
          : LITTLE_ENDIAN
            ? Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength)
            : Buffer.from(new Uint8Array(Float32Array.from(logits).buffer));
      send(res, 200, form === 'npy' ? 'application/x-npy' : 'application/octet-stream', bytes, {
        'server-timing': timing,
        'x-nestswap-subnet': r.subnetId,
        'x-nestswap-batch': String(batch.batch),
        'x-nestswap-classes': String(r.classes),
        'x-nestswap-indices': r.indices.join(','),
      });
      return;
    }
    const rows: number[][] = [];
    for (let i = 0; i < batch.batch; i++) rows.push(Array.from(r.logits.subarray(i * r.classes, (i + 1) * r.classes)));
    const json = batch.single
      ? { label: r.labels[0], index: r.indices[0], logits: rows[0], subnet: r.subnetId }
      : { labels: r.labels, indices: r.indices, logits: rows, subnet: r.subnetId };
    send(res, 200, 'application/json; charset=utf-8', JSON.stringify(json), { 'server-timing': timing });
  };
  return (req, res) => {
    run(req, res).catch((err: unknown) => {
      const a = errorAnswer(err, limit);
      if (a.status >= 500) opts.logger?.error({ err }, 'request failed');
      if (res.headersSent) return res.destroy();
      // a body refused before it was read is not drained: close the connection instead
      send(res, a.status, 'application/json; charset=utf-8', JSON.stringify(a.body), req.complete ? undefined : { connection: 'close' });
    });
  };
}
