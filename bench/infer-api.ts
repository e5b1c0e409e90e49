/**
 * The local inference API against bare HTTP, side by side in one run:
 *   bare         a node:http echo server (the body back as application/octet-stream)
 *   agentJson    the agent's POST /v1/infer, JSON {input: [...]} in, JSON out
 *   agentBinary  the agent's POST /v1/infer, raw float32 in, raw float32 logits out (Accept: octet-stream)
 *   inProcess    the same subnet's d.infer() in the client's own process (the model's compute + the
 *                daemon's own bookkeeping, no HTTP)
 * The servers run in a child process; this process is the keep-alive client (one socket per target)
 * and makes every round's four calls in a shuffled order. Overhead = agent − inProcess − bare, the
 * median over rounds of the per-round difference (and the difference of medians; and against the
 * agent's own median of the model's runs, GET /v1/status observed.p50Ms). Target: ≤ 0.3 ms.
 *
 *   node dist/bench/infer-api.js [--rounds 2000] [--subnet ks,e,d,r] [--socket]   (JSON on stdout)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { request, createServer, Agent, type RequestOptions } from 'node:http';
import { fileURLToPath } from 'node:url';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon, type DaemonHandle } from '../agent/daemon.js';
import { loadSupernet } from '../agent/packages.js';
import { mulberry32 } from '../runtime/random.js';
import { median, summary } from './stats.js';

const { values: v } = parseArgs({ options: { rounds: { type: 'string' }, subnet: { type: 'string' }, serve: { type: 'boolean' }, socket: { type: 'boolean' } } });
const [ks, e, d, r] = (v.subnet ?? '5,4,3,28').split(',').map(Number) as [number, number, number, number];

async function agentFor(listen: boolean, socket?: string): Promise<DaemonHandle> {
  const pkg = await loadSupernet('fmnist-ofa');
  const daemon = await startDaemon({
    pkg,
    budget: { latencyMs: 1e6 },
    threads: 1,
    ladderSize: 2,
    calibration: { images: 200 },
    ...(listen ? { listen: { port: 0, ...(socket ? { socket } : {}) } } : {}),
  });
  const swap = await daemon.switchTo(pkg.space.uniform(ks, e, d, r), { pin: true });
  if (swap.outcome !== 'swapped' && swap.outcome !== 'unchanged') throw new Error(`switch: ${swap.outcome}`);
  return daemon;
}

/** The child: the bare echo server and the agent, until the parent goes away. */
async function serve(): Promise<void> {
  const bare = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    });
  });
  bare.keepAliveTimeout = 60_000;
  await new Promise<void>((ok) => bare.listen(0, '127.0.0.1', ok));
  const socket = v.socket ? join(tmpdir(), `nestswap-bench-${process.pid}.sock`) : undefined;
  const agent = await agentFor(true, socket);
  process.send!({ bare: `http://127.0.0.1:${(bare.address() as { port: number }).port}`, agent: agent.url, socket, subnet: agent.status().subnet?.id });
  process.on('disconnect', () => process.exit(0));
}

function call(agent: Agent, url: URL | { socketPath: string }, body: Buffer, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const where: RequestOptions = 'socketPath' in url ? { socketPath: url.socketPath } : { host: url.hostname, port: url.port };
    const req = request({ ...where, agent, method: 'POST', path: 'socketPath' in url ? '/v1/infer' : url.pathname, headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function main(): Promise<void> {
  const rounds = Number(v.rounds ?? 2000);
  const load0 = loadavg().map((x) => Math.round(x * 10) / 10);
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve', ...(v.subnet ? ['--subnet', v.subnet] : []), ...(v.socket ? ['--socket'] : [])], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const urls = await new Promise<{ bare: string; agent: string; socket?: string; subnet: string }>((ok, fail) => {
    child.once('message', (m) => ok(m as never));
    child.once('exit', (c) => fail(new Error(`server exited ${c}`)));
  });
  const local = await agentFor(false);
  try {
    const rng = mulberry32(7);
    const x = new Float32Array(784).map(() => rng());
    const bin = Buffer.from(x.buffer);
    const json = Buffer.from(JSON.stringify({ input: Array.from(x) }));
    const ka = () => new Agent({ keepAlive: true, maxSockets: 1 });
    const targets: Record<string, () => Promise<number>> = {
      bare: ((a) => () => call(a, new URL(urls.bare), bin, { 'content-type': 'application/octet-stream' }))(ka()),
      agentJson: ((a) => () => call(a, new URL(`${urls.agent}/v1/infer`), json, { 'content-type': 'application/json' }))(ka()),
      agentBinary: ((a) => () => call(a, new URL(`${urls.agent}/v1/infer`), bin, { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' }))(ka()),
      inProcess: async () => {
        const t0 = performance.now();
        await local.infer(x, 1);
        return performance.now() - t0;
      },
    };
    if (urls.socket) {
      const a = ka();
      targets.agentBinaryUnixSocket = () => call(a, { socketPath: urls.socket! }, bin, { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' });
    }
    const names = Object.keys(targets);
    const t: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    const order = [...names];
    for (let i = -200; i < rounds; i++) {
      for (let j = order.length - 1; j > 0; j--) {
        const k = Math.floor(rng() * (j + 1));
        [order[j], order[k]] = [order[k]!, order[j]!];
      }
      for (const n of order) {
        const ms = await targets[n]!();
        if (i >= 0) t[n]!.push(ms);
      }
    }
    // the model's run as the agent itself timed it (the monitor's median of its last window's runs)
    const status = (await (await fetch(`${urls.agent}/v1/status`)).json()) as { observed?: { p50Ms?: number | null } };
    const agentCompute = status.observed?.p50Ms ?? null;
    const r3 = (n: number) => Math.round(n * 1000) / 1000;
    const overhead = (n: string) => ({
      medianOfRoundDifferences: r3(median(t[n]!.map((ms, i) => ms - t.inProcess![i]! - t.bare![i]!))),
      differenceOfMedians: r3(median(t[n]!) - median(t.inProcess!) - median(t.bare!)),
      vsAgentsOwnComputeMs: agentCompute === null ? null : r3(median(t[n]!) - agentCompute - median(t.bare!)),
    });
    const over: Record<string, ReturnType<typeof overhead>> = {};
    for (const n of names.filter((n) => n.startsWith('agent'))) over[n] = overhead(n);
    const out = {
      bench: 'infer-api',
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus()[0]?.model,
      cores: cpus().length,
      loadAverage: { start: load0, end: loadavg().map((x) => Math.round(x * 10) / 10) },
      supernet: 'fmnist-ofa',
      subnet: urls.subnet,
      rounds,
      ms: Object.fromEntries(names.map((n) => [n, summary(t[n]!)])),
      agentComputeP50Ms: agentCompute,
      overheadVsBareMs: over,
      targetMs: 0.3,
      meetsTarget: over.agentBinary!.medianOfRoundDifferences <= 0.3,
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    await local.close();
    child.disconnect();
  }
}

if (v.serve) await serve();
else await main();
