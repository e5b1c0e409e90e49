/**
 * The browser agent's link to its registry: enrollment (the device token kept in localStorage),
 * profile upload, and the WebSocket (`/v1/ws`, msgpack frames; the token travels as the subprotocol
 * `bearer.<token>` because a page cannot set headers on a WebSocket): hello, telemetry with per-device
 * sequence numbers kept across reloads (resent until acknowledged), pushed commands acknowledged once
 * each (de-duplicated by id across reloads), reconnection with capped, jittered backoff.
 */
import { Packr } from 'msgpackr';
import type { CommandFrame, CommandOutcome } from '../agent/core/fleet-link.js';
import { NestswapError } from '../runtime/errors.js';
import type { AgentFrame, EnrollBody, RegistryFrame, TelemetryEvent } from '../registry/protocol.js';
import { local } from './storage.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

export interface Identity {
  registry: string;
  deviceId: string;
  token: string;
}

/** A refusal of the registry: its HTTP status and error code (registry/protocol.ts ERROR_CODES). */
export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

async function failure(res: Response, what: string): Promise<never> {
  const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
  throw new RegistryError(res.status, body.error?.code ?? `HTTP_${res.status}`, `${what}: ${body.error?.message ?? `HTTP ${res.status}`}`);
}

const idKey = (registry: string) => `nestswap:identity:${registry}`;

/** The saved identity, or a new enrollment with `enrollToken`; a given device token is used as is. */
export async function enroll(registry: string, o: { enrollToken?: string; deviceToken?: string; deviceId?: string; body: EnrollBody }): Promise<Identity & { enrolled: boolean }> {
  if (o.deviceToken) {
    const saved = local.get<Identity>(idKey(registry));
    if (saved?.token === o.deviceToken) return { ...saved, enrolled: false };
    if (!o.deviceId) throw new NestswapError('ERR_USAGE', 'connect({ deviceToken }) needs deviceId too when this browser has not saved that identity.');
    const res = await fetch(`${registry}/v1/devices/${encodeURIComponent(o.deviceId)}`, { headers: { authorization: `Bearer ${o.deviceToken}` } });
    if (!res.ok) await failure(res, 'device token check');
    const id = { registry, deviceId: o.deviceId, token: o.deviceToken };
    local.set(idKey(registry), id);
    return { ...id, enrolled: false };
  }
  const saved = local.get<Identity>(idKey(registry));
  if (saved && saved.registry === registry) return { ...saved, enrolled: false };
  if (!o.enrollToken) throw new NestswapError('ERR_USAGE', 'connect() needs enrollToken (first visit) or deviceToken.');
  const res = await fetch(`${registry}/v1/devices/enroll`, {
    method: 'POST',
    headers: { authorization: `Bearer ${o.enrollToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(o.body),
  });
  if (!res.ok) await failure(res, 'enroll');
  const r = (await res.json()) as { deviceId: string; token: string };
  const id = { registry, deviceId: r.deviceId, token: r.token };
  local.set(idKey(registry), id);
  return { ...id, enrolled: true };
}

export async function uploadProfile(id: Identity, profileJson: string): Promise<unknown> {
  const res = await fetch(`${id.registry}/v1/devices/${encodeURIComponent(id.deviceId)}/profile`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${id.token}`, 'content-type': 'application/json' },
    body: profileJson,
  });
  if (!res.ok) await failure(res, 'profile upload');
  return res.json();
}

export interface LinkHandlers {
  onCommand: (c: CommandFrame) => Promise<CommandOutcome>;
  hello: () => Extract<AgentFrame, { t: 'hello' }>;
  onStateChange?: (connected: boolean) => void;
}

/** The WebSocket to the registry, reconnecting until closed. */
export class RegistryLink {
  private ws: WebSocket | undefined;
  private closed = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private queue: TelemetryEvent[] = [];
  private inflightUpTo = 0;
  private readonly seqKey: string;
  private readonly handledKey: string;
  private handled: [string, CommandOutcome][];
  connected = false;

  constructor(
    private readonly id: Identity,
    private readonly handlers: LinkHandlers,
    private readonly maxQueued = 5000,
  ) {
    this.seqKey = `nestswap:seq:${id.registry}:${id.deviceId}`;
    this.handledKey = `nestswap:commands:${id.registry}:${id.deviceId}`;
    this.handled = local.get<[string, CommandOutcome][]>(this.handledKey) ?? [];
    this.open();
  }

  private nextSeq(): number {
    const n = (local.get<number>(this.seqKey) ?? 0) + 1;
    local.set(this.seqKey, n);
    return n;
  }

  /** Queues one event and sends it when connected. */
  telemetry(kind: TelemetryEvent['kind'], data: Record<string, unknown>): void {
    this.queue.push({ seq: this.nextSeq(), at: Date.now(), kind, data: JSON.parse(JSON.stringify(data)) as Record<string, unknown> });
    if (this.queue.length > this.maxQueued) this.queue.splice(0, this.queue.length - this.maxQueued);
    this.flush();
  }

  get pending(): number {
    return this.queue.length;
  }

  private send(f: AgentFrame): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(packr.pack(f));
  }

  private flush(): void {
    if (!this.connected || this.inflightUpTo > 0 || this.queue.length === 0) return;
    const events = this.queue.slice(0, 200);
    this.inflightUpTo = events[events.length - 1]!.seq;
    this.send({ t: 'telemetry', events });
  }

  private acked(seq: number): void {
    // the registry's highest stored seq: sequence numbers continue above it
    if ((local.get<number>(this.seqKey) ?? 0) < seq) local.set(this.seqKey, seq);
    this.queue = this.queue.filter((e) => e.seq > seq);
    if (this.inflightUpTo <= seq) this.inflightUpTo = 0;
    this.flush();
  }

  private open(): void {
    if (this.closed) return;
    const url = `${this.id.registry.replace(/^http/, 'ws')}/v1/ws`;
    const ws = new WebSocket(url, ['nestswap', `bearer.${this.id.token}`]);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.send(this.handlers.hello());
    };
    ws.onmessage = (ev) => {
      let f: RegistryFrame;
      try {
        f = packr.unpack(new Uint8Array(ev.data as ArrayBuffer)) as RegistryFrame;
      } catch {
        return; // not a frame of ours
      }
      if (f.t === 'welcome') {
        this.connected = true;
        this.inflightUpTo = 0;
        this.handlers.onStateChange?.(true);
        this.acked(f.telemetryAck);
      } else if (f.t === 'telemetry-ack') this.acked(f.seq);
      else if (f.t === 'command') void this.command(f);
    };
    ws.onclose = () => {
      if (this.connected) this.handlers.onStateChange?.(false);
      this.connected = false;
      this.inflightUpTo = 0;
      if (this.closed) return;
      const delay = Math.min(30_000, 500 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  private async command(c: CommandFrame): Promise<void> {
    let outcome = this.handled.find(([id]) => id === c.id)?.[1];
    if (!outcome) {
      try {
        outcome = await this.handlers.onCommand(c);
      } catch (err) {
        const e = err as { code?: string; message?: string };
        outcome = { ok: false, error: { code: typeof e.code === 'string' ? e.code : 'ERR_INTERNAL', message: String(e.message ?? err) } };
      }
      this.handled = [...this.handled, [c.id, outcome] as [string, CommandOutcome]].slice(-200);
      local.set(this.handledKey, this.handled);
    }
    this.send({ t: 'ack', id: c.id, ok: outcome.ok, ...(outcome.result ? { result: outcome.result } : {}), ...(outcome.error ? { error: outcome.error } : {}) });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000, 'agent closed');
  }
}
