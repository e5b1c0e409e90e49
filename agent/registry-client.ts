/**
 * The device side of the registry: enrollment (the device token is kept in the data directory),
 * an atomic package cache, profile upload, and a WebSocket link with jittered exponential backoff,
 * a disk-persisted telemetry queue (nothing lost across restarts or registry outages) and command
 * delivery with acknowledgements.
 *
 * Data directory layout (all writes are temp file + rename):
 *   identity.json                       { registry, deviceId, token }  (mode 0600)
 *   packages/<name>/<version>/          complete, verified packages only
 *   packages/<name>/current.json        { version, manifestSha256 } of the package in use
 *   packages/.staging/<manifestSha256>/ downloads in progress (`<file>.part`, resumed with Range)
 *   telemetry.jsonl + telemetry.ack     queued events and the highest seq the registry acknowledged
 *   commands.json                       outcomes of recently handled commands (re-acked, never re-run)
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { appendFileSync, chmodSync, createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Packr } from 'msgpackr';
import { pino, type Logger } from 'pino';
import WebSocket from 'ws';
import { NestswapError } from '../runtime/errors.js';
import { checkManifestFormat } from '../runtime/package.js';
import { checkResponse, RegistryApiError } from '../registry/admin-client.js';
import {
  EnrollResult,
  RegistryFrame,
  VersionInfo,
  WS_PATH,
  type AgentFrame,
  type EnrollBody,
  type ProfileSummary,
  type TelemetryEvent,
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
}

export type CommandFrame = Extract<RegistryFrame, { t: 'command' }>;
export interface CommandOutcome {
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

export interface RegistryClientOptions {
  url: string;
  dataDir: string;
  logger?: Logger;
  /** reconnect backoff: full jitter over base · 2^attempt, capped */
  backoff?: { baseMs?: number; maxMs?: number };
  /** events per telemetry frame */
  batch?: number;
  /** at most this many unacknowledged events are kept (oldest dropped first, counted in `dropped`) */
  maxQueued?: number;
}

function writeAtomic(path: string, data: string | Uint8Array, mode?: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, mode === undefined ? undefined : { mode });
  renameSync(tmp, path);
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

