/**
 * Registry benchmark (prints JSON). The registry runs as its own process (`nestswap registry`);
 * this process plays the clients.
 *   - best-model query: fresh searches (distinct seeds) and repeated queries (memoised), cached device profile
 *   - 1,000 concurrent WebSocket agents (lightweight ws clients): command push round trip
 *     (POST with waitMs → pushed → acked → answered)
 *   - telemetry ingest: every agent streams batches (one in flight, like the real client); events/s
 *     until the last ack, then the stored count is checked (none lost)
 *   node dist/bench/registry.js [--agents 1000] [--quick]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { AdminClient } from '../registry/admin-client.js';
import { repoPath } from '../test/helpers.js';
import { makeQueryablePackage, midBudgetMs, profileText, tinyProfile } from '../test/registry-fixtures.js';

const { values } = parseArgs({ options: { agents: { type: 'string' }, quick: { type: 'boolean' } } });
const quick = Boolean(values.quick);
const N_AGENTS = Number(values.agents ?? (quick ? 200 : 1000));
const BATCHES = quick ? 5 : 20;
const PER_BATCH = 10;
const ADMIN = 'bench-admin-token-0123456789';
const ENROLL = 'bench-enroll-token-0123456789';
const packr = new Packr({ useRecords: false, moreTypes: false });

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  const r = (v: number) => Math.round(v * 100) / 100;
  return { n: s.length, median: r(q(0.5)), p99: r(q(0.99)), max: r(s[s.length - 1]!) };
};

async function pool<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'nestswap-bench-registry-'));
const s = createServer();
await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
const port = (s.address() as { port: number }).port;
await new Promise((r) => s.close(r));
const url = `http://127.0.0.1:${port}`;
const child = spawn(process.execPath, [repoPath('bin', 'nestswap.js'), 'registry', '--port', String(port), '--data', join(dir, 'data'), '--log-level', 'error'], {
  env: { ...process.env, NESTSWAP_ADMIN_TOKEN: ADMIN, NESTSWAP_ENROLL_TOKEN: ENROLL },
  stdio: ['ignore', 'ignore', 'inherit'],
});
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/v1/health`)).ok) break;
    } catch {
      if (i > 300) throw new Error('registry did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const admin = new AdminClient(url, ADMIN);
  await admin.publishDir(await makeQueryablePackage(join(dir, 'pkg')));
  const enroll = async (name: string) => {
    const res = await fetch(`${url}/v1/devices/enroll`, { method: 'POST', headers: { authorization: `Bearer ${ENROLL}`, 'content-type': 'application/json' }, body: JSON.stringify({ name, supernet: 'tiny' }) });
    return (await res.json()) as { deviceId: string; token: string };
  };

  // ---------- best-model query ----------
  const profile = await tinyProfile();
  const q = await enroll('query-device');
  await fetch(`${url}/v1/devices/${q.deviceId}/profile`, { method: 'PUT', headers: { authorization: `Bearer ${q.token}`, 'content-type': 'application/json' }, body: profileText(profile) });
  const budget = await midBudgetMs(profile);
  await admin.query({ supernet: 'tiny', device: q.deviceId, budget: { latencyMs: budget }, seed: 100_000 }); // load package + predictors
  const nFresh = quick ? 10 : 40;
  const fresh: number[] = [];
  let t0 = performance.now();
  for (let i = 0; i < nFresh; i++) {
    const t = performance.now();
    await admin.query({ supernet: 'tiny', device: q.deviceId, budget: { latencyMs: budget }, seed: i });
    fresh.push(performance.now() - t);
  }
  const freshWall = performance.now() - t0;
  const nRepeat = quick ? 500 : 3000;
  t0 = performance.now();
  const repeated = await pool(nRepeat, 16, async () => {
    const t = performance.now();
    await admin.query({ supernet: 'tiny', device: q.deviceId, budget: { latencyMs: budget }, seed: 0 });
    return performance.now() - t;
  });
  const repeatWall = performance.now() - t0;

  // ---------- 1,000 WebSocket agents ----------
  t0 = performance.now();
  const devices = await pool(N_AGENTS, 32, (i) => enroll(`ws-${i}`));
  const enrollMs = performance.now() - t0;
  interface Agent {
    ws: WebSocket;
    id: string;
    acked: number;
    onAck?: (seq: number) => void;
  }
  t0 = performance.now();
  const agents: Agent[] = await pool(N_AGENTS, 100, async (i) => {
    const d = devices[i]!;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { headers: { authorization: `Bearer ${d.token}` }, perMessageDeflate: false });
    const a: Agent = { ws, id: d.deviceId, acked: 0 };
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.on('message', (data) => {
        const f = packr.unpack(data as Buffer) as { t: string; id?: string; seq?: number };
        if (f.t === 'welcome') resolve();
        else if (f.t === 'command') ws.send(packr.pack({ t: 'ack', id: f.id, ok: true, result: { bench: true } }));
        else if (f.t === 'telemetry-ack') {
          a.acked = f.seq!;
          a.onAck?.(f.seq!);
        }
      });
      ws.once('open', () => ws.send(packr.pack({ t: 'hello', agent: 'bench' })));
    });
    return a;
  });
  const connectMs = performance.now() - t0;
  const connected = (await admin.stats()).connected;

  // command round trip: one command per agent, 50 in flight
  t0 = performance.now();
  const outcomes: Record<string, number> = {};
  const rtt = (
    await pool(N_AGENTS, 50, async (i) => {
      const t = performance.now();
      const c = await admin.command(agents[i]!.id, { type: 'budget', budget: { latencyMs: 5 }, waitMs: 10_000 });
      outcomes[c.status] = (outcomes[c.status] ?? 0) + 1;
      return c.status === 'acked' ? performance.now() - t : undefined;
    })
  ).filter((x): x is number => x !== undefined);
  const commandWall = performance.now() - t0;
  const connectedAfterCommands = (await admin.stats()).connected;

  // telemetry: each agent sends BATCHES batches of PER_BATCH events, one batch in flight
  t0 = performance.now();
  await Promise.all(
    agents.map(async (a) => {
      let seq = 0;
      for (let b = 0; b < BATCHES; b++) {
        const events = Array.from({ length: PER_BATCH }, () => ({ seq: ++seq, at: Date.now(), kind: 'latency', data: { p50Ms: 1.5, p99Ms: 2.5, samples: 100 } }));
        const last = seq;
        const acked = new Promise<void>((resolve) => {
          a.onAck = (s) => {
            if (s >= last) resolve();
          };
        });
        a.ws.send(packr.pack({ t: 'telemetry', events }));
        await acked;
      }
    }),
  );
  const telemetryMs = performance.now() - t0;
  const expected = N_AGENTS * BATCHES * PER_BATCH;
  const st = await admin.stats();
  for (const a of agents) a.ws.terminate();

  process.stdout.write(
    `${JSON.stringify(
      {
        machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
        query: {
          budgetMs: Math.round(budget * 1000) / 1000,
          fresh: { ...stats(fresh), perSecond: Math.round((nFresh / freshWall) * 1000 * 10) / 10, note: 'evolution search (FAST_EVOLUTION) per query, distinct seeds, sequential' },
          repeated: { ...stats(repeated), perSecond: Math.round((nRepeat / repeatWall) * 1000), concurrency: 16, note: 'same device, budget and seed: memoised answer' },
        },
        websocket: {
          agents: N_AGENTS,
          connected,
          enrollMs: Math.round(enrollMs),
          connectMs: Math.round(connectMs),
          commandRoundTripMs: { ...stats(rtt), inFlight: 50, perSecond: Math.round((N_AGENTS / commandWall) * 1000), outcomes, connectedAfterCommands },
          telemetry: {
            events: expected,
            stored: st.telemetryEvents,
            lost: expected - st.telemetryEvents,
            batch: PER_BATCH,
            ms: Math.round(telemetryMs),
            eventsPerSecond: Math.round((expected / telemetryMs) * 1000),
          },
        },
      },
      null,
      2,
    )}\n`,
  );
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
