/**
 * The local inference API against bare HTTP, side by side in one run (issue: the agent's round trip
 * minus the model's own compute ≤ the bare node:http round trip + 0.3 ms, median):
 *   bare         a node:http echo server (the body back as application/octet-stream)
 *   bareModel    a node:http server around the agent's own daemon: raw float32 in, d.infer(), raw
 *                logits out (what a minimal server around the same session costs)
 *   agentBinary  the agent's POST /v1/infer, raw float32 in, raw float32 logits out (Accept: octet-stream)
 *   agentNpy     the same with a .npy body (application/x-npy) and raw logits out
 *   agentJson    the same with JSON {input: [...]} in, JSON out
 *   inProcess    the same subnet's d.infer() in the client's own process (reference only)
 * The servers run in a child process; this process is the keep-alive client (one socket per target)
 * and makes every round's calls in a shuffled order. The model's own compute is the agent's measure
 * of each request's run (its Server-Timing header), so per round:
 *   overhead = agent round trip − that request's compute − the same round's bare round trip.
 * Reported: the median over rounds of that per-round difference (the target's figure), its p99, the
 * difference of medians, agent − bareModel per round, and the spread of the median over consecutive
 * blocks of rounds (how much the figure moves within one run).
 *
 *   node dist/bench/infer-api.js [--rounds 3000] [--blocks 10] [--subnet ks,e,d,r] [--socket] [--cpu-prof DIR]
 *   (JSON on stdout; --cpu-prof: the server process writes a V8 CPU profile into DIR)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { request, createServer, Agent, type RequestOptions } from 'node:http';
import { fileURLToPath } from 'node:url';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemon, type DaemonHandle } from '../agent/daemon.js';
import { loadSupernet } from '../agent/packages.js';
import { npyBytes } from '../agent/npy.js';
import { mulberry32 } from '../runtime/random.js';
import { median, percentile, summary } from './stats.js';

const { values: v } = parseArgs({
  options: { rounds: { type: 'string' }, blocks: { type: 'string' }, subnet: { type: 'string' }, serve: { type: 'boolean' }, socket: { type: 'boolean' }, 'cpu-prof': { type: 'string' } },
});
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

/** A node:http server; `answer` gets the whole body and returns the answer's bytes and headers. */
async function bareServer(answer: (body: Buffer) => Promise<[Buffer, Record<string, string>]> | [Buffer, Record<string, string>]): Promise<string> {
  const s = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const [out, headers] = await answer(Buffer.concat(chunks));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': out.length, ...headers });
      res.end(out);
    });
  });
  s.keepAliveTimeout = 60_000;
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`;
}

/** The child: the bare servers and the agent, until the parent goes away. */
async function serve(): Promise<void> {
  const socket = v.socket ? join(tmpdir(), `nestswap-bench-${process.pid}.sock`) : undefined;
  const agent = await agentFor(true, socket);
  const bare = await bareServer((body) => [body, {}]);
  const bareModel = await bareServer(async (body) => {
    // Buffer.concat of one chunk may be a pooled slice: copy to an aligned array, as a minimal server would
    const x = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
    const out = await agent.infer(x, x.length / 784);
    return [Buffer.from(out.logits.buffer, out.logits.byteOffset, out.logits.byteLength), { 'server-timing': `compute;dur=${out.computeMs.toFixed(3)}` }];
  });
  process.send!({ bare, bareModel, agent: agent.url, socket, subnet: agent.status().subnet?.id });
  process.on('disconnect', () => process.exit(0));
}

interface Call {
  ms: number;
  /** the server's Server-Timing compute;dur, where it sent one */
  computeMs?: number;
}

function call(agent: Agent, url: URL | { socketPath: string }, body: Buffer, headers: Record<string, string>): Promise<Call> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const where: RequestOptions = 'socketPath' in url ? { socketPath: url.socketPath } : { host: url.hostname, port: url.port };
    const req = request({ ...where, agent, method: 'POST', path: 'socketPath' in url ? '/v1/infer' : url.pathname, headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => {
        const ms = performance.now() - t0;
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
        const dur = /compute;dur=([\d.]+)/.exec(String(res.headers['server-timing'] ?? ''))?.[1];
        resolve(dur === undefined ? { ms } : { ms, computeMs: Number(dur) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const r3 = (n: number) => Math.round(n * 1000) / 1000;

/** Median, p99 and block spread of per-round differences `xs` (in round order). */
function paired(xs: number[], blocks: number): { median: number; p99: number; blockMedians: { min: number; median: number; max: number; each: number[] } } {
  const size = Math.floor(xs.length / blocks);
  const each = Array.from({ length: blocks }, (_, b) => r3(median(xs.slice(b * size, (b + 1) * size))));
  return { median: r3(median(xs)), p99: r3(percentile(xs, 99)), blockMedians: { min: Math.min(...each), median: r3(median(each)), max: Math.max(...each), each } };
}

type Urls = { bare: string; bareModel: string; agent: string; socket?: string; subnet: string };

function targets(urls: Urls, local: DaemonHandle, x: Float32Array): Record<string, () => Promise<Call>> {
  const bin = Buffer.from(x.buffer);
  const npy = npyBytes(x, [1, 784]);
  const json = Buffer.from(JSON.stringify({ input: Array.from(x) }));
  const ka = () => new Agent({ keepAlive: true, maxSockets: 1 });
  const raw = { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' };
  const post = (url: URL | { socketPath: string }, body: Buffer, headers: Record<string, string>) => {
    const a = ka();
    return () => call(a, url, body, headers);
  };
  const infer = new URL(`${urls.agent}/v1/infer`);
  const t: Record<string, () => Promise<Call>> = {
    bare: post(new URL(urls.bare), bin, { 'content-type': 'application/octet-stream' }),
    bareModel: post(new URL(urls.bareModel), bin, raw),
    agentBinary: post(infer, bin, raw),
    agentNpy: post(infer, npy, { 'content-type': 'application/x-npy', accept: 'application/octet-stream' }),
    agentJson: post(infer, json, { 'content-type': 'application/json' }),
    inProcess: async () => {
      const t0 = performance.now();
      const out = await local.infer(x, 1);
      return { ms: performance.now() - t0, computeMs: out.computeMs };
    },
  };
  if (urls.socket) t.agentBinaryUnixSocket = post({ socketPath: urls.socket }, bin, raw);
  return t;
}

/** Every round calls each target once, in a fresh shuffled order; 200 warm-up rounds are dropped. */
async function measure(t: Record<string, () => Promise<Call>>, rounds: number, rng: () => number): Promise<Record<string, Call[]>> {
  const names = Object.keys(t);
  const out: Record<string, Call[]> = Object.fromEntries(names.map((n) => [n, []]));
  const order = [...names];
  for (let i = -200; i < rounds; i++) {
    for (let j = order.length - 1; j > 0; j--) {
      const k = Math.floor(rng() * (j + 1));
      [order[j], order[k]] = [order[k]!, order[j]!];
    }
    for (const n of order) {
      const c = await t[n]!();
      if (i >= 0) out[n]!.push(c);
    }
  }
  return out;
}

function report(m: Record<string, Call[]>, blocks: number) {
  const ms = (n: string) => m[n]!.map((c) => c.ms);
  const compute = (n: string) => m[n]!.map((c) => c.computeMs ?? Number.NaN);
  const bare = ms('bare');
  const bareModel = ms('bareModel');
  const overhead = (n: string) => {
    const rt = ms(n);
    const c = compute(n);
    return {
      perRound: paired(rt.map((x, i) => x - c[i]! - bare[i]!), blocks),
      differenceOfMedians: r3(median(rt) - median(c) - median(bare)),
      ...(n === 'bareModel' ? {} : { vsBareModelPerRound: paired(rt.map((x, i) => x - bareModel[i]!), blocks) }),
    };
  };
  const servers = Object.keys(m).filter((n) => n.startsWith('agent') || n === 'bareModel');
  return {
    ms: Object.fromEntries(Object.keys(m).map((n) => [n, summary(ms(n))])),
    computeMs: Object.fromEntries(servers.concat('inProcess').map((n) => [n, summary(compute(n))])),
    overheadVsBareMs: Object.fromEntries(servers.map((n) => [n, overhead(n)])),
  };
}

async function main(): Promise<void> {
  const rounds = Number(v.rounds ?? 3000);
  const blocks = Number(v.blocks ?? 10);
  const load0 = loadavg().map((x) => Math.round(x * 10) / 10);
  const prof = v['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(v['cpu-prof'])] : [];
  const args = ['--serve', ...(v.subnet ? ['--subnet', v.subnet] : []), ...(v.socket ? ['--socket'] : [])];
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [...process.execArgv, ...prof] });
  const urls = await new Promise<Urls>((ok, fail) => {
    child.once('message', (msg) => ok(msg as Urls));
    child.once('exit', (c) => fail(new Error(`server exited ${c}`)));
  });
  const local = await agentFor(false);
  try {
    const rng = mulberry32(7);
    const x = new Float32Array(784).map(() => rng());
    const m = await measure(targets(urls, local, x), rounds, rng);
    const rep = report(m, blocks);
    const head = rep.overheadVsBareMs.agentBinary!.perRound;
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
      blocks,
      ...rep,
      targetMs: 0.3,
      meetsTarget: head.median <= 0.3,
      meetsTargetInEveryBlock: head.blockMedians.max <= 0.3,
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    await local.close();
    child.disconnect();
    await new Promise((ok) => (child.exitCode !== null ? ok(null) : child.once('exit', ok)));
  }
}

if (v.serve) await serve();
else await main();
