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
import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { SwapRecord } from '../runtime/hot-swap.js';
import type { DaemonHandle } from './daemon.js';
import { errorAnswer, HttpError, inferHandler, zodMessage } from './infer-http.js';
import { clearSocketPath } from './socket-path.js';

export interface ServerOptions {
  port: number;
  host?: string;
  /** largest accepted request body (default 8 MB) */
  maxBodyBytes?: number;
  /** also listen on this Unix socket path (local applications; no TCP port needed to reach it) */
  socket?: string;
  logger?: Logger;
}

const BudgetBody = z.object({ latencyMs: z.number().positive().finite().optional(), memoryMB: z.number().positive().finite().optional() }).strict();
const SwitchBody = z.object({ config: z.unknown(), pin: z.boolean().optional() }).strict();

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
  // before the body parsers: it reads its own body (agent/infer-http.ts)
  const infer = inferHandler(d, { maxBodyBytes: limit, ...(log ? { logger: log } : {}) });
  app.post('/v1/infer', (req, res) => infer(req, res));
  app.use(express.json({ limit, strict: false }));

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
    const a = errorAnswer(err, limit);
    if (a.status >= 500) log?.error({ err }, 'request failed');
    res.status(a.status).json(a.body);
  });
  return app;
}

function listen(server: Server, at: { port: number; host: string } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if ('path' in at) server.listen(at.path, done);
    else server.listen(at.port, at.host, done);
  });
}

/**
 * Serves the API on TCP (and, with `socket`, on a Unix socket too). `POST /v1/infer` is handled on
 * node:http's request before express (agent/infer-http.ts); every other route goes to express.
 */
export async function startServer(d: DaemonHandle, opts: ServerOptions): Promise<{ url: string; socket?: string; close(): Promise<void> }> {
  const app = createApp(d, opts);
  const infer = inferHandler(d, { maxBodyBytes: opts.maxBodyBytes ?? 8 * 1024 * 1024, ...(opts.logger ? { logger: opts.logger } : {}) });
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'POST' && (req.url === '/v1/infer' || req.url?.startsWith('/v1/infer?'))) infer(req, res);
    else app(req, res);
  };
  if (opts.socket) await clearSocketPath(opts.socket);
  const servers: Server[] = [createServer(handler)];
  await listen(servers[0]!, { port: opts.port, host: opts.host ?? '127.0.0.1' });
  if (opts.socket) {
    const unix = createServer(handler);
    await listen(unix, { path: opts.socket });
    servers.push(unix);
  }
  for (const s of servers) s.keepAliveTimeout = 5000;
  const addr = servers[0]!.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  return {
    url,
    ...(opts.socket ? { socket: opts.socket } : {}),
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      if (opts.socket) rmSync(opts.socket, { force: true });
    },
  };
}
