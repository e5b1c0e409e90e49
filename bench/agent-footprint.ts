/**
 * Footprint of a real standalone agent process → JSON on stdout.
 *
 *   node dist/bench/agent-footprint.js [--latency-ms 2] [--idle-s 60] [--interval-ms 1000] [--threads N]
 *                                      [--launch launcher|node] [--node-flags=--max-semi-space-size=1]
 *
 * Starts the agent for fmnist-ofa as its own process twice on one data directory, the way it is installed
 * (`bin/nestswap-agent`, with its memory settings; `--launch node`: plain `node bin/nestswap.js agent`):
 * a first start (profiles the device, searches, serves) and a restart (reuses the cached profile
 * and BN statistics — the steady state of a deployed agent). Each time it waits until the agent
 * serves, sends 200 requests, then leaves it idle (monitor running, no traffic) and reads, from
 * /proc/<pid>: resident memory (VmRSS, and the peak VmHWM) and CPU time (utime + stime) over the
 * idle period, as a percentage of one core (also per 5 s slice). The 200 requests' HTTP latency
 * (JSON body) is reported too, so flags that trade memory for speed (--node-flags) show both sides.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoPath } from '../test/helpers.js';

const { values } = parseArgs({
  options: {
    'latency-ms': { type: 'string', default: '2' },
    'idle-s': { type: 'string', default: '60' },
    'interval-ms': { type: 'string', default: '1000' },
    threads: { type: 'string' },
    'node-flags': { type: 'string', default: '' },
    launch: { type: 'string', default: 'launcher' },
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const launch = values.launch!;
if (launch !== 'launcher' && launch !== 'node') throw new Error(`--launch must be launcher or node, not ${launch}`);
const dir = mkdtempSync(join(tmpdir(), 'nestswap-footprint-'));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function measure() {
  const port = await freePort();
  const args = ['--supernet', 'fmnist-ofa', '--latency-ms', values['latency-ms'], '--port', String(port), '--data', dir, '--interval-ms', values['interval-ms'], ...(values.threads !== undefined ? ['--threads', values.threads] : []), '--log-level', 'error'];
  const nodeFlags = values['node-flags']!.split(/\s+/).filter(Boolean);
  const child =
    launch === 'launcher'
      ? spawn(repoPath('bin', 'nestswap-agent'), args, {
          stdio: ['ignore', 'ignore', 'inherit'],
          env: { ...process.env, NODE: process.execPath, NESTSWAP_NODE_FLAGS: nodeFlags.join(' ') },
        })
      : spawn(process.execPath, [...nodeFlags, repoPath('bin', 'nestswap.js'), 'agent', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  const procStatus = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]) / 1024;
  const cpuTicks = () => {
    const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return Number(v[11]) + Number(v[12]); // utime, stime (fields 14, 15), USER_HZ = 100
  };
  try {
    const t0 = performance.now();
    let status: { subnet?: { id: string } | null } = {};
    for (;;) {
      if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}`);
      try {
        const res = await fetch(`${url}/v1/status`);
        if (res.ok) status = (await res.json()) as typeof status;
        if (status.subnet?.id) break;
      } catch {
        /* not up yet */
      }
      if (performance.now() - t0 > 300_000) throw new Error('agent did not start serving within 300 s');
      await sleep(200);
    }
    const readyMs = performance.now() - t0;
    const input = Array.from({ length: 784 }, (_, i) => (i % 17) / 17);
    const lat: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
      if (!res.ok) throw new Error(`infer failed: ${res.status}`);
      await res.arrayBuffer();
      lat.push(performance.now() - t);
    }
    lat.sort((a, b) => a - b);
    await sleep(3000); // let the last window close
    const idleS = Number(values['idle-s']);
    const c0 = cpuTicks();
    const w0 = performance.now();
    const slices: number[] = [];
    for (let t = 0; t < idleS; t += 5) {
      const a = cpuTicks();
      await sleep(5000);
      slices.push(cpuTicks() - a);
    }
    const cpuS = (cpuTicks() - c0) / 100;
    const wallS = (performance.now() - w0) / 1000;
    return {
      subnet: status.subnet?.id,
      readyMs: Math.round(readyMs),
      httpMs: { median: Math.round(lat[100]! * 1000) / 1000, p99: Math.round(lat[197]! * 1000) / 1000 },
      rssMB: Math.round(procStatus('VmRSS')),
      peakRssMB: Math.round(procStatus('VmHWM')),
      idle: {
        seconds: Math.round(wallS * 10) / 10,
        cpuPercentOfOneCore: Math.round((cpuS / wallS) * 1000) / 10,
        // the monitor probes every 10 s right after traffic stops, backing off to once a minute
        first20sCpuPercent: Math.round((slices.slice(0, 4).reduce((a, b) => a + b, 0) / 100 / Math.min(20, slices.length * 5)) * 1000) / 10,
        per5s: slices.map((t) => Math.round((t / 5) * 10) / 10),
      },
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

try {
  const firstStart = await measure();
  const restart = await measure();
  const out = {
    bench: 'agent-footprint',
    supernet: 'fmnist-ofa',
    monitorIntervalMs: Number(values['interval-ms']),
    threads: values.threads !== undefined ? Number(values.threads) : "the agent's default",
    launch: launch === 'launcher' ? 'bin/nestswap-agent' : 'node bin/nestswap.js agent',
    nodeFlags: values['node-flags'],
    firstStart: { note: 'profiles the device, searches, calibrates, serves', ...firstStart },
    restart: { note: 'cached profile and BN statistics: the steady state', ...restart },
    targets: { rssMB: 150, idleCpuPercent: 1 },
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
