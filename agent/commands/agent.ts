import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { Selector } from '../daemon.js';
import { NestswapError } from '../../runtime/errors.js';
import { loadSupernet } from '../packages.js';
import { numberOpt, parse, required, untilSignal } from './common.js';
import { progress } from '../../runtime/node/progress.js';

const HELP = `Usage:
  nestswap agent --supernet <dir|name> --latency-ms X [--memory-mb Y] [--port P] [--host 127.0.0.1]
                 [--data DIR] [--threads N] [--interval-ms 1000] [--session-host main|worker]
                 [--socket PATH] [--ladder-rungs 64] [--log-level info]
  nestswap agent --registry URL --enroll-token T --supernet NAME --trust-root root.json [--name NAME] [--ladder-rungs 64]
                 [--update-interval-s 600] [...]

Standalone: loads the package, measures this device (or reuses the cached measurement in --data),
chooses the best subnet under the budget, serves the local HTTP API (POST /v1/infer, GET /v1/status,
PUT /v1/budget, POST|DELETE /v1/switch, GET /metrics, GET /healthz, GET /readyz) and hot-swaps subnets when live
conditions (CPU contention, memory, battery, temperature) change.
Sessions run on the main thread (--session-host main, the default): a builder worker calibrates,
materializes, optimises and checks the next subnet, and the main thread only loads the optimised graph,
so a swap stalls requests for about half a session creation. --threads defaults to the cores less one,
leaving one to the builder. --session-host worker runs the sessions themselves in two worker threads:
no swap step stalls the main thread, but each request crosses a thread (~0.15-0.6 ms more) and the
process holds more memory; --threads then defaults to 1.
With an accuracy predictor in the package, decisions come from a Pareto ladder of --ladder-rungs
subnets built once for this device (a binary search per decision; 0: search on every decision).
With --registry: enrolls with a registry and follows its commands (fleet mode; the Pareto ladder once an
earlier start has cached this device's profile, else the measured ladder); the enrollment token
may come from NESTSWAP_ENROLL_TOKEN instead of --enroll-token. Several URLs, comma-separated
(--registry URL1,URL2), are replicas of one registry: tried in order, moving on to the next with
the usual jittered backoff when one cannot be reached. Packages are verified with TUF from the root
given by --trust-root at install (copied into --data; root rotations are followed from then on);
without an installed root fleet mode refuses to start unless --insecure-no-signatures is given
(docs/signing.md). Every --update-interval-s seconds (default 600; 0: never) a fleet agent asks the
registry for a newer version of its supernet and, when there is one, serves it without a restart:
downloaded and verified while the current version serves, the switch made once the new one serves.

  nestswap agent <the options above> --print-systemd-unit [--service-user USER]
prints a systemd unit that runs nestswap-agent with these options as a service (DynamicUser, or USER;
data in /var/lib/nestswap-agent; tokens read from /etc/nestswap/agent.env). See docs/install.md.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(
    argv,
    {
      supernet: { type: 'string' },
      'latency-ms': { type: 'string' },
      'memory-mb': { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      threads: { type: 'string' },
      'interval-ms': { type: 'string' },
      'session-host': { type: 'string' },
      'ladder-rungs': { type: 'string' },
      'log-level': { type: 'string' },
      socket: { type: 'string' },
      registry: { type: 'string' },
      'enroll-token': { type: 'string' },
      name: { type: 'string' },
      'trust-root': { type: 'string' },
      'insecure-no-signatures': { type: 'boolean' },
      'update-interval-s': { type: 'string' },
      'print-systemd-unit': { type: 'boolean' },
      'service-user': { type: 'string' },
    },
    HELP,
  );
  if (!a) return 0;
  const v = a.values;
  if (v['update-interval-s'] !== undefined && !v.registry) throw new NestswapError('ERR_USAGE', '--update-interval-s is for fleet mode (--registry); a standalone agent serves the package it is given.');
  if (v['print-systemd-unit']) return (await import('../../runtime/node/service-unit.js')).printSystemdUnit('agent', argv, v['service-user']);
  const logger = pino({ level: v['log-level'] ?? 'info', redact: ['enrollToken', 'token', '*.token', 'headers.authorization'] });

  const rungs = numberOpt(v['ladder-rungs'], '--ladder-rungs') ?? 64;
  if (!Number.isInteger(rungs) || rungs < 0) throw new NestswapError('ERR_USAGE', `--ladder-rungs must be an integer >= 0 (got ${rungs}).`);

  if (v.registry) {
    const updateS = numberOpt(v['update-interval-s'], '--update-interval-s') ?? 600;
    if (!(updateS >= 0) || !Number.isFinite(updateS)) throw new NestswapError('ERR_USAGE', `--update-interval-s must be a number >= 0 (got ${updateS}).`);
    if (v.socket !== undefined) throw new NestswapError('ERR_USAGE', '--socket is for the standalone agent; a fleet agent listens on --host/--port.');
    // fleet mode lives in agent/fleet.ts (another module); load it only when asked for
    const fleetPath = join(fileURLToPath(new URL('..', import.meta.url)), 'fleet.js');
    if (!existsSync(fleetPath)) throw new NestswapError('ERR_USAGE', '--registry (fleet mode) is not available in this build: agent/fleet.ts is missing. Run without --registry for standalone mode.');
    const fleet = (await import(fleetPath)) as { runFleetAgent(opts: Record<string, unknown>): Promise<number | void> };
    const download = progress('downloading', { unit: 'bytes' });
    const code = await fleet.runFleetAgent({
      onDownloadProgress: (done: number, total: number) => {
        download.update(done, total);
        if (done >= total) download.end();
      },
      registry: v.registry,
      enrollToken: required(v['enroll-token'] ?? process.env.NESTSWAP_ENROLL_TOKEN, '--enroll-token (or NESTSWAP_ENROLL_TOKEN)'),
      supernet: required(v.supernet, '--supernet'),
      name: v.name,
      latencyMs: numberOpt(v['latency-ms'], '--latency-ms'),
      memoryMB: numberOpt(v['memory-mb'], '--memory-mb'),
      port: numberOpt(v.port, '--port'),
      host: v.host,
      dataDir: v.data,
      trustRoot: v['trust-root'],
      insecureNoSignatures: v['insecure-no-signatures'] ?? false,
      ladderRungs: rungs,
      updateCheckMs: Math.round(updateS * 1000),
      // as standalone (sessions on the main thread, one core left to the builder)
      threads: numberOpt(v.threads, '--threads') ?? (await import('../daemon.js')).defaultSessionThreads('main'),
      logger,
    });
    return typeof code === 'number' ? code : 0;
  }

  const latencyMs = numberOpt(required(v['latency-ms'], '--latency-ms'), '--latency-ms');
  const memoryMB = numberOpt(v['memory-mb'], '--memory-mb');
  const port = numberOpt(v.port, '--port') ?? 8787;
  const sessionHost = v['session-host'] ?? 'main';
  if (sessionHost !== 'main' && sessionHost !== 'worker') throw new NestswapError('ERR_USAGE', `--session-host must be 'main' or 'worker' (got '${sessionHost}').`);
  const intervalMs = numberOpt(v['interval-ms'], '--interval-ms') ?? 1000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new NestswapError('ERR_USAGE', `--port must be an integer 0..65535 (got ${port}).`);
  if (!(intervalMs >= 50)) throw new NestswapError('ERR_USAGE', `--interval-ms must be >= 50 (got ${intervalMs}).`);
  const asked = numberOpt(v.threads, '--threads');
  if (asked !== undefined && (!Number.isInteger(asked) || asked < 0)) throw new NestswapError('ERR_USAGE', `--threads must be an integer >= 0 (got ${asked}).`);

  const pkg = await loadSupernet(required(v.supernet, '--supernet'));
  const { startDaemon, defaultSessionThreads } = await import('../daemon.js');
  const threads = asked ?? defaultSessionThreads(sessionHost);
  const budget: { latencyMs?: number; memoryMB?: number } = {};
  if (latencyMs !== undefined) budget.latencyMs = latencyMs;
  if (memoryMB !== undefined) budget.memoryMB = memoryMB;
  // DESIGN's data flow: profile this device (or reuse the cached profile), then search with the
  // package's accuracy predictor. Without a predictor the daemon falls back to its measured ladder.
  let selector: Selector | undefined;
  if (pkg.fileByRole('accuracy-predictor')) {
    const { loadOrProfile } = await import('../profiler.js');
    const { currentDeviceIdentity } = await import('../device.js');
    const { profileLadderSelector, profileSearchSelector } = await import('../search-selector.js');
    const bar = progress('profiling');
    const p = await loadOrProfile(pkg, {
      device: await currentDeviceIdentity(),
      ...(v.data ? { dataDir: v.data } : {}),
      ...(threads ? { threads } : {}),
      onProgress: (x) => bar.update(x.done, x.total, x.phase),
    }).finally(() => bar.end());
    logger.info({ cached: p.cached, path: p.path }, 'device profile ready');
    selector = rungs > 0 ? await profileLadderSelector(pkg, p.profile, { rungs, logger }) : await profileSearchSelector(pkg, p.profile);
  }
  const d = await startDaemon({
    pkg,
    budget,
    ...(selector ? { selector } : {}),
    threads,
    sessionHost,
    ...(v.data ? { dataDir: v.data } : {}),
    logger: logger.child({ supernet: pkg.name }),
    monitor: { intervalMs },
    listen: { port, host: v.host ?? '127.0.0.1', ...(v.socket ? { socket: v.socket } : {}) },
  });
  process.stderr.write(`nestswap agent: serving ${pkg.name} subnet ${d.status().subnet?.id} on ${d.url}${v.socket ? ` and ${v.socket}` : ''}\n`);
  await untilSignal();
  await d.close();
  return 0;
}
