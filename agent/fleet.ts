/**
 * Fleet mode of the agent (`nestswap agent --registry URL ...`): enroll (or reuse the saved device
 * token), get the package (download, or the verified cache when the registry is away or has
 * nothing newer), start the daemon, profile this device (or reuse the cached profile) and upload
 * it, stream telemetry (swaps, latency windows) and obey pushed commands (switch → pinned subnet,
 * budget → new budget, unpin). The daemon keeps serving from the cache whatever the registry does.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { isNestswapError, NestswapError } from '../runtime/errors.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { parseProfile, serializeProfile, type Profile } from '../runtime/profile.js';
import { fewShotFromClass, type FewShotOptions } from './class-profile.js';
import { cachedProfileLadder } from './fleet-selector.js';
import { startDaemon, validateUserBudget, type DaemonHandle } from './daemon.js';
import { currentDeviceIdentity } from './device.js';
import { defaultDataDir, loadOrProfile, type ProfileOptions } from './profiler.js';
import { TufClient } from './tuf-client.js';
import { commandRunner, helloFrame, streamTelemetry, type CommandFrame, type CommandOutcome } from './core/fleet-link.js';
import { loadFleetState, saveFleetState } from './fleet-state.js';
import type { SubnetConfig } from '../runtime/space.js';
import type { SupernetPackage } from '../runtime/package.js';
import { backoffDelay, RegistryClient, type CachedPackage } from './registry-client.js';

/**
 * The registry's class profile for this device's class, scaled by a few whole subnets timed here, when
 * it fits (docs/profiler.md#class-profiles); undefined sends the caller to the full profile.
 */
async function fewShotProfile(client: RegistryClient, pkg: SupernetPackage, o: FewShotOptions, log: Logger): Promise<Profile | undefined> {
  let cp;
  try {
    cp = await client.classProfile(o.device.deviceClass);
  } catch (err) {
    log.info({ path: 'full', reason: `class profile unavailable: ${(err as Error).message}` }, 'profiling');
    return undefined;
  }
  if (!cp) {
    log.info({ path: 'full', reason: `no class profile for '${o.device.deviceClass}'` }, 'profiling');
    return undefined;
  }
  let r;
  try {
    r = await fewShotFromClass(pkg, parseProfile(cp.profile, 'class profile'), { ...o, classDevices: cp.devices });
  } catch (err) {
    if (o.signal?.aborted) throw err;
    log.info({ path: 'full', reason: `class profile unusable: ${(err as Error).message}` }, 'profiling');
    return undefined;
  }
  log.info({ path: r.adopted ? 'few-shot' : 'full', reason: r.reason, scale: r.scale, mape: r.stats.mape, classDevices: cp.devices, wallMs: Math.round(r.wallMs) }, 'profiling');
  return r.profile;
}

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
  /** when set, run until this signal aborts instead of until SIGINT/SIGTERM (programmatic use) */
  signal?: AbortSignal;
  /** progress of the package download: bytes done and in all (the CLI's progress line) */
  onDownloadProgress?: (doneBytes: number, totalBytes: number) => void;
  /** called once serving (programmatic use and tests) */
  onReady?: (a: FleetAgent) => void;
}

export interface FleetAgent {
  deviceId: string;
  daemon: DaemonHandle;
  client: RegistryClient;
  pkg: CachedPackage;
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
  // Loading verifies every digest again: a damaged cache never serves.
  const pkg = await loadPackageDir(cached.dir);

  // an acknowledged budget or pin from the registry outlives restarts (agent/fleet-state.ts)
  const state = loadFleetState(fleetDir, (why) => dlog.warn({ why }, 'fleet state damaged: ignored'));
  const budget = state.budget ?? validateUserBudget({ latencyMs: opts.latencyMs, memoryMB: opts.memoryMB });
  // decides from a Pareto ladder over this device's profile, as standalone, once one is cached
  const selectorOpts = { dataDir: join(dataDir, 'daemon'), fingerprint: identity.fingerprint, threads: opts.threads, logger: dlog.child({ part: 'selector' }), ...(opts.ladderRungs !== undefined ? { rungs: opts.ladderRungs } : {}) };
  const selector = opts.profile === false ? undefined : await cachedProfileLadder(pkg, selectorOpts);
  const daemon = await startDaemon({
    pkg,
    budget,
    ...(selector ? { selector } : {}),
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    dataDir: join(dataDir, 'daemon'),
    logger: dlog.child({ part: 'daemon' }),
    monitor: { intervalMs: opts.intervalMs ?? 1000 },
    ...(opts.port !== undefined ? { listen: { port: opts.port, host: opts.host ?? '127.0.0.1' } } : {}),
  });

  if (state.pin) {
    const r = await daemon.switchTo(state.pin, { pin: true });
    if (r.outcome === 'failed') {
      dlog.warn({ err: r.error }, 'the pinned subnet cannot be served any more: pin dropped');
      saveFleetState(fleetDir, { ...state, pin: null });
    } else dlog.info({ subnet: daemon.status().subnet?.id }, 'pinned subnet restored');
  }

  const stopTelemetry = streamTelemetry(daemon, (kind, data) => client.telemetry(kind, data));
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
  const runCommand = commandRunner(daemon, (kind, data) => client.telemetry(kind, data), dlog);
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
  client.connect({ onCommand, hello: () => helloFrame(daemon) });

  // Profile in the background: serving does not wait for it; the upload retries until it lands. A
  // shutdown stops both at once (within one timed visit), so stopping never waits for a profile.
  const stopProfiling = new AbortController();
  const signal = stopProfiling.signal;
  const profiling = (async () => {
    if (opts.profile === false) return;
    const threadsOpt = opts.threads ? { threads: opts.threads } : {};
    const instead = () => fewShotProfile(client, pkg, { device: identity, ...threadsOpt, ...(opts.profile ? opts.profile : {}), ...opts.fewShot, signal }, dlog);
    const p = await loadOrProfile(pkg, { device: identity, dataDir: join(dataDir, 'daemon'), ...threadsOpt, ...opts.profile, signal, ...(opts.fewShot === false ? {} : { instead }) });
    dlog.info({ cached: p.cached }, 'profile ready');
    // a first start served from the measured ladder meanwhile: the Pareto ladder over the new profile takes over now
    if (!selector && !signal.aborted) {
      const ladder = await cachedProfileLadder(pkg, selectorOpts);
      if (ladder && !signal.aborted) await daemon.useSelector(ladder, 'selector: Pareto ladder over the new profile');
    }
    const text = serializeProfile(p.profile);
    for (let i = 0; !signal.aborted; i++) {
      try {
        await client.uploadProfile(text);
        dlog.info('profile uploaded');
        return;
      } catch (err) {
        if ((err as { status?: number }).status !== undefined && (err as { status: number }).status < 500) throw err;
        await sleep(backoffDelay(i, 1000, 30_000), undefined, { signal });
      }
    }
  })().catch((err) => {
    if (signal.aborted) dlog.info('profiling stopped: the agent is shutting down (the next start measures again)');
    else dlog.error({ err: (err as Error).message }, 'profile upload failed');
  });

  return {
    deviceId: id.deviceId,
    daemon,
    client,
    pkg: cached,
    async close() {
      stopProfiling.abort(new Error('the agent is shutting down'));
      clearInterval(tufTimer);
      stopTelemetry();
      await client.close();
      await daemon.close();
      await profiling;
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
