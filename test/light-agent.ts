/**
 * A lightweight device for scale tests and benches: speaks the real agent protocol of
 * registry/protocol.ts over one WebSocket (hello, telemetry with per-device sequence numbers and
 * resend of everything unacknowledged after `welcome`, acks for every command delivery), and
 * reconnects to the next of its registry URLs with full-jitter backoff when its connection closes.
 * No model, no profile: hundreds or thousands fit in one process.
 */
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import type { RegistryFrame, TelemetryEvent } from '../registry/protocol.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

export interface LightAgentOptions {
  deviceId: string;
  token: string;
  /** registry URLs in the order this device tries them */
  urls: string[];
  backoff?: { baseMs: number; maxMs: number };
  /** WebSocket handshake deadline (default 10 s, as the real agent) */
  handshakeTimeoutMs?: number;
  /** called on every command delivery, before the ack is sent */
  onCommand?: (id: string, agent: LightAgent) => void;
}

export async function enrollLight(url: string, enrollToken: string, name: string, extra: Record<string, unknown> = {}): Promise<{ deviceId: string; token: string }> {
  const res = await fetch(`${url}/v1/devices/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${enrollToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, deviceClass: 'light', ...extra }),
  });
  if (res.status !== 201) throw new Error(`enroll ${name}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as { deviceId: string; token: string };
}

export class LightAgent {
  ws: WebSocket | undefined;
  /** index into urls of the current or last connection */
  at = 0;
  welcomed = false;
  connects = 0;
  seq = 0;
  acked = 0;
  /** deliveries per command id (at-least-once: may exceed 1) */
  readonly deliveries = new Map<string, number>();
  private unacked: TelemetryEvent[] = [];
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];

  constructor(readonly opts: LightAgentOptions) {}

  get url(): string {
    return this.opts.urls[this.at]!;
  }

  get deviceId(): string {
    return this.opts.deviceId;
  }

  start(): void {
    this.open();
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when `pred` holds, re-checked on every frame and connection change. */
  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const t0 = Date.now();
    while (!pred()) {
      if (Date.now() - t0 > ms) throw new Error(`${this.deviceId}: timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  private send(f: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(packr.pack(f));
  }

  private open(): void {
    if (this.stopped) return;
    const ws = new WebSocket(`${this.url.replace(/^http/, 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${this.opts.token}` }, handshakeTimeout: this.opts.handshakeTimeoutMs ?? 10_000, perMessageDeflate: false });
    this.ws = ws;
    ws.on('open', () => {
      this.attempt = 0;
      this.connects++;
      this.send({ t: 'hello', agent: 'light' });
    });
    ws.on('message', (data) => this.onFrame(packr.unpack(data as Buffer) as RegistryFrame));
    ws.on('error', () => undefined);
    ws.on('close', () => {
      this.welcomed = false;
      this.notify();
      if (this.stopped) return;
      this.at = (this.at + 1) % this.opts.urls.length;
      const { baseMs, maxMs } = this.opts.backoff ?? { baseMs: 100, maxMs: 2000 };
      const delay = Math.round(Math.random() * Math.min(maxMs, baseMs * 2 ** Math.min(this.attempt++, 20)));
      this.timer = setTimeout(() => this.open(), delay);
    });
  }

  private onFrame(f: RegistryFrame): void {
    if (f.t === 'welcome') {
      this.welcomed = true;
      this.ack(f.telemetryAck);
      // everything not yet acknowledged goes again (the registry ignores what it already stored)
      this.flush(this.unacked);
    } else if (f.t === 'telemetry-ack') this.ack(f.seq);
    else if (f.t === 'command') {
      this.deliveries.set(f.id, (this.deliveries.get(f.id) ?? 0) + 1);
      this.opts.onCommand?.(f.id, this);
      this.send({ t: 'ack', id: f.id, ok: true, result: { by: 'light' } });
    }
    this.notify();
  }

  private ack(seq: number): void {
    if (seq > this.acked) this.acked = seq;
    this.unacked = this.unacked.filter((e) => e.seq > this.acked);
  }

  private flush(events: TelemetryEvent[]): void {
    for (let i = 0; i < events.length; i += 500) this.send({ t: 'telemetry', events: events.slice(i, i + 500) });
  }

  /** Queues `n` new events and sends them now if connected (else after the next welcome). */
  telemetry(n: number, kind: TelemetryEvent['kind'] = 'latency'): void {
    const fresh: TelemetryEvent[] = [];
    for (let i = 0; i < n; i++) fresh.push({ seq: ++this.seq, at: Date.now(), kind, data: { p50Ms: 1 + (this.seq % 7) } });
    this.unacked.push(...fresh);
    if (this.welcomed) this.flush(fresh);
  }

  /** Drops the connection without a close handshake (as a crashed network would); it reconnects. */
  drop(): void {
    this.ws?.terminate();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      ws.terminate();
      await closed;
    }
  }
}
