/**
 * WebSocket hub (`/v1/ws`): one connection per device, authenticated by its device token on the
 * upgrade request. Frames are msgpack, validated with registry/protocol.ts. Delivery guarantees:
 *   - telemetry: per-device sequence numbers; frames from all connections are stored in batched
 *     multi-row inserts that ignore duplicates, so resends after a lost ack are harmless; the hub
 *     acks the highest stored seq and says it again in `welcome`.
 *   - commands: stored first, pushed when the device is connected (to this replica, or through the
 *     bus to the replica holding it), re-sent on every `hello` until the device acks them (the
 *     agent de-duplicates by command id); the store records each outcome once.
 *   - presence: a connection's `hello` claims its device in the store (a new epoch); a replica
 *     superseded by a newer claim drops its connection and cannot release or refresh the newer one.
 * Heartbeat: a ping every `heartbeatMs`; a connection that has not answered the previous ping is
 * dropped. Last-seen updates are batched into one store call per heartbeat.
 */
import { crashPoint } from '../runtime/crash.js';
import { isSegment } from '../runtime/names.js';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Packr } from 'msgpackr';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { Batcher } from './batcher.js';
import { DONE_SUBJECT, replicaSubject, type Bus, type BusMessage } from './bus.js';
import { AgentFrame, describeIssues, type AgentFrame as Frame, type CommandInfo, type RegistryFrame, type TelemetryEvent } from './protocol.js';
import { hashToken, type DeviceRow, type IngestResult, type Presence, type RegistryStore, type TelemetryBatch } from './store.js';

export const packr = new Packr({ useRecords: false, moreTypes: false });

interface Conn {
  ws: WebSocket;
  deviceId: string;
  alive: boolean;
  badFrames: number;
  presence?: Presence | undefined;
  /** frames of one connection are handled in order */
  queue: Promise<void>;
}

export interface HubOptions {
  maxFrameBytes: number;
  heartbeatMs: number;
  /** malformed frames tolerated on one connection before it is closed (1008) */
  maxBadFrames: number;
  replicaId: string;
}

/**
 * The device token of an upgrade request: `Authorization: Bearer <token>`, or (browsers cannot set
 * headers on a WebSocket) the subprotocol `bearer.<token>` offered next to `nestswap`.
 */
export function upgradeToken(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  const p = offered.find((x) => x.startsWith('bearer.'));
  return p ? p.slice('bearer.'.length) || undefined : undefined;
}