/** Full-jitter exponential backoff delay for attempt n (0-based). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, rand: () => number = Math.random): number {
  return Math.round(rand() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)));
}

export class RegistryClient extends EventEmitter {
  readonly url: string;
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
  /** events dropped because the queue was full */
  dropped = 0;
  connected = false;

  constructor(private readonly opts: RegistryClientOptions) {
    super();
    this.url = opts.url.replace(/\/+$/, '');
    this.log = opts.logger ?? pino({ level: 'silent' });
    this.baseMs = opts.backoff?.baseMs ?? 500;
    this.maxMs = opts.backoff?.maxMs ?? 30_000;
    this.batch = opts.batch ?? 200;
    this.maxQueued = opts.maxQueued ?? 100_000;
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
      return id.registry === this.url && typeof id.token === 'string' && typeof id.deviceId === 'string' ? id : undefined;
    } catch {
      return undefined;
    }
  }

  private token(): string {
    const id = this.identity();
    if (!id) throw new NestswapError('ERR_USAGE', 'This device is not enrolled with the registry yet.');
    return id.token;
  }

  private async call(path: string, init: RequestInit = {}, what = path): Promise<Response> {
    const res = await fetch(`${this.url}${path}`, { ...init, headers: { authorization: `Bearer ${this.token()}`, ...(init.headers as Record<string, string>) } });
    return checkResponse(res, what);
  }

  /** Enrolls once; a saved identity for the same registry is reused (and checked, when the registry answers). */
  async enroll(enrollToken: string, body: EnrollBody): Promise<Identity> {
    const saved = this.identity();
    if (saved) return saved;
    const res = await fetch(`${this.url}/v1/devices/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${enrollToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await checkResponse(res, 'enroll');
    const r = EnrollResult.parse(await res.json());
    const id: Identity = { registry: this.url, deviceId: r.deviceId, token: r.token };
    writeAtomic(this.path('identity.json'), JSON.stringify(id), 0o600);
    chmodSync(this.path('identity.json'), 0o600);
    this.log.info({ device: id.deviceId }, 'enrolled');
    return id;
  }

  // ---------- packages ----------

  /** The package last completed for `name`, without asking the registry. */
  cachedPackage(name: string): CachedPackage | undefined {
    const f = this.path('packages', name, 'current.json');
    if (!existsSync(f)) return undefined;
    try {
      const c = JSON.parse(readFileSync(f, 'utf8')) as { version: string; manifestSha256: string };
      const dir = this.path('packages', name, c.version);
      return existsSync(join(dir, 'manifest.json')) ? { dir, name, version: c.version, manifestSha256: c.manifestSha256, downloaded: false } : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The package `name@version` as a complete local directory: reused when the registry's manifest
   * digest matches the cache, otherwise downloaded file by file into staging (resuming `.part`
   * files with Range, each verified by size and sha256) and renamed into place only when complete.
   */
  async ensurePackage(name: string, version = 'latest'): Promise<CachedPackage> {
    const res = await this.call(`/v1/supernets/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`, {}, 'package metadata');
    const info = VersionInfo.parse(await res.json());
    // a package in a format this agent cannot read is refused before anything is downloaded
    checkManifestFormat(info.manifest, `${name}@${info.version} from ${this.url}`);
    const finalDir = this.path('packages', name, info.version);
    const current = this.cachedPackage(name);
    const record = (downloaded: boolean): CachedPackage => {
      writeAtomic(this.path('packages', name, 'current.json'), JSON.stringify({ version: info.version, manifestSha256: info.manifestSha256 }));
      return { dir: finalDir, name, version: info.version, manifestSha256: info.manifestSha256, downloaded };
    };
    if (existsSync(join(finalDir, 'manifest.json')) && (await sha256File(join(finalDir, 'manifest.json'))) === info.manifestSha256)
      return current?.version === info.version ? { ...current, downloaded: false } : record(false);
    const staging = this.path('packages', '.staging', info.manifestSha256);
    mkdirSync(staging, { recursive: true });
    for (const f of info.files) await this.downloadFile(`${this.url}${f.url}`, staging, f.path, f.bytes, f.sha256);
    mkdirSync(this.path('packages', name), { recursive: true });
    rmSync(finalDir, { recursive: true, force: true });
    renameSync(staging, finalDir);
    this.log.info({ supernet: name, version: info.version }, 'package downloaded');
    return record(true);
  }

  private async downloadFile(url: string, dir: string, path: string, bytes: number, sha256: string): Promise<void> {
    const done = join(dir, path);
    if (existsSync(done) && statSync(done).size === bytes && (await sha256File(done)) === sha256) return;
    const part = `${done}.part`;
    const have = existsSync(part) ? statSync(part).size : 0;
    const headers: Record<string, string> = {};
    if (have > 0 && have < bytes) {
      headers.range = `bytes=${have}-`;
      headers['if-range'] = `"${sha256}"`;
    }
    const res = await this.call(new URL(url).pathname, { headers }, `download ${path}`);
    const append = res.status === 206;
    if (!res.body) throw new NestswapError('ERR_PACKAGE_MISSING', `Empty response for ${path}.`);
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(part, { flags: append ? 'a' : 'w' }));
    const size = statSync(part).size;
    const digest = await sha256File(part);
    if (size !== bytes || digest !== sha256) {
      rmSync(part, { force: true }); // never resume from bytes that do not verify
      throw new NestswapError(size !== bytes ? 'ERR_PACKAGE_SIZE' : 'ERR_PACKAGE_DIGEST', `Downloaded ${path}: ${size} bytes, sha256 ${digest}; expected ${bytes} bytes, ${sha256}.`);
    }
    renameSync(part, done);
  }

  // ---------- profile ----------

  async uploadProfile(profileJson: string): Promise<ProfileSummary> {
    const id = this.identity();
    if (!id) throw new NestswapError('ERR_USAGE', 'Enroll before uploading a profile.');
    const res = await this.call(`/v1/devices/${encodeURIComponent(id.deviceId)}/profile`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: profileJson }, 'profile upload');
    return (await res.json()) as ProfileSummary;
  }

  // ---------- telemetry queue ----------

  private loadQueue(): void {
    try {
      this.acked = Number(readFileSync(this.path('telemetry.ack'), 'utf8')) || 0;
    } catch {
      this.acked = 0;
    }
    const events: TelemetryEvent[] = [];
    if (existsSync(this.path('telemetry.jsonl')))
      for (const line of readFileSync(this.path('telemetry.jsonl'), 'utf8').split('\n')) {
        if (!line) continue;
        try {
          events.push(JSON.parse(line) as TelemetryEvent);
        } catch {
          // a torn last line after a crash: that event was never acknowledged and is lost with the crash itself
        }
      }
    this.queue = events.filter((e) => e.seq > this.acked);
    this.nextSeq = Math.max(this.acked, ...events.map((e) => e.seq)) + 1;
  }

  /** Queues an event (persisted before this returns) and sends it when connected. */
  telemetry(kind: TelemetryEvent['kind'], data: Record<string, unknown>): TelemetryEvent {
    const e: TelemetryEvent = { seq: this.nextSeq++, at: Date.now(), kind, data };
    appendFileSync(this.path('telemetry.jsonl'), `${JSON.stringify(e)}\n`);
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

  /** Events not yet acknowledged by the registry. */
  get pending(): number {
    return this.queue.length;
  }

  private onAck(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    writeAtomic(this.path('telemetry.ack'), String(seq));
    this.queue = this.queue.filter((e) => e.seq > seq);
    if (this.inflightUpTo <= seq) this.inflightUpTo = 0;
    // compact the log once everything is acknowledged (or it grew large)
    if (this.queue.length === 0 || statSync(this.path('telemetry.jsonl')).size > 4 * 1024 * 1024)
      writeAtomic(this.path('telemetry.jsonl'), this.queue.map((e) => `${JSON.stringify(e)}\n`).join(''));
    this.emit('telemetry-ack', seq);
    this.flush();
  }

  /** Sends the next batch when connected and nothing is in flight (one batch at a time keeps order simple). */
  private flush(): void {
    if (!this.connected || this.inflightUpTo > 0 || this.queue.length === 0) return;
    const events = this.queue.slice(0, this.batch);
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
      try {
        outcome = this.onCommand ? await this.onCommand(c) : { ok: false, error: { code: 'ERR_UNSUPPORTED', message: 'This agent takes no commands.' } };
      } catch (err) {
        const e = err as { code?: string; message?: string };
        outcome = { ok: false, error: { code: typeof e.code === 'string' ? e.code : 'ERR_INTERNAL', message: String(e.message ?? err) } };
      }
      this.handled.set(c.id, outcome);
      while (this.handled.size > 500) this.handled.delete(this.handled.keys().next().value!);
      writeAtomic(this.path('commands.json'), JSON.stringify([...this.handled]));
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
    const ws = new WebSocket(`${this.url.replace(/^http/, 'ws')}${WS_PATH}`, { headers: { authorization: `Bearer ${this.token()}` }, handshakeTimeout: 10_000 });
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
      const delay = backoffDelay(this.attempt++, this.baseMs, this.maxMs);
      this.log.debug({ delay, attempt: this.attempt }, 'reconnecting');
      this.reconnectTimer = setTimeout(() => this.open(), delay);
    });
  }

  async close(): Promise<void> {
    this.stopped = true;
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
