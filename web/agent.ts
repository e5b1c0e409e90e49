/**
 * The browser agent: a tab as a device of the fleet. The same agent core as the Node daemon
 * (agent/core/), with the browser's adapters: onnxruntime-web sessions on the execution provider
 * that works here, BN statistics in the Cache API, the page's sensors, the registry over fetch and
 * WebSocket.
 *
 *   const nestswap = await import('https://registry.example/v1/web/agent.js');
 *   const agent = await nestswap.connect({ registry, enrollToken, supernet: 'fmnist-ofa', budget: { latencyMs: 5 } });
 *   const { logits, labels, subnetId } = await agent.infer(pixels);   // Float32Array, batch × the input shape
 *   agent.status(); agent.on('swap', cb); await agent.close();
 *
 * connect: probe the EPs (webgpu, webnn, wasm; each with its own session) → enroll (the device token
 * stays in localStorage) → the package (verified, cached: a reload downloads nothing) → a profile on
 * the chosen EP within a page-sized time budget (cached per device, EP and weights) and its upload →
 * search → materialize + BN-calibrate → serve; swaps, latency windows and pushed commands as in Node.
 */
import { silentLogger, type CoreLogger } from '../agent/core/adapters.js';
import { startAgentCore, type AgentCore } from '../agent/core/agent-core.js';
import { commandRunner, helloFrame, streamTelemetry } from '../agent/core/fleet-link.js';
import { profileDevice, type DeviceIdentity } from '../agent/core/profiler.js';
import { searchSelector } from '../agent/core/search-selector.js';
import { validateUserBudget, type DaemonInferResult, type DaemonStatus, type Selector } from '../agent/core/types.js';
import type { UserBudget } from '../agent/policy.js';
import { NestswapError } from '../runtime/errors.js';
import { WASM_DEPTHWISE_MATMUL, type DepthwiseMatMul } from '../runtime/materialize.js';
import { sha256Hex, type SupernetPackage } from '../runtime/package.js';
import { parseProfileText, profileMismatch, serializeProfile, type Profile } from '../runtime/profile.js';
import { searchInputsFor } from '../runtime/search/inputs.js';
import { encoderForPredictor, onnxAccuracyPredictor } from '../runtime/search/predictors.js';
import type { SwapRecord } from '../runtime/hot-swap.js';
import type { VersionInfo } from '../registry/protocol.js';
import { probeEps, WEB_EPS, type EpReport } from './eps.js';
import { webBackend, webOrt, type OrtWeb } from './ort.js';
import { loadPackage, type PackageLoad } from './package-store.js';
import { enroll, RegistryLink, uploadProfile, type Identity } from './registry-link.js';
import { browserSensors } from './sensors.js';
import { browserStatsStore, local } from './storage.js';

export interface ConnectOptions {
  /** the registry's origin (default: this page's) */
  registry?: string;
  /** first visit: the fleet's enrollment token; later visits reuse the saved device token */
  enrollToken?: string;
  /** an existing device (with `deviceId` unless this browser saved it) */
  deviceToken?: string;
  deviceId?: string;
  supernet: string;
  budget?: UserBudget;
  name?: string;
  /** EPs in order of preference (default webgpu, webnn, wasm): the first that works serves */
  eps?: readonly string[];
  /** EPs not to use (reported as disabled) */
  disableEps?: readonly string[];
  /** profiling: time budget of the page (default 20 s); false: no profile, the smallest subnet serves */
  profile?: { budgetMs?: number; force?: boolean } | false;
  /** monitor window (ms, default 1000) */
  intervalMs?: number;
  /** wasm threads (default: up to 4 when cross-origin isolated, else 1) */
  threads?: number;
  /**
   * how depthwise convolutions are written when wasm serves: default `WASM_DEPTHWISE_MATMUL` (small
   * ones as a MatMul: 2-8× faster on fmnist-ofa, more weight bytes; docs/browser.md); false: plain Conv
   */
  depthwiseMatMul?: DepthwiseMatMul | false;
  /** refuses a package version before any file is fetched (TUF targets check) */
  verifyPackage?: (info: VersionInfo) => Promise<void>;
  logger?: CoreLogger;
}

export interface BrowserAgent {
  readonly deviceId: string;
  readonly enrolled: boolean;
  /** the EP that serves, and what happened to every EP tried */
  readonly ep: string;
  readonly eps: readonly EpReport[];
  readonly crossOriginIsolated: boolean;
  readonly wasmThreads: number;
  readonly package: Omit<PackageLoad, 'pkg'> & { name: string };
  readonly profile: { cached: boolean; wallMs: number | null; uploaded: Promise<boolean> } | null;
  readonly timings: Record<string, number>;
  readonly pkg: SupernetPackage;
  readonly core: AgentCore;
  infer(input: Float32Array | readonly number[], batch?: number): Promise<DaemonInferResult>;
  status(): DaemonStatus & { deviceId: string; ep: string; connected: boolean };
  setBudget(b: UserBudget): Promise<SwapRecord>;
  switchTo(cfg: unknown, opts?: { pin?: boolean }): Promise<SwapRecord>;
  unpin(): Promise<SwapRecord>;
  on: AgentCore['on'];
  close(): Promise<void>;
}