export class Hub extends EventEmitter {
  private readonly wss: WebSocketServer;
  private readonly conns = new Map<string, Conn>();
  private readonly timer: NodeJS.Timeout;
  private readonly touched = new Set<string>();
  private readonly telemetry: Batcher<TelemetryBatch, IngestResult>;
  private readonly sent: Batcher<string, undefined>;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly store: RegistryStore,
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly opts: HubOptions,
  ) {
    super();
    this.setMaxListeners(0);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxFrameBytes, handleProtocols: (offered) => (offered.has('nestswap') ? 'nestswap' : false) });
    this.timer = setInterval(() => this.heartbeat(), opts.heartbeatMs);
    this.timer.unref();
    this.telemetry = new Batcher(async (batches) => {
      const r = await store.ingestTelemetry(batches);
      crashPoint('registry-telemetry-stored');
      return batches.map((b) => r.get(b.deviceId) ?? { seq: 0, added: [] });
    });
    this.sent = new Batcher(async (ids) => {
      await store.markSent([...new Set(ids)]);
      return ids.map(() => undefined);
    });
    this.unsubscribe.push(bus.subscribe(replicaSubject(opts.replicaId), (m) => this.onBus(m)));
    this.unsubscribe.push(bus.subscribe(DONE_SUBJECT, (m) => m.t === 'done' && this.emit('command', m.command)));
  }

  get replicaId(): string {
    return this.opts.replicaId;
  }

  /** Connections held by this replica. */
  get connected(): number {
    return this.conns.size;
  }

  /** Whether this replica holds the device's connection. */
  isOnline(deviceId: string): boolean {
    return this.conns.has(deviceId);
  }

  /** Handles an HTTP upgrade on the WS path: 401 without a valid device token. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const token = upgradeToken(req);
    const found = token ? this.store.deviceByTokenHash(hashToken(token)) : Promise.resolve(undefined);
    found.then(
      (device) => {
        if (!device) {
          const code = token ? 'ERR_AUTH_INVALID' : 'ERR_AUTH_MISSING';
          const body = JSON.stringify({ error: { code, message: token ? 'Unknown device token.' : 'The WebSocket needs Authorization: Bearer <device token>.' } });
          socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
          return;
        }
        this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, device));
      },
      (err: unknown) => {
        this.log.error({ err }, 'upgrade failed');
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      },
    );
  }

  private attach(ws: WebSocket, device: DeviceRow): void {
    const log = this.log.child({ device: device.id });
    const previous = this.conns.get(device.id);
    if (previous) previous.ws.close(4000, 'replaced by a newer connection');
    const conn: Conn = { ws, deviceId: device.id, alive: true, badFrames: 0, queue: Promise.resolve() };
    this.conns.set(device.id, conn);
    this.touched.add(device.id);
    log.debug('connected');
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('message', (data, isBinary) => this.enqueue(conn, log, () => this.onMessage(conn, data, isBinary, log)));
    ws.on('close', (code) => {
      if (this.conns.get(device.id) === conn) this.conns.delete(device.id);
      this.enqueue(conn, log, async () => {
        if (conn.presence) await this.store.releasePresence(conn.presence);
      });
      log.debug({ code }, 'disconnected');
      this.emit('disconnect', device.id);
    });
    ws.on('error', (err) => log.warn({ err: err.message }, 'socket error'));
    this.emit('connect', device.id);
  }

  private enqueue(conn: Conn, log: Logger, task: () => Promise<void>): void {
    conn.queue = conn.queue.then(task).catch((err: unknown) => {
      log.error({ err }, 'frame handling failed');
      this.send(conn, { t: 'error', code: 'ERR_INTERNAL', message: 'The registry could not process the frame.' });
    });
  }

  /** Claims the device; a replica that held it before is told to drop its (now stale) connection. */
  private async claim(conn: Conn): Promise<void> {
    const before = (await this.store.presence([conn.deviceId])).get(conn.deviceId);
    conn.presence = await this.store.claimPresence(conn.deviceId, this.opts.replicaId);
    if (before && before.replicaId !== this.opts.replicaId) this.bus.publish(replicaSubject(before.replicaId), { t: 'superseded', deviceId: conn.deviceId, epoch: conn.presence.epoch });
  }

  private onBus(m: BusMessage): void {
    const conn = this.conns.get(m.t === 'done' ? '' : m.deviceId);
    if (!conn) return;
    if (m.t === 'superseded') {
      if (conn.presence && conn.presence.epoch < m.epoch) {
        conn.presence = undefined; // the newer claim is not ours to release
        conn.ws.close(4000, 'replaced by a newer connection');
      }
      return;
    }
    // the command as stored a moment ago: delivering it again is harmless, the device acks by id
    if (m.t === 'push') this.enqueue(conn, this.log, async () => this.deliver(conn, m.command));
  }

  private send(conn: Conn, frame: RegistryFrame): void {
    if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(packr.pack(frame));
  }

  private reject(conn: Conn, code: string, message: string, log: Logger): void {
    conn.badFrames++;
    log.warn({ code }, message);
    this.send(conn, { t: 'error', code, message });
    if (conn.badFrames >= this.opts.maxBadFrames) conn.ws.close(1008, 'too many invalid frames');
  }

  private async onMessage(conn: Conn, data: RawData, isBinary: boolean, log: Logger): Promise<void> {
    if (!isBinary) return this.reject(conn, 'ERR_VALIDATION', 'Frames must be binary msgpack.', log);
    let value: unknown;
    try {
      value = packr.unpack(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer));
    } catch {
      return this.reject(conn, 'ERR_VALIDATION', 'Frame is not valid msgpack.', log);
    }
    const r = AgentFrame.safeParse(value);
    if (!r.success) return this.reject(conn, 'ERR_VALIDATION', `Invalid frame: ${describeIssues(r.error)}`, log);
    await this.handle(conn, r.data);
  }

  private async handle(conn: Conn, f: Frame): Promise<void> {
    switch (f.t) {
      case 'hello': {
        this.touched.add(conn.deviceId);
        // claimed at hello, not at the upgrade: a connection its client gave up on during a slow
        // handshake (a ghost) never says hello, so it never takes the device from the live one
        if (!conn.presence) await this.claim(conn);
        await this.store.setDeviceState(conn.deviceId, { subnet: f.subnet, subnetId: f.subnetId ?? null, budget: f.budget, packageVersion: f.packageVersion ?? null });
        const dev = await this.store.device(conn.deviceId);
        this.send(conn, { t: 'welcome', deviceId: conn.deviceId, telemetryAck: dev?.telemetry_seq ?? 0 });
        // resume: everything not yet acknowledged goes again, oldest first
        for (const c of await this.store.openCommands(conn.deviceId)) this.deliver(conn, c);
        return;
      }
      case 'telemetry': {
        const { seq, added } = await this.telemetry.add({ deviceId: conn.deviceId, events: f.events });
        for (const e of added) await this.applyEvent(conn.deviceId, e);
        this.send(conn, { t: 'telemetry-ack', seq });
        if (added.length > 0) this.emit('telemetry', conn.deviceId, added.length);
        return;
      }
      case 'ack': {
        const done = await this.store.finishCommand(conn.deviceId, f.id, f.ok, f.result, f.error);
        crashPoint('registry-command-acked');
        if (done) this.bus.publish(DONE_SUBJECT, { t: 'done', command: done });
        return;
      }
    }
  }

  /**
   * Device state follows its own reports: swaps carry the new subnet, budget events the new budget,
   * a package-updated status event the version it serves now.
   */
  private async applyEvent(deviceId: string, e: TelemetryEvent): Promise<void> {
    if (e.kind === 'status' && e.data.event === 'package-updated' && typeof e.data.to === 'string' && isSegment(e.data.to)) await this.store.setDeviceState(deviceId, { packageVersion: e.data.to });
    if (e.kind === 'swap' && e.data.subnet) await this.store.setDeviceState(deviceId, { subnet: e.data.subnet, subnetId: typeof e.data.subnetId === 'string' ? e.data.subnetId : null });
    if (e.kind === 'budget' && e.data.budget) await this.store.setDeviceState(deviceId, { budget: e.data.budget });
  }

  private deliver(conn: Conn, c: CommandInfo): void {
    this.send(conn, { t: 'command', id: c.id, type: c.type, payload: c.payload, createdAt: c.createdAt });
    this.sent.add(c.id).catch((err: unknown) => this.log.warn({ err, command: c.id }, 'could not mark a command sent'));
  }

  /**
   * Pushes a stored command now to wherever its device is connected: this replica, or the holder
   * named by the store's presence row (through the bus). Otherwise it waits for the next hello.
   */
  async push(c: CommandInfo): Promise<boolean> {
    const conn = this.conns.get(c.deviceId);
    if (conn) {
      this.enqueue(conn, this.log, async () => this.deliver(conn, c));
      return true;
    }
    const p = (await this.store.presence([c.deviceId])).get(c.deviceId);
    if (!p) return false;
    this.bus.publish(replicaSubject(p.replicaId), { t: 'push', deviceId: c.deviceId, command: c });
    return true;
  }

  private heartbeat(): void {
    for (const conn of this.conns.values()) {
      if (!conn.alive) {
        this.log.info({ device: conn.deviceId }, 'dropping dead connection');
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
      this.touched.add(conn.deviceId);
    }
    const ids = [...this.touched];
    this.touched.clear();
    if (ids.length) this.store.touch(ids, this.opts.replicaId).catch((err: unknown) => this.log.warn({ err }, 'last-seen update failed'));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const u of this.unsubscribe) u();
    for (const c of this.conns.values()) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await Promise.all([...this.conns.values()].map((c) => c.queue));
    await this.telemetry.drain();
    await this.sent.drain();
    await this.store.clearPresence(this.opts.replicaId).catch(() => undefined);
  }
}
