/**
 * Registry at fleet scale (prints JSON): N simulated devices (test/light-agent.ts, the real agent
 * protocol) against 3 replicas on PostgreSQL + NATS, and against the one-process SQLite registry,
 * in the same run, on this machine. Per setup:
 *   - connect: all N devices connected and welcomed (s), and registry memory per connection
 *   - command push through a random replica: POST → stored → doorbell → pushed → device (ms), and
 *     the full round trip with the ack recorded (POST with waitMs answered), median / p99
 *   - telemetry: every device streams batches with one in flight (as the real client does);
 *     events/s stored until the last ack, then the stored count is checked (none lost)
 *   - kill -9 one replica (SQLite: the registry, then restart it): time until every device it held
 *     is welcomed again
 *   node dist/bench/registry-scale.js [--agents 10000] [--commands 1000] [--per-batch 10] [--quick]
 * (--per-batch: events per telemetry frame; the real agent sends what it has queued, up to 200)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { BIN, Replica } from '../test/cluster.js';
import { tempDir } from '../test/helpers.js';
import { enrollLight, LightAgent } from '../test/light-agent.js';
import { freePort, natsAvailable, postgresAvailable, startNats, startPostgres } from '../test/servers.js';

const { values } = parseArgs({ options: { agents: { type: 'string' }, commands: { type: 'string' }, quick: { type: 'boolean' }, only: { type: 'string' }, 'per-batch': { type: 'string' } } });
const quick = Boolean(values.quick);
const N = Number(values.agents ?? (quick ? 1000 : 10_000));
const COMMANDS = Number(values.commands ?? (quick ? 300 : 1000));
const BATCHES = quick ? 3 : 5;
const PER_BATCH = Number(values['per-batch'] ?? 10);
const ADMIN = 'bench-admin-token-0123456789';
const ENROLL = 'bench-enroll-token-0123456789';
const headers = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
const progress = (msg: string) => process.stderr.write(`registry-scale: ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { n: s.length, median: round(q(0.5), 2), p99: round(q(0.99), 2), max: round(s[s.length - 1]!, 2) };
};

async function pool<T>(items: T[], n: number, fn: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

async function until(what: string, pred: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const rssMB = (pid: number | undefined): number => {
  if (!pid) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
};

interface Setup {
  name: string;
  urls: string[];
  pids(): (number | undefined)[];
  /** kills the replica at index i (kill -9); returns how to bring it back */
  kill(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  storedTelemetry(): Promise<number>;
  close(): Promise<void>;
}

async function measure(setup: Setup) {
  const urls = setup.urls;
  const agents: LightAgent[] = [];
  const delivered = new Map<string, number>();
  const onCommand = (id: string) => {
    if (!delivered.has(id)) delivered.set(id, performance.now());
  };
  const t0 = performance.now();
  await pool(Array.from({ length: N }, (_, i) => i), 64, async (i) => {
    const d = await enrollLight(urls[i % urls.length]!, ENROLL, `sim-${i}`);
    agents.push(new LightAgent({ ...d, urls: urls.map((_, k) => urls[(i + k) % urls.length]!), onCommand, backoff: { baseMs: 200, maxMs: 5000 }, handshakeTimeoutMs: 30_000 }));
  });
  const enrollS = (performance.now() - t0) / 1000;
  progress(`${setup.name}: ${N} enrolled in ${round(enrollS)} s`);
  const rssBefore = setup.pids().map(rssMB);

  // connect in waves of 250 every 100 ms (2,500/s), as a fleet coming online would, not all in one tick
  const c0 = performance.now();
  for (let i = 0; i < agents.length; i += 250) {
    for (const a of agents.slice(i, i + 250)) a.start();
    await sleep(100);
  }
  await until('all connected', () => agents.every((a) => a.welcomed), 600_000);
  const connectS = (performance.now() - c0) / 1000;
  progress(`${setup.name}: all connected in ${round(connectS)} s`);
  await sleep(1000);
  const rssAfter = setup.pids().map(rssMB);
  const perConnKB = ((rssAfter.reduce((a, b) => a + b, 0) - rssBefore.reduce((a, b) => a + b, 0)) * 1024) / N;

  // command push through a random replica: one-way (to the device) and round trip (ack recorded)
  const pushMs: number[] = [];
  let late = 0;
  const roundTripMs: number[] = [];
  const targets = Array.from({ length: COMMANDS }, () => agents[Math.floor(Math.random() * agents.length)]!);
  await pool(targets, 16, async (a) => {
    const via = urls[Math.floor(Math.random() * urls.length)]!;
    const s = performance.now();
    const res = await fetch(`${via}/v1/devices/${a.deviceId}/commands`, { method: 'POST', headers, body: JSON.stringify({ type: 'unpin', waitMs: 10_000 }) });
    let c = (await res.json()) as { id: string; status: string };
    // not acked within waitMs (the device was reconnecting): it is delivered on its next hello; wait for that
    while (c.status !== 'acked') {
      late++;
      await sleep(200);
      c = (await (await fetch(`${via}/v1/commands/${c.id}`, { headers })).json()) as { id: string; status: string };
      if (performance.now() - s > 120_000) throw new Error(`command ${c.id} still ${c.status} after 120 s`);
    }
    const e = performance.now();
    roundTripMs.push(e - s);
    pushMs.push((delivered.get(c.id) ?? e) - s);
  });

  progress(`${setup.name}: ${COMMANDS} commands, push p99 ${stats(pushMs).p99} ms`);
  // telemetry: each device sends BATCHES batches of PER_BATCH, the next after the previous is acked
  const storedBefore = await setup.storedTelemetry();
  const tt0 = performance.now();
  await Promise.all(
    agents.map(async (a) => {
      for (let b = 0; b < BATCHES; b++) {
        a.telemetry(PER_BATCH);
        const want = a.seq;
        await a.until(() => a.acked >= want, 600_000, 'telemetry ack');
      }
    }),
  );
  const telemetryS = (performance.now() - tt0) / 1000;
  const sent = N * BATCHES * PER_BATCH;
  const stored = (await setup.storedTelemetry()) - storedBefore;
  progress(`${setup.name}: telemetry ${stored}/${sent} in ${round(telemetryS, 2)} s`);

  // kill -9 the first replica; every device it held must be welcomed again elsewhere (or after the restart)
  const victim = urls[0]!;
  const held = agents.filter((a) => a.url === victim);
  const k0 = performance.now();
  await setup.kill(0);
  if (urls.length === 1) await setup.restart(0);
  await sleep(100);
  await until('reconnected', () => held.every((a) => a.welcomed), 120_000);
  const reconnectS = (performance.now() - k0) / 1000;

  await Promise.all(agents.map((a) => a.stop()));
  return {
    setup: setup.name,
    agents: N,
    enrollS: round(enrollS),
    connect: { allConnectedS: round(connectS), registryRssMB: rssAfter.map((v) => round(v)), memoryPerConnectionKB: round(perConnKB) },
    commandPushMs: stats(pushMs),
    commandRoundTripMs: stats(roundTripMs),
    commandsNotAckedWithin10s: late,
    telemetry: { sent, stored, lost: sent - stored, eventsPerFrame: PER_BATCH, seconds: round(telemetryS, 2), eventsPerS: Math.round(stored / telemetryS), framesPerS: Math.round(stored / PER_BATCH / telemetryS) },
    kill: { devicesOnKilled: held.length, allReconnectedS: round(reconnectS, 2), restarted: urls.length === 1 },
  };
}

