/**
 * The device side of the registry: enrollment (the device token is kept in the data directory),
 * an atomic package cache, profile upload, and a WebSocket link with jittered exponential backoff,
 * a disk-persisted telemetry queue (nothing lost across restarts or registry outages) and command
 * delivery with acknowledgements.
 *
 * Data directory layout (all writes are temp file + rename):
 *   identity.json                       { registry, deviceId, token }  (mode 0600)
 *   packages/<name>/<version>/          complete, verified packages only
 *   packages/<name>/current.json        { version, manifestSha256, seq? } of the package in use (seq: signed, TUF)
 *   packages/.staging/<manifestSha256>/ downloads in progress (`<file>.part`, resumed with Range)
 *   telemetry.jsonl + telemetry.ack     queued events and the highest seq the registry acknowledged
 *   commands.json                       outcomes of recently handled commands (re-acked, never re-run)
 *   tuf/                                TUF metadata (agent/tuf-client.ts), when signatures are on
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmodSync, closeSync, createReadStream, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Packr } from 'msgpackr';
import { pino, type Logger } from 'pino';
import WebSocket from 'ws';
import { isAbort, readCappedJson } from '../runtime/bounded.js';
import { isNestswapError, NestswapError } from '../runtime/errors.js';
import { withDeadline } from '../runtime/net.js';
import { assertName, assertRelativePath, assertVersion, checkSegment } from '../runtime/names.js';
import { renameDurable, writeDurable } from '../runtime/node/durable.js';
import { assertInside, resolveInside } from '../runtime/node/safe-path.js';
import { crashPoint } from '../runtime/crash.js';
import { streamToPart } from './download.js';
import type { TufClient } from './tuf-client.js';
import { hashedTargetPath, packagesIn, targetPath, TUF_TARGETS_PATH, type PackageTarget, type TargetJson } from '../runtime/tuf-layout.js';
import { checkManifestFormat, parseManifest } from '../runtime/package.js';
import type { CommandFrame, CommandOutcome } from './core/fleet-link.js';
import { checkResponse, RegistryApiError } from '../registry/admin-client.js';
import {
  EnrollResult,
  RegistryFrame,
  TelemetryEvent,
  VersionInfo,
  WS_PATH,
  type FileInfo,
  type AgentFrame,
  type EnrollBody,
  type ProfileSummary,
} from '../registry/protocol.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

export interface Identity {
  registry: string;
  deviceId: string;
  token: string;
}

export interface CachedPackage {
  dir: string;
  name: string;
  version: string;
  manifestSha256: string;
  /** false when the package came from the cache without downloading */
  downloaded: boolean;
  /** the signed publish order of this version (TUF); a lower one is never installed over it */
  seq?: number;
}

export type { CommandFrame, CommandOutcome } from './core/fleet-link.js';

export interface RegistryClientOptions {
  /** one registry URL, or several comma-separated (replicas without a load balancer): tried in order */
  url: string;
  dataDir: string;
  logger?: Logger;
  /** reconnect backoff: full jitter over base · 2^attempt, capped */
  backoff?: { baseMs?: number; maxMs?: number };
  /** events per telemetry frame */
  batch?: number;
  /** at most this many unacknowledged events are kept (oldest dropped first, counted in `dropped`) */
  maxQueued?: number;
  /** bounds on what the registry may send (defaults in DEFAULT_LIMITS) */
  limits?: Partial<DownloadLimits>;
  /** verify every package with TUF (agent/tuf-client.ts); without it packages are checked against the registry's own digests only */
  tuf?: TufClient;
}

export interface DownloadLimits {
  /** metadata answers (JSON) larger than this are refused: ERR_METADATA_TOO_LARGE */
  metadataMaxBytes: number;
  /** deadline of a metadata request, ms */
  metadataTimeoutMs: number;
  /** deadline of a file download: this much plus its declared size at minBytesPerSecond */
  downloadTimeoutMs: number;
  minBytesPerSecond: number;
  /** a package file declared larger than this is refused */
  maxFileBytes: number;
}

export const DEFAULT_LIMITS: DownloadLimits = {
  metadataMaxBytes: 4 * 1024 * 1024,
  metadataTimeoutMs: 30_000,
  downloadTimeoutMs: 30_000,
  minBytesPerSecond: 64 * 1024,
  maxFileBytes: 4 * 1024 * 1024 * 1024,
};

const STAGING = '.staging';

