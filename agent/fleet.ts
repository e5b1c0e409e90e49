/**
 * Fleet mode of the agent (`nestswap agent --registry URL ...`): enroll (or reuse the saved device
 * token), get the package (download, or the verified cache when the registry is away or has
 * nothing newer), serve it (agent/fleet-serving.ts: the daemon, this device's profile measured or
 * reused and uploaded), stream telemetry (swaps, latency windows), obey pushed commands (switch →
 * pinned subnet, budget → new budget, unpin), and serve a newer published version when there is one,
 * without a restart. The daemon keeps serving from the cache whatever the registry does.
 */
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { isNestswapError, NestswapError } from '../runtime/errors.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import type { FewShotOptions } from './class-profile.js';
import { pruneDaemonCache } from './daemon-cache.js';
import { validateUserBudget, type DaemonHandle } from './daemon.js';
import { currentDeviceIdentity } from './device.js';
import { startServing, type Serving, type ServingOptions } from './fleet-serving.js';
import { LiveDaemon } from './live-daemon.js';
import { defaultDataDir, type ProfileOptions } from './profiler.js';
import { TufClient } from './tuf-client.js';
import { commandRunner, helloFrame, streamTelemetry, type CommandFrame, type CommandOutcome } from './core/fleet-link.js';
import { loadFleetState, saveFleetState } from './fleet-state.js';
import type { SubnetConfig } from '../runtime/space.js';
import { backoffDelay, RegistryClient, type CachedPackage } from './registry-client.js';

export interface FleetAgentOptions {
  registry: string;
  enrollToken: string;
  supernet: string;
  name?: string | undefined;
  latencyMs?: number | undefined;
  memoryMB?: number | undefined;
  port?: number | undefined;
  host?: string | undefined;
  dataDir?: string | undefined;
  threads?: number | undefined;
  logger?: Logger;
  /** profile settings (quicker ones in tests); `false` skips profiling and upload */
  profile?: Partial<Omit<ProfileOptions, 'device'>> | false;
  /** few-shot calibration of the registry's class profile before a full profile (`false`: always the full profile) */
  fewShot?: Partial<Omit<FewShotOptions, 'device'>> | false;
  /** Pareto-ladder rungs once a profile of this device is cached (default 64; 0: the measured ladder always) */
  ladderRungs?: number;
  /** monitor window (ms) */
  intervalMs?: number;
  /** give up starting when the registry cannot be reached and nothing is cached (default 10 tries) */
  startAttempts?: number;
  /** root.json to trust (TUF, docs/signing.md); copied into the data directory at install, rotated from then on */
  trustRoot?: string | undefined;
  /** run without verifying signatures when no root is installed (the registry's own digests only) */
  insecureNoSignatures?: boolean | undefined;
  /** how often a serving agent refreshes TUF metadata (root rotations, expiry); default 1 h, 0 = never */
  tufRefreshMs?: number;
  /** how often a serving agent asks the registry for a newer package version and serves it (default 10 min, 0 = never) */
  updateCheckMs?: number;
  /** when set, run until this signal aborts instead of until SIGINT/SIGTERM (programmatic use) */
  signal?: AbortSignal;
  /** progress of the package download: bytes done and in all (the CLI's progress line) */
  onDownloadProgress?: (doneBytes: number, totalBytes: number) => void;
  /** called once serving (programmatic use and tests) */
  onReady?: (a: FleetAgent) => void;
}

export type UpdateOutcome =
  | { outcome: 'current'; version: string }
  | { outcome: 'updated'; from: string; to: string; subnetId: string | null }
  | { outcome: 'failed'; version: string; code: string; message: string };

export interface FleetAgent {
  deviceId: string;
  /** the serving daemon; it stays the same handle across package updates */
  daemon: DaemonHandle;
  client: RegistryClient;
  /** the package version serving now */
  readonly pkg: CachedPackage;
  /** asks the registry for a newer version now and, when there is one, serves it (what the timer does) */
  checkForUpdate(): Promise<UpdateOutcome>;
  close(): Promise<void>;
}