/** A stable id of this browser on this machine (user agent, cores, GPU adapter); no personal data. */
async function browserIdentity(ep: string): Promise<DeviceIdentity> {
  const nav = globalThis.navigator as Navigator & { gpu?: { requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string } } | null> } };
  let gpu = '';
  try {
    const a = await nav.gpu?.requestAdapter();
    gpu = a?.info ? [a.info.vendor, a.info.architecture, a.info.description].filter(Boolean).join(' ') : '';
  } catch {
    gpu = '';
  }
  const cores = nav.hardwareConcurrency ?? 1;
  const text = `${nav.userAgent}|${cores}|${gpu}`;
  const fingerprint = (await sha256Hex(new TextEncoder().encode(text))).slice(0, 16);
  return { fingerprint, deviceClass: `browser-${ep}-${cores}c`, facts: { platform: 'browser', userAgent: nav.userAgent, cores, ...(gpu ? { gpu } : {}) } };
}

/** Profile settings that fit a page's time budget (the Node profiler's method, fewer runs). */
function pageProfileOptions(budgetMs: number) {
  const clamp = (x: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.round(x)));
  return {
    warmup: 2,
    runs: clamp(budgetMs / 2000, 3, 20),
    subnetRuns: clamp(budgetMs / 1000, 5, 40),
    calibrationSubnets: 8,
    validationSubnets: 4,
    maxSubnetPasses: 1,
    memorySubnets: 0,
    seed: 1,
  };
}

/** How subnet graphs are written for `ep`: the depthwise lowering on wasm (unless the page turned it off), plain elsewhere. */
function graphFor(ep: string, o: ConnectOptions): { depthwiseMatMul?: DepthwiseMatMul } {
  if (ep !== 'wasm' || o.depthwiseMatMul === false) return {};
  return { depthwiseMatMul: o.depthwiseMatMul ?? WASM_DEPTHWISE_MATMUL };
}

const graphTag = (g: { depthwiseMatMul?: DepthwiseMatMul }) => (g.depthwiseMatMul ? `:dwmm${g.depthwiseMatMul.maxPixels}-${g.depthwiseMatMul.maxLayerBytes}` : '');

async function deviceProfile(pkg: SupernetPackage, ort: OrtWeb, ep: string, threads: number, device: DeviceIdentity, o: ConnectOptions): Promise<{ profile: Profile; cached: boolean }> {
  const backend = webBackend(ort, ep);
  const graph = graphFor(ep, o);
  // the graphs' form is in the key: a profile of plain graphs does not predict lowered ones
  const key = `nestswap:profile:${pkg.weightsDigest.slice(0, 16)}:${ep}:${threads}${graphTag(graph)}`;
  const saved = o.profile && o.profile.force ? undefined : local.get<string>(key);
  if (saved) {
    try {
      const p = parseProfileText(saved, 'cached profile');
      if (profileMismatch(p, { fingerprint: device.fingerprint, ortVersion: backend.version, ep, threads, weightsDigest: pkg.weightsDigest }).length === 0) return { profile: p, cached: true };
    } catch {
      // damaged: measured again
    }
  }
  const budgetMs = (o.profile && o.profile.budgetMs) || 20_000;
  const profile = await profileDevice(pkg, { device, backend, ep, threads, graph, ...pageProfileOptions(budgetMs) });
  local.set(key, serializeProfile(profile));
  return { profile, cached: false };
}

async function profileSelector(pkg: SupernetPackage, ort: OrtWeb, profile: Profile | undefined): Promise<Selector> {
  const bytes = pkg.fileByRole('accuracy-predictor');
  if (!bytes) throw new NestswapError('ERR_PREDICTOR_INVALID', `Package ${pkg.name} has no accuracy predictor (a file with role 'accuracy-predictor').`);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  const meta = session.inputMetadata[0];
  const nDim = meta?.isTensor ? meta.shape[meta.shape.length - 1] : undefined;
  if (typeof nDim !== 'number') throw new NestswapError('ERR_PREDICTOR_INVALID', 'The accuracy predictor must declare its input as float32 [N, n_dim].');
  const encoder = encoderForPredictor(pkg.space, nDim);
  const predictor = await onnxAccuracyPredictor(session as never, encoder.nDim, ort.Tensor as never);
  return searchSelector(pkg, searchInputsFor(pkg, { predictor, encoder }, profile));
}