/** The sha256 of the weights file a cached manifest names; undefined when it cannot be read. */
function weightsDigestOf(manifestFile: string): string | undefined {
  try {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as { files?: { role?: unknown; sha256?: unknown }[] };
    const w = m.files?.find((f) => f.role === 'weights')?.sha256;
    return typeof w === 'string' && /^[0-9a-f]{64}$/.test(w) ? w : undefined;
  } catch {
    return undefined;
  }
}

const writeAtomic = writeDurable;

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** Full-jitter exponential backoff delay for attempt n (0-based). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, rand: () => number = Math.random): number {
  return Math.round(rand() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)));
}

/** The registry URLs of a `--registry` value: comma-separated, trailing slashes dropped, duplicates removed. */
export function registryUrls(value: string): string[] {
  const urls = [...new Set(value.split(',').map((u) => u.trim().replace(/\/+$/, '')).filter((u) => u !== ''))];
  for (const u of urls) if (!/^https?:\/\/[^/]/.test(u)) throw new NestswapError('ERR_USAGE', `--registry takes http(s) URLs, comma-separated (got '${u}').`);
  if (!urls.length) throw new NestswapError('ERR_USAGE', '--registry needs at least one URL.');
  return urls;
}

export class RegistryClient extends EventEmitter {
  /** every URL this client may use, comma-separated (what the identity file remembers) */
  readonly url: string;
  readonly urls: readonly string[];
  /** index into `urls` of the replica in use: moves on when one cannot be reached */
  private current = 0;
  private readonly log: Logger;
  private ws: WebSocket | undefined;
  private stopped = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private queue: TelemetryEvent[] = [];
  private acked = 0;
  private nextSeq = 1;
  private inflightUpTo = 0;
  private handled = new Map<string, CommandOutcome>();
  private onCommand: ((c: CommandFrame) => Promise<CommandOutcome>) | undefined;
  private hello: (() => Extract<AgentFrame, { t: 'hello' }>) | undefined;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly batch: number;
  private readonly maxQueued: number;
  private readonly limits: DownloadLimits;
  private spool: number | undefined;
  private unsynced = false;
  /** events dropped because the queue was full */
  dropped = 0;
  /** spool records cut off or skipped at open (torn by a crash) */
  tornRecords = 0;
  connected = false;

  constructor(private readonly opts: RegistryClientOptions) {
    super();
    this.urls = registryUrls(opts.url);
    this.url = this.urls.join(',');
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.baseMs = opts.backoff?.baseMs ?? 500;
    this.maxMs = opts.backoff?.maxMs ?? 30_000;
    this.batch = opts.batch ?? 200;
    this.maxQueued = opts.maxQueued ?? 100_000;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    mkdirSync(opts.dataDir, { recursive: true });
    this.loadQueue();
    this.loadHandled();
  }

  private path(...p: string[]): string {
    return join(this.opts.dataDir, ...p);
  }

  // ---------- identity ----------

  /** The saved identity for this registry, if any. */
  identity(): Identity | undefined {
    const f = this.path('identity.json');
    if (!existsSync(f)) return undefined;
    try {
      const id = JSON.parse(readFileSync(f, 'utf8')) as Identity;
      // enrolled through any of these URLs: the same registry (replicas share one database)
      const same = id.registry === this.url || String(id.registry).split(',').some((u) => this.urls.includes(u));
      return same && typeof id.token === 'string' && typeof id.deviceId === 'string' ? id : undefined;
    } catch {
      return undefined;
    }
  }

  private token(): string {
    const id = this.identity();
    if (!id) throw new NestswapError('ERR_USAGE', 'This device is not enrolled with the registry yet.');
    return id.token;
  }

  /** The registry URL in use. */
  get base(): string {
    return this.urls[this.current]!;
  }

