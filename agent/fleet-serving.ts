/**
 * One package served by a fleet agent: its daemon (decisions from the Pareto ladder over this
 * device's cached profile, else the measured ladder), the fleet's budget and pin restored, and this
 * device's profile of the package measured (or reused) in the background, uploaded, and then used:
 * the ladder over a new profile takes over in the running daemon. A package update starts a second
 * one of these on the new version (agent/fleet.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { parseProfile, serializeProfile, type Profile } from '../runtime/profile.js';
import type { SupernetPackage } from '../runtime/package.js';
import type { SubnetConfig } from '../runtime/space.js';
import type { UserBudget } from './policy.js';
import { fewShotFromClass, type FewShotOptions } from './class-profile.js';
import { startDaemon, type DaemonHandle } from './daemon.js';
import type { DeviceIdentity } from './core/profiler.js';
import { cachedProfileLadder } from './fleet-selector.js';
import { loadOrProfile, type ProfileOptions } from './profiler.js';
import { backoffDelay, type RegistryClient } from './registry-client.js';

export interface ServingOptions {
  /** the daemon's data directory (profiles, BN statistics, the measured ladder) */
  dataDir: string;
  identity: DeviceIdentity;
  client: RegistryClient;
  log: Logger;
  budget: UserBudget;
  /** a pinned subnet to restore; `onPinLost` hears when this package cannot serve it */
  pin?: SubnetConfig | null;
  onPinLost?: (err: unknown) => void;
  threads?: number | undefined;
  intervalMs?: number | undefined;
  ladderRungs?: number | undefined;
  profile?: Partial<Omit<ProfileOptions, 'device'>> | false | undefined;
  fewShot?: Partial<Omit<FewShotOptions, 'device'>> | false | undefined;
}

export interface Serving {
  pkg: SupernetPackage;
  daemon: DaemonHandle;
  /** settles when the background profile is ready and uploaded, or stopped */
  profiling: Promise<void>;
  /** stops profiling (within one timed visit; `why` is logged) and closes the daemon */
  close(why?: string): Promise<void>;
}

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

/** Starts serving `pkg`; resolves once its first subnet serves. */
export async function startServing(pkg: SupernetPackage, o: ServingOptions): Promise<Serving> {
  const { log, client } = o;
  const selectorOpts = { dataDir: o.dataDir, fingerprint: o.identity.fingerprint, threads: o.threads, logger: log.child({ part: 'selector' }), ...(o.ladderRungs !== undefined ? { rungs: o.ladderRungs } : {}) };
  // decides from a Pareto ladder over this device's profile, as standalone, once one is cached
  const selector = o.profile === false ? undefined : await cachedProfileLadder(pkg, selectorOpts);
  const daemon = await startDaemon({
    pkg,
    budget: o.budget,
    ...(selector ? { selector } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    dataDir: o.dataDir,
    logger: log.child({ part: 'daemon' }),
    monitor: { intervalMs: o.intervalMs ?? 1000 },
  });

  if (o.pin) {
    const r = await daemon.switchTo(o.pin, { pin: true }).catch((err: unknown) => ({ outcome: 'failed' as const, error: err }));
    if (r.outcome === 'failed') {
      log.warn({ err: r.error }, `the pinned subnet cannot be served by ${pkg.name}@${pkg.manifest.version}: pin dropped`);
      o.onPinLost?.(r.error);
    } else log.info({ subnet: daemon.status().subnet?.id }, 'pinned subnet restored');
  }

  // Profile in the background: serving does not wait for it; the upload retries until it lands. A
  // stop ends both at once (within one timed visit), so stopping never waits for a profile.
  const stopProfiling = new AbortController();
  const signal = stopProfiling.signal;
  let stopWhy = 'the agent is shutting down (the next start measures again)';
  const profiling = (async () => {
    if (o.profile === false) return;
    const threadsOpt = o.threads ? { threads: o.threads } : {};
    const instead = () => fewShotProfile(client, pkg, { device: o.identity, ...threadsOpt, ...(o.profile ? o.profile : {}), ...o.fewShot, signal }, log);
    const p = await loadOrProfile(pkg, { device: o.identity, dataDir: o.dataDir, ...threadsOpt, ...o.profile, signal, ...(o.fewShot === false ? {} : { instead }) });
    log.info({ cached: p.cached }, 'profile ready');
    // a first start served from the measured ladder meanwhile: the Pareto ladder over the new profile takes over now
    if (!selector && !signal.aborted) {
      const ladder = await cachedProfileLadder(pkg, selectorOpts);
      if (ladder && !signal.aborted) await daemon.useSelector(ladder, 'selector: Pareto ladder over the new profile');
    }
    const text = serializeProfile(p.profile);
    for (let i = 0; !signal.aborted; i++) {
      try {
        await client.uploadProfile(text);
        log.info('profile uploaded');
        return;
      } catch (err) {
        if ((err as { status?: number }).status !== undefined && (err as { status: number }).status < 500) throw err;
        await sleep(backoffDelay(i, 1000, 30_000), undefined, { signal });
      }
    }
  })().catch((err) => {
    if (signal.aborted) log.info(`profiling stopped: ${stopWhy}`);
    else log.error({ err: (err as Error).message }, 'profile upload failed');
  });

  return {
    pkg,
    daemon,
    profiling,
    async close(why) {
      if (why) stopWhy = why;
      stopProfiling.abort(new Error(stopWhy));
      await daemon.close();
      await profiling;
    },
  };
}