async function replicated(dir: string): Promise<Setup> {
  const [pgs, nats] = await Promise.all([startPostgres({ maxConnections: 200 }), startNats()]);
  const database = await pgs.createDatabase('bench');
  const db = new pg.Pool({ connectionString: database, max: 2 });
  const replicas = ['r0', 'r1', 'r2'].map((id) => new Replica({ id, database, bus: nats.url, blobs: join(dir, 'blobs'), dataRoot: dir, adminToken: ADMIN, enrollToken: ENROLL }));
  await Promise.all(replicas.map((r) => r.start()));
  return {
    name: '3 replicas, PostgreSQL 15 + NATS',
    urls: replicas.map((r) => r.url),
    pids: () => replicas.map((r) => r.child?.pid),
    kill: (i) => replicas[i]!.kill(),
    restart: (i) => replicas[i]!.start(),
    storedTelemetry: async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM telemetry')).rows[0]!.n,
    close: async () => {
      await Promise.all(replicas.map((r) => r.stop()));
      await db.end();
      await nats.stop();
      await pgs.stop();
    },
  };
}

async function single(dir: string): Promise<Setup> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(process.execPath, [BIN, 'registry', '--port', String(port), '--data', join(dir, 'single'), '--log-level', 'error'], {
      env: { ...process.env, NESTSWAP_ADMIN_TOKEN: ADMIN, NESTSWAP_ENROLL_TOKEN: ENROLL },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await until('registry', async () => (await fetch(`${url}/v1/health`).catch(() => undefined))?.ok ?? false, 60_000);
  };
  const stop = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
  };
  await start();
  return {
    name: 'one process, SQLite',
    urls: [url],
    pids: () => [child?.pid],
    kill: () => stop('SIGKILL'),
    restart: start,
    storedTelemetry: async () => ((await (await fetch(`${url}/v1/stats`, { headers })).json()) as { telemetryEvents: number }).telemetryEvents,
    close: () => stop('SIGTERM'),
  };
}

const skip = postgresAvailable() ?? natsAvailable();
const loadAtStart = loadavg().map((v) => round(v, 1));
using dir = tempDir('nestswap-bench-scale-');
const results = [];
for (const make of skip ? [single] : [replicated, single]) {
  if (values.only && !make.name.startsWith(values.only)) continue;
  const setup = await make(dir.path);
  try {
    results.push(await measure(setup));
  } finally {
    await setup.close();
  }
}
process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'registry-scale',
      date: new Date().toISOString().slice(0, 10),
      machine: { cores: cpus().length, memoryGB: round(totalmem() / 2 ** 30), loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg().map((v) => round(v, 1)) },
      note: 'devices, replicas, PostgreSQL and NATS share this machine; the device simulator runs in this process',
      ...(skip ? { skipped: `replicas: ${skip}` } : {}),
      targets: { commandPushP99Ms: 250, telemetryEventsPerS: 50_000, reconnectS: 30 },
      results,
    },
    null,
    2,
  )}\n`,
);