/** Connects this page to the fleet and serves; see the module comment. */
export async function connect(o: ConnectOptions): Promise<BrowserAgent> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const mark = (k: string) => (timings[k] = Math.round(performance.now() - t0));
  const log = o.logger ?? silentLogger;
  const registry = (o.registry ?? globalThis.location.origin).replace(/\/+$/, '');
  const budget = validateUserBudget(o.budget ?? {});
  const ortBase = new URL('./ort/', import.meta.url).href;
  const orts = webOrt(ortBase, o.threads);
  const threads = orts.threads;
  const wasmOrt = await orts.forEp('wasm');
  mark('ort');

  const eps = await probeEps(orts, { order: o.eps ?? WEB_EPS, ...(o.disableEps ? { disabled: o.disableEps } : {}) });
  const chosen = eps.find((e) => e.ok);
  if (!chosen) throw new NestswapError('ERR_SESSION', `No execution provider works in this browser: ${eps.map((e) => `[${e.ep}] ${e.reason}`).join('; ')}`);
  const ep = chosen.ep;
  const ort = await orts.forEp(ep);
  for (const e of eps) if (!e.ok) log.info({ ep: e.ep, reason: e.reason }, 'execution provider not used');
  mark('eps');

  const device = await browserIdentity(ep);
  const facts = { ...device.facts, ep, eps, crossOriginIsolated: globalThis.crossOriginIsolated === true, wasmThreads: threads };
  const id: Identity & { enrolled: boolean } = await enroll(registry, {
    ...(o.enrollToken ? { enrollToken: o.enrollToken } : {}),
    ...(o.deviceToken ? { deviceToken: o.deviceToken } : {}),
    ...(o.deviceId ? { deviceId: o.deviceId } : {}),
    body: { name: o.name ?? `${device.deviceClass}-${device.fingerprint.slice(0, 8)}`, supernet: o.supernet, deviceClass: device.deviceClass, fingerprint: device.fingerprint, facts },
  });
  mark('enroll');

  const loaded = await loadPackage({ registry, token: id.token, supernet: o.supernet, ...(o.verifyPackage ? { verify: o.verifyPackage } : {}) });
  const pkg = loaded.pkg;
  mark('package');

  let profileInfo: BrowserAgent['profile'] = null;
  let profile: Profile | undefined;
  if (o.profile !== false) {
    const p = await deviceProfile(pkg, ort, ep, threads, device, o);
    profile = p.profile;
    const uploaded = uploadProfile(id, serializeProfile(p.profile)).then(
      () => true,
      (err: unknown) => {
        log.warn({ err: (err as Error).message }, 'profile upload failed');
        return false;
      },
    );
    profileInfo = { cached: p.cached, wallMs: p.cached ? null : p.profile.method.wallMs, uploaded };
  }
  mark('profile');

  const selector = await profileSelector(pkg, wasmOrt, profile);
  const core = await startAgentCore({
    pkg,
    budget,
    selector,
    sessions: {
      backend: webBackend(ort, ep),
      graph: graphFor(ep, o),
      // calibration always runs on wasm, so its graphs are lowered there whatever EP serves
      calibrationBackend: webBackend(wasmOrt, 'wasm'),
      calibrationLayout: async () => ({ ...graphFor('wasm', o) }),
    },
    storage: { stats: browserStatsStore(registry) },
    sensors: browserSensors(),
    logger: log,
    session: { ep },
    monitor: { intervalMs: o.intervalMs ?? 1000 },
  });
  mark('serving');

  let link: RegistryLink | undefined;
  const telemetry = (kind: Parameters<RegistryLink['telemetry']>[0], data: Record<string, unknown>) => link?.telemetry(kind, data);
  link = new RegistryLink(id, { onCommand: commandRunner(core, telemetry, log), hello: () => helloFrame(core, 'nestswap-web/0.1.0') });
  const stopTelemetry = streamTelemetry(core, telemetry);
  core.attach({
    close: async () => {
      stopTelemetry();
      link?.close();
    },
  });

  return {
    deviceId: id.deviceId,
    enrolled: id.enrolled,
    ep,
    eps,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    wasmThreads: threads,
    package: { name: pkg.name, version: loaded.version, manifestSha256: loaded.manifestSha256, downloadedFiles: loaded.downloadedFiles, downloadedBytes: loaded.downloadedBytes, source: loaded.source },
    profile: profileInfo,
    timings,
    pkg,
    core,
    infer(input, batch = 1) {
      return core.infer(input instanceof Float32Array ? input : Float32Array.from(input), batch);
    },
    status() {
      return { ...core.status(), deviceId: id.deviceId, ep, connected: link?.connected ?? false };
    },
    setBudget: (b) => core.setBudget(b),
    switchTo: (cfg, opts) => core.switchTo(cfg, opts),
    unpin: () => core.unpin(),
    on: core.on.bind(core),
    close: () => core.close(),
  };
}


/** What each EP does in this browser, without connecting (the same probe connect runs). */
export async function probe(o: { eps?: readonly string[]; disableEps?: readonly string[]; threads?: number } = {}): Promise<{ eps: EpReport[]; crossOriginIsolated: boolean; wasmThreads: number }> {
  const orts = webOrt(new URL('./ort/', import.meta.url).href, o.threads);
  const eps = await probeEps(orts, { order: o.eps ?? WEB_EPS, ...(o.disableEps ? { disabled: o.disableEps } : {}) });
  return { eps, crossOriginIsolated: globalThis.crossOriginIsolated === true, wasmThreads: orts.threads };
}

// for pages that load the bundle with a classic <script type=module> and reach it as window.nestswap
(globalThis as { nestswap?: unknown }).nestswap = { connect, probe };