async function retry<T>(what: string, attempts: number, log: Logger, fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const status = (err as { status?: number }).status;
      // refusals (bad token, unknown supernet) do not get better by retrying
      if (i + 1 >= attempts || (status !== undefined && status >= 400 && status < 500)) throw err;
      const delay = backoffDelay(i, 500, 10_000);
      log.warn({ err: (err as Error).message, delay }, `${what} failed; retrying`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Starts a fleet agent and returns once it serves. */
export async function startFleetAgent(opts: FleetAgentOptions): Promise<FleetAgent> {
  const log = opts.logger ?? pino({ level: 'silent' });
  const dataDir = opts.dataDir ?? defaultDataDir();
  const fleetDir = join(dataDir, 'fleet');
  // Signatures are on once a root is installed (given now or at an earlier start); off only when asked.
  const tuf =
    opts.trustRoot !== undefined || TufClient.installed(fleetDir)
      ? TufClient.open({ registry: opts.registry, dataDir: fleetDir, logger: log.child({ part: 'tuf' }), trustRoot: opts.trustRoot })
      : undefined;
  if (!tuf && !opts.insecureNoSignatures)
    throw new NestswapError('ERR_TRUST_ROOT_MISSING', 'Fleet mode verifies packages with TUF: give --trust-root root.json (made by nestswap keys init), or --insecure-no-signatures to run without.');
  if (!tuf) log.warn('running without signature checks (--insecure-no-signatures)');
  const client = new RegistryClient({ url: opts.registry, dataDir: fleetDir, logger: log.child({ part: 'registry-client' }), ...(tuf ? { tuf } : {}) });
  const identity = await currentDeviceIdentity();
  const attempts = opts.startAttempts ?? 10;

  const saved = client.identity();
  const id =
    saved ??
    (await retry('enroll', attempts, log, () =>
      client.enroll(opts.enrollToken, {
        name: opts.name ?? `${identity.deviceClass}-${identity.fingerprint.slice(0, 8)}`,
        supernet: opts.supernet,
        deviceClass: identity.deviceClass,
        fingerprint: identity.fingerprint,
        ...(identity.facts ? { facts: identity.facts } : {}),
      }),
    ));
  const dlog = log.child({ device: id.deviceId });

  // The registry may be away: a verified cached package is enough to serve.
  let cached: CachedPackage;
  try {
    cached = await client.ensurePackage(opts.supernet, 'latest', opts.onDownloadProgress);
  } catch (err) {
    const fallback = client.cachedPackage(opts.supernet);
    const refused = isNestswapError(err) && err.code !== 'ERR_METADATA_UNAVAILABLE' && err.code !== 'ERR_DOWNLOAD_TIMEOUT';
    if (!fallback) {
      // refusals (bad token, unknown supernet, a signature or hash that does not verify) do not get better by retrying
      if ((err as { status?: number }).status !== undefined || refused) throw err;
      cached = await retry('package download', attempts - 1, dlog, () => client.ensurePackage(opts.supernet, 'latest', opts.onDownloadProgress));
    } else {
      const code = (err as { code?: string }).code;
      dlog.warn({ code, err: (err as Error).message, version: fallback.version }, refused ? 'update refused: serving the last verified package' : 'registry unreachable: serving the cached package');
      // the registry (the fleet's operator) hears of it once the link is up
      if (refused) client.telemetry('error', { code: code ?? 'ERR_INTERNAL', message: (err as Error).message.slice(0, 500), serving: fallback.version });
      cached = fallback;
    }
  }

  // an acknowledged budget or pin from the registry outlives restarts (agent/fleet-state.ts)
  const initialBudget = validateUserBudget({ latencyMs: opts.latencyMs, memoryMB: opts.memoryMB });
  // the package cache keeps two versions; the daemon's caches of the weights it drops go with them
  const served = (p: CachedPackage) => {
    const { droppedWeights, keptWeights } = client.markServed(p);
    const pruned = pruneDaemonCache(join(dataDir, 'daemon'), opts.supernet, droppedWeights, keptWeights);
    if (pruned.files > 0) dlog.info({ files: pruned.files, bytes: pruned.bytes }, 'caches of removed package versions deleted');
  };
  const servingOptions = (): ServingOptions => {
    const state = loadFleetState(fleetDir, (why) => dlog.warn({ why }, 'fleet state damaged: ignored'));
    return {
      dataDir: join(dataDir, 'daemon'),
      identity,
      client,
      log: dlog,
      budget: state.budget ?? initialBudget,
      pin: state.pin,
      onPinLost: () => saveFleetState(fleetDir, { ...loadFleetState(fleetDir), pin: null }),
      threads: opts.threads,
      intervalMs: opts.intervalMs,
      ladderRungs: opts.ladderRungs,
      profile: opts.profile,
      fewShot: opts.fewShot,
    };
  };
  // Loading verifies every digest again: a damaged cache never serves. A version that cannot serve
  // (it verified, then failed its first subnet) gives way to the last one that served here.
  const unservable = new Map<string, { code: string; message: string }>();
  let serving: Serving;
  try {
    serving = await startServing(await loadPackageDir(cached.dir), servingOptions());
  } catch (err) {
    const served = client.servedPackage(opts.supernet);
    if (!served || served.manifestSha256 === cached.manifestSha256) throw err;
    const code = (err as { code?: string }).code ?? 'ERR_INTERNAL';
    const message = (err as Error).message;
    dlog.error({ code, err: message, version: cached.version, serving: served.version }, 'this version cannot serve: serving the last version that served');
    client.telemetry('error', { code, message: message.slice(0, 500), version: cached.version, serving: served.version });
    unservable.set(cached.manifestSha256, { code, message });
    cached = served;
    serving = await startServing(await loadPackageDir(served.dir), servingOptions());
  }
  served(cached);
  const live = new LiveDaemon(serving.daemon);
  let server: { url: string; close(): Promise<void> } | undefined;
  if (opts.port !== undefined) {
    const { startServer } = await import('./server.js');
    server = await startServer(live, { port: opts.port, host: opts.host ?? '127.0.0.1', logger: dlog.child({ component: 'http' }) });
    live.url = server.url;
    dlog.info({ url: server.url }, 'serving');
  }

  const stopTelemetry = streamTelemetry(live, (kind, data) => client.telemetry(kind, data));
  // A serving agent follows root rotations and notices a frozen registry (ERR_METADATA_EXPIRED): it keeps serving.
  const tufTimer = tuf && opts.tufRefreshMs !== 0
    ? setInterval(() => {
        tuf.refresh().then(
          () => dlog.debug('TUF metadata refreshed'),
          (err: Error) => {
            const code = (err as { code?: string }).code ?? 'ERR_INTERNAL';
            dlog.warn({ code, err: err.message }, 'TUF refresh refused: serving the last verified package');
            if (code !== 'ERR_METADATA_UNAVAILABLE') client.telemetry('error', { code, message: err.message.slice(0, 500) });
          },
        );
      }, opts.tufRefreshMs ?? 3600_000)
    : undefined;
  tufTimer?.unref();
  const runCommand = commandRunner(live, (kind, data) => client.telemetry(kind, data), dlog);
  // what a command leaves behind is on disk before its acknowledgement leaves
  const onCommand = async (c: CommandFrame): Promise<CommandOutcome> => {
    const outcome = await runCommand(c);
    if (outcome.ok) {
      const prev = loadFleetState(fleetDir);
      const next = c.type === 'switch' ? { ...prev, pin: c.payload.subnet as SubnetConfig } : c.type === 'budget' ? { budget: validateUserBudget(c.payload.budget), pin: null } : { ...prev, pin: null };
      saveFleetState(fleetDir, { ...next, command: c.id });
    }
    return outcome;
  };
  client.connect({ onCommand, hello: () => helloFrame(live) });

  // Package updates: a newer version is downloaded and verified while the current one serves, a
  // second daemon starts on it (its first subnet materialized and calibrated), the handle moves over
  // and the old daemon closes once its calls in flight are done. Any failure leaves the old one serving.
  let closing = false;
  let checking: Promise<UpdateOutcome> | undefined;
  const update = async (): Promise<UpdateOutcome> => {
    const from = cached;
    let next: CachedPackage;
    try {
      next = await client.ensurePackage(opts.supernet, 'latest');
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERR_INTERNAL';
      const message = (err as Error).message;
      dlog.warn({ code, err: message, serving: from.version }, 'update check failed: serving the current package');
      if (code !== 'ERR_METADATA_UNAVAILABLE' && code !== 'ERR_DOWNLOAD_TIMEOUT' && (err as { status?: number }).status === undefined) client.telemetry('error', { code, message: message.slice(0, 500), serving: from.version });
      return { outcome: 'failed', version: from.version, code, message };
    }
    if (next.manifestSha256 === from.manifestSha256) return { outcome: 'current', version: from.version };
    // a version that failed to serve is not tried again by this process (a restart tries it once more)
    const known = unservable.get(next.manifestSha256);
    if (known) return { outcome: 'failed', version: next.version, ...known };
    let started: Serving | undefined;
    try {
      const nextPkg = await loadPackageDir(next.dir);
      if (closing) throw new NestswapError('ERR_SHUTDOWN', 'The agent is shutting down.');
      started = await startServing(nextPkg, servingOptions());
      if (closing) throw new NestswapError('ERR_SHUTDOWN', 'The agent is shutting down.');
    } catch (err) {
      await started?.close('the update was abandoned');
      const code = (err as { code?: string }).code ?? 'ERR_INTERNAL';
      const message = (err as Error).message;
      dlog.error({ code, err: message, version: next.version, serving: from.version }, 'update failed: serving the current package');
      if (code !== 'ERR_SHUTDOWN') unservable.set(next.manifestSha256, { code, message });
      client.telemetry('error', { code, message: message.slice(0, 500), version: next.version, serving: from.version });
      return { outcome: 'failed', version: next.version, code, message };
    }
    const old = serving;
    serving = started;
    cached = next;
    await live.replace(started.daemon);
    await old.close('the package was updated');
    served(next);
    const subnetId = live.status().subnet?.id ?? null;
    dlog.info({ from: from.version, to: next.version, subnet: subnetId }, 'package updated');
    client.telemetry('status', { event: 'package-updated', supernet: opts.supernet, from: from.version, to: next.version, subnetId });
    return { outcome: 'updated', from: from.version, to: next.version, subnetId };
  };
  const checkForUpdate = (): Promise<UpdateOutcome> => {
    if (closing) return Promise.resolve({ outcome: 'current', version: cached.version });
    checking ??= update().finally(() => (checking = undefined));
    return checking;
  };
  const updateTimer = opts.updateCheckMs !== 0 ? setInterval(() => void checkForUpdate(), opts.updateCheckMs ?? 600_000) : undefined;
  updateTimer?.unref();

  return {
    deviceId: id.deviceId,
    daemon: live,
    client,
    get pkg() {
      return cached;
    },
    checkForUpdate,
    async close() {
      closing = true;
      clearInterval(updateTimer);
      clearInterval(tufTimer);
      await checking;
      stopTelemetry();
      await client.close();
      await server?.close();
      await serving.close();
    },
  };
}

/** CLI entry (agent/commands/agent.ts): runs until SIGINT/SIGTERM (or `signal`). */
export async function runFleetAgent(opts: FleetAgentOptions): Promise<number> {
  if (!opts.registry) throw new NestswapError('ERR_USAGE', 'Fleet mode needs --registry.');
  const agent = await startFleetAgent(opts);
  const log = opts.logger;
  log?.info({ device: agent.deviceId, url: agent.daemon.url, supernet: agent.pkg.name, version: agent.pkg.version, downloaded: agent.pkg.downloaded }, 'fleet agent serving');
  opts.onReady?.(agent);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    if (opts.signal) opts.signal.addEventListener('abort', stop, { once: true });
    else {
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    }
  });
  await agent.close();
  return 0;
}