  /**
   * `fn` against the replica in use, under the registry deadline; when that replica gives no HTTP
   * answer at all (ERR_REGISTRY_UNREACHABLE), the next URL in order is tried, each once. An HTTP
   * answer, even an error, comes from a live registry and is returned as it is.
   */
  private async onAny<T>(fn: (base: string, signal: AbortSignal) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let i = 0; i < this.urls.length; i++) {
      const base = this.base;
      try {
        return await withDeadline({ url: base }, (signal) => fn(base, signal));
      } catch (err) {
        if (!isNestswapError(err) || err.code !== 'ERR_REGISTRY_UNREACHABLE' || this.urls.length === 1) throw err;
        last = err;
        this.log.warn({ registry: base, err: err.message }, 'registry unreachable: trying the next URL');
        this.current = (this.current + 1) % this.urls.length;
      }
    }
    throw last;
  }

  /**
   * One request. Its deadline is the caller's signal (downloads, metadata: ERR_DOWNLOAD_TIMEOUT when it
   * fires), else the registry deadline (NESTSWAP_REGISTRY_TIMEOUT_MS); a request that gets no answer is
   * ERR_REGISTRY_UNREACHABLE naming the cause (runtime/net.ts), after every URL was tried.
   */
  private async call(path: string, init: RequestInit = {}, what = path): Promise<Response> {
    const own = init.signal ?? undefined;
    const headers = { authorization: `Bearer ${this.token()}`, ...(init.headers as Record<string, string>) };
    try {
      return await this.onAny(async (base, signal) => checkResponse(await fetch(`${base}${path}`, { ...init, signal: own ?? signal, headers }), what));
    } catch (err) {
      if (own?.aborted || (!isNestswapError(err) && isAbort(err))) throw new NestswapError('ERR_DOWNLOAD_TIMEOUT', `${what}: no answer from the registry before the deadline.`, { cause: err });
      throw err;
    }
  }

  /** Enrolls once; a saved identity for the same registry is reused (and checked, when the registry answers). */
  async enroll(enrollToken: string, body: EnrollBody): Promise<Identity> {
    const saved = this.identity();
    if (saved) return saved;
    const r = await this.onAny(async (base, signal) => {
      const res = await fetch(`${base}/v1/devices/enroll`, {
        method: 'POST',
        signal,
        headers: { authorization: `Bearer ${enrollToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      await checkResponse(res, 'enroll');
      return EnrollResult.parse(await res.json());
    });
    const id: Identity = { registry: this.url, deviceId: r.deviceId, token: r.token };
    writeAtomic(this.path('identity.json'), JSON.stringify(id), { mode: 0o600, crashPoint: 'identity-write' });
    chmodSync(this.path('identity.json'), 0o600);
    this.log.info({ device: id.deviceId }, 'enrolled');
    return id;
  }

  // ---------- packages ----------

  /** The package last completed for `name`, without asking the registry. */
  cachedPackage(name: string): CachedPackage | undefined {
    return this.pointedPackage(name, 'current.json');
  }

  /** The package of `name` that last served here (`markServed`); undefined before one has. */
  servedPackage(name: string): CachedPackage | undefined {
    return this.pointedPackage(name, 'served.json');
  }

  /**
   * Records `p` as the version of its supernet that serves here, and deletes every other cached
   * version but the current one (so the cache holds at most two: what serves and what is newest).
   * Answers the weights digests of the versions deleted and of those kept (for the daemon's caches
   * keyed by weights, agent/daemon-cache.ts).
   */
  markServed(p: CachedPackage): { droppedWeights: string[]; keptWeights: string[] } {
    const nameDir = resolveInside(this.packagesDir(), p.name);
    writeDurable(join(nameDir, 'served.json'), JSON.stringify({ version: p.version, manifestSha256: p.manifestSha256, ...(p.seq !== undefined ? { seq: p.seq } : {}) }));
    const keep = new Set([p.version, this.cachedPackage(p.name)?.version]);
    const out = { droppedWeights: [] as string[], keptWeights: [] as string[] };
    for (const e of readdirSync(nameDir, { withFileTypes: true })) {
      if (!e.isDirectory() || !checkSegment(e.name).ok || !existsSync(join(nameDir, e.name, 'manifest.json'))) continue;
      const weights = weightsDigestOf(join(nameDir, e.name, 'manifest.json'));
      if (keep.has(e.name)) {
        if (weights) out.keptWeights.push(weights);
        continue;
      }
      // deletes happen only inside packages/<name>/, checked again through links
      rmSync(assertInside(nameDir, join(nameDir, e.name)), { recursive: true, force: true });
      if (weights) out.droppedWeights.push(weights);
      this.log.info({ supernet: p.name, version: e.name }, 'old package version removed from the cache');
    }
    return out;
  }

  private pointedPackage(name: string, pointer: string): CachedPackage | undefined {
    if (!checkSegment(name).ok) return undefined;
    const f = this.path('packages', name, pointer);
    if (!existsSync(f)) return undefined;
    try {
      const c = JSON.parse(readFileSync(f, 'utf8')) as { version: string; manifestSha256: string; seq?: number };
      const dir = resolveInside(this.opts.dataDir, 'packages', name, c.version);
      if (!existsSync(join(dir, 'manifest.json'))) return undefined;
      return { dir, name, version: c.version, manifestSha256: c.manifestSha256, downloaded: false, ...(typeof c.seq === 'number' ? { seq: c.seq } : {}) };
    } catch {
      return undefined;
    }
  }

  /** `packages/` of the data directory (created), the only place package writes and deletes happen. */
  private packagesDir(): string {
    const d = resolveInside(this.opts.dataDir, 'packages');
    mkdirSync(d, { recursive: true });
    return d;
  }

  /** Package metadata from the registry, validated: name, version, every path, size and digest. */
  private async versionInfo(name: string, version: string): Promise<VersionInfo> {
    const what = `package metadata ${name}@${version}`;
    const res = await this.call(`/v1/supernets/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`, { signal: AbortSignal.timeout(this.limits.metadataTimeoutMs) }, what);
    const parsed = VersionInfo.safeParse(await readCappedJson(res, this.limits.metadataMaxBytes, what));
    if (!parsed.success) throw new NestswapError('ERR_METADATA_INVALID', `${what}: the registry's answer does not match the protocol.`);
    const info = parsed.data;
    if (info.name !== name) throw new NestswapError('ERR_METADATA_INVALID', `${what}: the registry answered for '${String(info.name).slice(0, 80)}'.`);
    assertVersion(info.version, 'the registry');
    if (version !== 'latest' && info.version !== version) throw new NestswapError('ERR_METADATA_INVALID', `${what}: the registry answered with version '${info.version}'.`);
    const seen = new Set<string>();
    for (const f of info.files) {
      assertRelativePath(f.path, 'the registry');
      if (seen.has(f.path)) throw new NestswapError('ERR_METADATA_INVALID', `${what}: '${f.path}' is listed twice.`);
      seen.add(f.path);
      if (!Number.isSafeInteger(f.bytes) || f.bytes < 0 || f.bytes > this.limits.maxFileBytes)
        throw new NestswapError('ERR_PACKAGE_SIZE', `${what}: '${f.path}' declares ${f.bytes} bytes (at most ${this.limits.maxFileBytes}).`);
      if (!f.url.startsWith('/') || f.url.startsWith('//')) throw new NestswapError('ERR_METADATA_INVALID', `${what}: '${f.path}' has a URL outside the registry.`);
    }
    const m = info.files.find((f) => f.path === 'manifest.json');
    if (!m || m.sha256 !== info.manifestSha256) throw new NestswapError('ERR_METADATA_INVALID', `${what}: manifest.json is missing or differs from the manifest digest.`);
    return info;
  }

  /**
   * The package `name@version` as a complete local directory: reused when the registry's manifest
   * digest matches the cache, otherwise downloaded file by file into staging (resuming `.part`
   * files with Range, each capped at its declared size, with a deadline, verified by size and
   * sha256) and renamed into place only when complete. Every name, version and path from the
   * registry is validated and resolved inside the data directory first.
   */
  async ensurePackage(name: string, version = 'latest', onProgress?: (doneBytes: number, totalBytes: number) => void): Promise<CachedPackage> {
    assertName(name);
    if (version !== 'latest') assertVersion(version);
    if (this.opts.tuf) return this.ensureSignedPackage(this.opts.tuf, name, version, onProgress);
    const info = await this.versionInfo(name, version);
    // a package in a format this agent cannot read is refused before anything is downloaded
    checkManifestFormat(info.manifest, `${name}@${info.version} from ${this.url}`);
    const packages = this.packagesDir();
    const nameDir = resolveInside(packages, name);
    const finalDir = resolveInside(nameDir, info.version);
    const current = this.cachedPackage(name);
    const record = (downloaded: boolean): CachedPackage => {
      writeDurable(join(nameDir, 'current.json'), JSON.stringify({ version: info.version, manifestSha256: info.manifestSha256 }));
      return { dir: finalDir, name, version: info.version, manifestSha256: info.manifestSha256, downloaded };
    };
    if (existsSync(join(finalDir, 'manifest.json')) && (await sha256File(join(finalDir, 'manifest.json'))) === info.manifestSha256)
      return current?.version === info.version ? { ...current, downloaded: false } : record(false);
    const staging = assertInside(packages, join(packages, STAGING, info.manifestSha256));
    mkdirSync(staging, { recursive: true });
    const total = info.files.reduce((a, f) => a + f.bytes, 0);
    let before = 0;
    for (const f of info.files) {
      const at = before;
      await this.downloadFile(staging, f, onProgress && ((n) => onProgress(at + n, total)));
      before += f.bytes;
      onProgress?.(before, total);
    }
    mkdirSync(nameDir, { recursive: true });
    crashPoint('package-downloaded');
    // the only delete of a package directory: checked (again, through links) to be inside packages/<name>/
    if (existsSync(finalDir)) rmSync(assertInside(nameDir, finalDir), { recursive: true, force: true });
    renameDurable(staging, finalDir);
    this.log.info({ supernet: name, version: info.version }, 'package downloaded');
    return record(true);
  }

  /**
   * The package as TUF signs it: after a metadata refresh, the highest signed `seq` for `name` (or
   * the signed `version`), never lower than the installed one; the manifest and every file are
   * targets downloaded capped at their signed length and checked against their signed sha256.
   */
  private async ensureSignedPackage(tuf: TufClient, name: string, version: string, onProgress?: (doneBytes: number, totalBytes: number) => void): Promise<CachedPackage> {
    const targets = await tuf.refresh();
    const signed = packagesIn(targets, name);
    const pick = version === 'latest' ? signed[signed.length - 1] : signed.find((p) => p.version === version);
    if (!pick) throw new NestswapError('ERR_TARGET_UNKNOWN', `The registry's signed targets name no ${version === 'latest' ? 'version' : `version '${version}'`} of '${name}'.`);
    assertVersion(pick.version, 'the signed targets');
    const manifestSha256 = String(pick.manifest.hashes.sha256 ?? '');
    if (!/^[0-9a-f]{64}$/.test(manifestSha256)) throw new NestswapError('ERR_METADATA_INVALID', `The signed manifest of ${name}@${pick.version} has no sha256.`);
    const current = this.cachedPackage(name);
    if (current?.seq !== undefined && pick.seq < current.seq)
      throw new NestswapError('ERR_PACKAGE_ROLLBACK', `${name}@${pick.version} (signed seq ${pick.seq}) is older than the installed ${current.version} (seq ${current.seq}).`);
    const packages = this.packagesDir();
    const nameDir = resolveInside(packages, name);
    const finalDir = resolveInside(nameDir, pick.version);
    const record = (downloaded: boolean): CachedPackage => {
      writeDurable(join(nameDir, 'current.json'), JSON.stringify({ version: pick.version, manifestSha256, seq: pick.seq }));
      return { dir: finalDir, name, version: pick.version, manifestSha256, downloaded, seq: pick.seq };
    };
    if (existsSync(join(finalDir, 'manifest.json')) && (await sha256File(join(finalDir, 'manifest.json'))) === manifestSha256)
      return current?.version === pick.version && current.seq === pick.seq ? { ...current, downloaded: false } : record(false);
    const staging = assertInside(packages, join(packages, STAGING, manifestSha256));
    mkdirSync(staging, { recursive: true });
    await this.downloadFile(staging, this.targetFile(pick.manifestPath, 'manifest.json', pick.manifest));
    const manifest = this.signedManifest(staging, name, pick);
    for (const f of manifest.files) {
      assertRelativePath(f.path, 'the signed manifest');
      const t = targets[targetPath(name, pick.version, f.path)];
      if (!t) throw new NestswapError('ERR_TARGET_UNKNOWN', `${name}@${pick.version}: '${f.path}' is in the signed manifest but not a signed target.`);
      if (t.length !== f.bytes || t.hashes.sha256 !== f.sha256) throw new NestswapError('ERR_METADATA_MISMATCH', `${name}@${pick.version}: '${f.path}' differs between the signed manifest and its signed target.`);
    }
    const total = manifest.files.reduce((a, f) => a + f.bytes, 0);
    let at = 0;
    for (const f of manifest.files) {
      await this.downloadFile(staging, this.targetFile(targetPath(name, pick.version, f.path), f.path, targets[targetPath(name, pick.version, f.path)]!), onProgress && ((n) => onProgress(at + n, total)));
      at += f.bytes;
      onProgress?.(at, total);
    }
    mkdirSync(nameDir, { recursive: true });
    crashPoint('package-downloaded');
    if (existsSync(finalDir)) rmSync(assertInside(nameDir, finalDir), { recursive: true, force: true });
    renameDurable(staging, finalDir);
    this.log.info({ supernet: name, version: pick.version, seq: pick.seq }, 'signed package downloaded');
    return record(true);
  }

  private targetFile(target: string, path: string, t: TargetJson): FileInfo {
    const sha256 = String(t.hashes.sha256 ?? '');
    if (!/^[0-9a-f]{64}$/.test(sha256) || !Number.isSafeInteger(t.length) || t.length < 0 || t.length > this.limits.maxFileBytes)
      throw new NestswapError('ERR_METADATA_INVALID', `Signed target '${target}' has no usable sha256 or length.`);
    return { path, role: 'target', bytes: t.length, sha256, url: `${TUF_TARGETS_PATH}/${hashedTargetPath(target, sha256).split('/').map(encodeURIComponent).join('/')}` };
  }

  /** The downloaded (hash-checked) manifest: for this supernet and version, or wrong software. */
  private signedManifest(staging: string, name: string, pick: PackageTarget) {
    const manifest = parseManifest(JSON.parse(readFileSync(join(staging, 'manifest.json'), 'utf8')), `signed ${name}@${pick.version}`);
    if (manifest.name !== name || manifest.version !== pick.version)
      throw new NestswapError('ERR_PACKAGE_WRONG_SOFTWARE', `The signed target ${pick.manifestPath} is a package of ${String(manifest.name).slice(0, 80)}@${String(manifest.version).slice(0, 80)}, not ${name}@${pick.version}.`);
    return manifest;
  }

  private async downloadFile(dir: string, f: FileInfo, onBytes?: (bytesOfThisFile: number) => void): Promise<void> {
    const { path, bytes, sha256 } = f;
    const done = resolveInside(dir, path);
    mkdirSync(dirname(done), { recursive: true });
    if (existsSync(done) && statSync(done).size === bytes && (await sha256File(done)) === sha256) return;
    const part = `${done}.part`;
    let have = existsSync(part) ? statSync(part).size : 0;
    if (have > bytes) {
      rmSync(part, { force: true });
      have = 0;
    }
    const headers: Record<string, string> = {};
    if (have > 0 && have < bytes) {
      headers.range = `bytes=${have}-`;
      headers['if-range'] = `"${sha256}"`;
    }
    const deadline = this.limits.downloadTimeoutMs + (bytes / this.limits.minBytesPerSecond) * 1000;
    const what = `download ${path}`;
    let size: number;
    try {
      const res = await this.call(f.url, { headers, signal: AbortSignal.timeout(Math.min(Math.ceil(deadline), 2 ** 31 - 1)) }, what);
      const append = res.status === 206;
      if (append && (!headers.range || !(res.headers.get('content-range') ?? '').startsWith(`bytes ${have}-`)))
        throw new NestswapError('ERR_PACKAGE_SIZE', `${what}: the registry sent a range that was not asked for.`);
      if (!res.body && bytes > 0) throw new NestswapError('ERR_PACKAGE_MISSING', `Empty response for ${path}.`);
      size = (append ? have : 0) + (await streamToPart(res, part, append, bytes - (append ? have : 0), what, onBytes && ((n) => onBytes((append ? have : 0) + n))));
    } catch (err) {
      if (isNestswapError(err, 'ERR_PACKAGE_SIZE')) rmSync(part, { force: true });
      if (isAbort(err)) throw new NestswapError('ERR_DOWNLOAD_TIMEOUT', `${what}: no answer before the deadline.`, { cause: err });
      throw err;
    }
    crashPoint('file-downloaded');
    const digest = await sha256File(part);
    if (size !== bytes || digest !== sha256) {
      rmSync(part, { force: true }); // never resume from bytes that do not verify
      throw new NestswapError(size !== bytes ? 'ERR_PACKAGE_SIZE' : 'ERR_PACKAGE_DIGEST', `Downloaded ${path}: ${size} bytes, sha256 ${digest}; expected ${bytes} bytes, ${sha256}.`);
    }
    renameDurable(part, done);
  }

  // ---------- profile ----------

  async uploadProfile(profileJson: string): Promise<ProfileSummary> {
    const id = this.identity();
    if (!id) throw new NestswapError('ERR_USAGE', 'Enroll before uploading a profile.');
    const res = await this.call(`/v1/devices/${encodeURIComponent(id.deviceId)}/profile`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: profileJson }, 'profile upload');
    return (await res.json()) as ProfileSummary;
  }

  /** The registry's class profile of `deviceClass` (docs/profiler.md#class-profiles), or null when it has none. */
  async classProfile(deviceClass: string): Promise<{ devices: number; profile: unknown } | null> {
    try {
      const res = await this.call(`/v1/classes/${encodeURIComponent(deviceClass)}/profile`, {}, 'class profile');
      return (await res.json()) as { devices: number; profile: unknown };
    } catch (err) {
      if ((err as { status?: number }).status === 404) return null;
      throw err;
    }
  }

  // ---------- telemetry queue ----------

  /**
   * Reads the spool. A torn last record (a crash mid-append) is cut off the file, so the next event
   * starts on a fresh line instead of being glued onto it; a damaged record elsewhere is skipped.
   * Events are unique by seq (a record written twice counts once).
   */
  private loadQueue(): void {
    try {
      this.acked = Number(readFileSync(this.path('telemetry.ack'), 'utf8')) || 0;
    } catch {
      this.acked = 0;
    }
    const file = this.path('telemetry.jsonl');
    const bySeq = new Map<number, TelemetryEvent>();
    if (existsSync(file)) {
      const text = readFileSync(file);
      const end = text.lastIndexOf(0x0a) + 1; // bytes after the last newline are a torn record
      if (end < text.length) {
        truncateSync(file, end);
        this.tornRecords++;
        this.log.warn({ bytes: text.length - end }, 'telemetry spool: cut off a torn last record');
      }
      for (const line of text.subarray(0, end).toString('utf8').split('\n')) {
        if (!line) continue;
        const r = TelemetryEvent.safeParse(safeJson(line));
        if (r.success) bySeq.set(r.data.seq, r.data);
        else this.tornRecords++;
      }
    }
    const events = [...bySeq.values()].sort((x, y) => x.seq - y.seq);
    this.queue = events.filter((e) => e.seq > this.acked);
    this.nextSeq = events.reduce((m, e) => Math.max(m, e.seq), this.acked) + 1;
    this.spool = openSync(file, 'a');
  }

  /** Queues an event (in the spool before this returns) and sends it when connected. */
  telemetry(kind: TelemetryEvent['kind'], data: Record<string, unknown>): TelemetryEvent {
    const e: TelemetryEvent = { seq: this.nextSeq++, at: Date.now(), kind, data };
    const line = Buffer.from(`${JSON.stringify(e)}\n`);
    this.spool ??= openSync(this.path('telemetry.jsonl'), 'a');
    const fd = this.spool;
    crashPoint('telemetry-append', () => writeSync(fd, line, 0, line.length >> 1));
    writeSync(fd, line);
    this.unsynced = true;
    this.queue.push(e);
    if (this.queue.length > this.maxQueued) {
      const n = this.queue.length - this.maxQueued;
      this.queue.splice(0, n);
      this.dropped += n;
      this.log.warn({ dropped: n }, 'telemetry queue full: dropped the oldest events');
    }
    this.flush();
    return e;
  }

  /** fsync of the spool: once per batch, before the batch leaves, so nothing the registry holds can be lost here. */
  private syncSpool(): void {
    if (!this.unsynced || this.spool === undefined) return;
    fsyncSync(this.spool);
    this.unsynced = false;
  }

  /** Events not yet acknowledged by the registry. */
  get pending(): number {
    return this.queue.length;
  }

  private onAck(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    writeAtomic(this.path('telemetry.ack'), String(seq));
    crashPoint('telemetry-acked');
    this.queue = this.queue.filter((e) => e.seq > seq);
    if (this.inflightUpTo <= seq) this.inflightUpTo = 0;
    // compact the log once everything is acknowledged (or it grew large)
    if (this.queue.length === 0 || statSync(this.path('telemetry.jsonl')).size > 4 * 1024 * 1024) {
      closeSync(this.spool!);
      writeAtomic(this.path('telemetry.jsonl'), this.queue.map((e) => `${JSON.stringify(e)}\n`).join(''));
      this.spool = openSync(this.path('telemetry.jsonl'), 'a');
      this.unsynced = false;
    }
    this.emit('telemetry-ack', seq);
    this.flush();
  }

  /** Sends the next batch when connected and nothing is in flight (one batch at a time keeps order simple). */
  private flush(): void {
    if (!this.connected || this.inflightUpTo > 0 || this.queue.length === 0) return;
    const events = this.queue.slice(0, this.batch);
    this.syncSpool();
    this.inflightUpTo = events[events.length - 1]!.seq;
    this.send({ t: 'telemetry', events });
  }

  // ---------- commands ----------

  private loadHandled(): void {
    try {
      this.handled = new Map(JSON.parse(readFileSync(this.path('commands.json'), 'utf8')) as [string, CommandOutcome][]);
    } catch {
      this.handled = new Map();
    }
  }

  private async handleCommand(c: CommandFrame): Promise<void> {
    let outcome = this.handled.get(c.id);
    if (!outcome) {
      crashPoint('command-received');
      try {
        outcome = this.onCommand ? await this.onCommand(c) : { ok: false, error: { code: 'ERR_UNSUPPORTED', message: 'This agent takes no commands.' } };
      } catch (err) {
        const e = err as { code?: string; message?: string };
        outcome = { ok: false, error: { code: typeof e.code === 'string' ? e.code : 'ERR_INTERNAL', message: String(e.message ?? err) } };
      }
      crashPoint('command-applied');
      this.handled.set(c.id, outcome);
      while (this.handled.size > 500) this.handled.delete(this.handled.keys().next().value!);
      writeAtomic(this.path('commands.json'), JSON.stringify([...this.handled]), { crashPoint: 'commands-write' });
    }
    this.send({ t: 'ack', id: c.id, ...outcome });
  }

  // ---------- WebSocket ----------

  private send(f: AgentFrame): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(packr.pack(f));
  }

  /** Connects and stays connected (reconnecting with backoff) until close(). */
  connect(handlers: { onCommand: (c: CommandFrame) => Promise<CommandOutcome>; hello: () => Extract<AgentFrame, { t: 'hello' }> }): void {
    this.onCommand = handlers.onCommand;
    this.hello = handlers.hello;
    this.open();
  }

  private open(): void {
    if (this.stopped) return;
    const ws = new WebSocket(`${this.base.replace(/^http/, 'ws')}${WS_PATH}`, { headers: { authorization: `Bearer ${this.token()}` }, handshakeTimeout: 10_000 });
    this.ws = ws;
    ws.on('open', () => {
      this.attempt = 0;
      this.connected = true;
      this.inflightUpTo = 0;
      this.send(this.hello ? this.hello() : { t: 'hello' });
      this.emit('connected');
    });
    ws.on('message', (data) => {
      let f: RegistryFrame;
      try {
        f = RegistryFrame.parse(packr.unpack(data as Buffer));
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'invalid frame from the registry');
        return;
      }
      if (f.t === 'welcome' || f.t === 'telemetry-ack') {
        const seq = f.t === 'welcome' ? f.telemetryAck : f.seq;
        this.inflightUpTo = 0;
        if (seq > this.acked) this.onAck(seq);
        else this.flush();
      } else if (f.t === 'command') {
        this.emit('command', f);
        this.handleCommand(f).catch((err) => this.log.error({ err }, 'command handling failed'));
      } else this.log.warn({ code: f.code }, f.message);
    });
    ws.on('unexpected-response', (_req, res) => {
      this.log.warn({ status: res.statusCode }, 'registry refused the WebSocket');
      if (res.statusCode === 401) this.emit('unauthorized');
      ws.terminate();
    });
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'WebSocket error'));
    ws.on('close', () => {
      const was = this.connected;
      this.connected = false;
      this.inflightUpTo = 0;
      if (was) this.emit('disconnected');
      if (this.stopped) return;
      // the next URL in order (a replica that went away, or never answered); the same one when there is one
      this.current = (this.current + 1) % this.urls.length;
      const delay = backoffDelay(this.attempt++, this.baseMs, this.maxMs);
      this.log.debug({ delay, attempt: this.attempt, registry: this.base }, 'reconnecting');
      this.reconnectTimer = setTimeout(() => this.open(), delay);
    });
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.spool !== undefined) {
      this.syncSpool();
      closeSync(this.spool);
      this.spool = undefined;
    }
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      ws.close();
      const t = setTimeout(() => ws.terminate(), 1000);
      await closed;
      clearTimeout(t);
    }
  }
}

export { RegistryApiError };
