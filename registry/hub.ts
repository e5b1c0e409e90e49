/**
 * WebSocket hub (`/v1/ws`): one connection per device, authenticated by its device token on the
 * upgrade request. Frames are msgpack, validated with registry/protocol.ts. Delivery guarantees:
 *   - telemetry: per-device sequence numbers; stored with INSERT OR IGNORE, so resends after a lost
 *     ack are harmless; the hub acks the highest stored seq and says it again in `welcome`.
 *   - commands: stored first, pushed when the device is connected, re-sent on every `hello` until
 *     the device acks them (the agent de-duplicates by command id).
 * Heartbeat: a ping every `heartbeatMs`; a connection that has not answered the previous ping is dropped.
 */
import { crashPoint } from '../runtime/crash.js';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Packr } from 'msgpackr';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { AgentFrame, describeIssues, type CommandInfo, type RegistryFrame, type TelemetryEvent } from './protocol.js';
import { hashToken, type DeviceRow, type RegistryStore } from './store.js';

export const packr = new Packr({ useRecords: false, moreTypes: false });

interface Conn {
  ws: WebSocket;
  deviceId: string;
  alive: boolean;
  badFrames: number;
}

export interface HubOptions {
  maxFrameBytes: number;
  heartbeatMs: number;
  /** malformed frames tolerated on one connection before it is closed (1008) */
  maxBadFrames: number;
}

export class Hub extends EventEmitter {
  private readonly wss: WebSocketServer;
  private readonly conns = new Map<string, Conn>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: RegistryStore,
    private readonly log: Logger,
    private readonly opts: HubOptions,
  ) {
    super();
    this.wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxFrameBytes });
    this.timer = setInterval(() => this.heartbeat(), opts.heartbeatMs);
    this.timer.unref();
  }

  get connected(): number {
    return this.conns.size;
  }

  isOnline(deviceId: string): boolean {
    return this.conns.has(deviceId);
  }

  /** Handles an HTTP upgrade on the WS path: 401 without a valid device token. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    const device = token ? this.store.deviceByTokenHash(hashToken(token)) : undefined;
    if (!device) {
      const code = token ? 'ERR_AUTH_INVALID' : 'ERR_AUTH_MISSING';
      const body = JSON.stringify({ error: { code, message: token ? 'Unknown device token.' : 'The WebSocket needs Authorization: Bearer <device token>.' } });
      socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, device));
  }

  private attach(ws: WebSocket, device: DeviceRow): void {
    const log = this.log.child({ device: device.id });
    const previous = this.conns.get(device.id);
    if (previous) previous.ws.close(4000, 'replaced by a newer connection');
    const conn: Conn = { ws, deviceId: device.id, alive: true, badFrames: 0 };
    this.conns.set(device.id, conn);
    this.store.touch(device.id);
    log.debug('connected');
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('message', (data, isBinary) => this.onMessage(conn, data, isBinary, log));
    ws.on('close', (code) => {
      if (this.conns.get(device.id) === conn) this.conns.delete(device.id);
      log.debug({ code }, 'disconnected');
      this.emit('disconnect', device.id);
    });
    ws.on('error', (err) => log.warn({ err: err.message }, 'socket error'));
    this.emit('connect', device.id);
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

  private onMessage(conn: Conn, data: RawData, isBinary: boolean, log: Logger): void {
    if (!isBinary) return this.reject(conn, 'ERR_VALIDATION', 'Frames must be binary msgpack.', log);
    let value: unknown;
    try {
      value = packr.unpack(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer));
    } catch {
      return this.reject(conn, 'ERR_VALIDATION', 'Frame is not valid msgpack.', log);
    }
    const r = AgentFrame.safeParse(value);
    if (!r.success) return this.reject(conn, 'ERR_VALIDATION', `Invalid frame: ${describeIssues(r.error)}`, log);
    const f = r.data;
    try {
      switch (f.t) {
        case 'hello': {
          this.store.touch(conn.deviceId);
          this.store.setDeviceState(conn.deviceId, { subnet: f.subnet, subnetId: f.subnetId ?? null, budget: f.budget });
          const dev = this.store.device(conn.deviceId)!;
          this.send(conn, { t: 'welcome', deviceId: conn.deviceId, telemetryAck: dev.telemetry_seq });
          // resume: everything not yet acknowledged goes again, oldest first
          for (const c of this.store.openCommands(conn.deviceId)) this.deliver(conn, c);
          return;
        }
        case 'telemetry': {
          const { seq, added } = this.store.ingestTelemetry(conn.deviceId, f.events, (e) => this.applyEvent(conn.deviceId, e));
          crashPoint('registry-telemetry-stored');
          this.send(conn, { t: 'telemetry-ack', seq });
          if (added > 0) this.emit('telemetry', conn.deviceId, added);
          return;
        }
        case 'ack': {
          const done = this.store.finishCommand(conn.deviceId, f.id, f.ok, f.result, f.error);
          crashPoint('registry-command-acked');
          if (done) this.emit('command', this.store.command(f.id)!);
          return;
        }
      }
    } catch (err) {
      log.error({ err }, 'frame handling failed');
      this.send(conn, { t: 'error', code: 'ERR_INTERNAL', message: 'The registry could not process the frame.' });
    }
  }

  /** Device state follows its own reports: swaps carry the new subnet, budget events the new budget. */
  private applyEvent(deviceId: string, e: TelemetryEvent): void {
    if (e.kind === 'swap' && e.data.subnet) this.store.setDeviceState(deviceId, { subnet: e.data.subnet, subnetId: typeof e.data.subnetId === 'string' ? e.data.subnetId : null });
    if (e.kind === 'budget' && e.data.budget) this.store.setDeviceState(deviceId, { budget: e.data.budget });
  }

  private deliver(conn: Conn, c: CommandInfo): void {
    this.send(conn, { t: 'command', id: c.id, type: c.type, payload: c.payload, createdAt: c.createdAt });
    this.store.markSent(c.id);
  }

  /** Pushes a stored command now if its device is connected (else it waits for the next hello). */
  push(c: CommandInfo): boolean {
    const conn = this.conns.get(c.deviceId);
    if (!conn) return false;
    this.deliver(conn, c);
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
      this.store.touch(conn.deviceId);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const c of this.conns.values()) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
