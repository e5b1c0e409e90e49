/**
 * The NATS bus between registry replicas (`nats` client, any NATS server). Core NATS, at-most-once:
 * enough for doorbells, because every command and outcome is in the database first and a device
 * that reconnects gets its unacknowledged commands again (registry/bus.ts).
 */
import { connect, JSONCodec, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { NestswapError } from '../runtime/errors.js';
import type { Bus, BusMessage } from './bus.js';

const codec = JSONCodec<BusMessage>();

export class NatsBus implements Bus {
  readonly kind = 'nats' as const;
  private constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger | undefined,
  ) {}

  static async open(url: string, opts: { name?: string; logger?: Logger } = {}): Promise<NatsBus> {
    let nc: NatsConnection;
    try {
      // keep reconnecting for as long as the replica runs: a NATS restart must not end it
      nc = await connect({ servers: url.split(','), name: opts.name ?? 'nestswap-registry', maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 10_000 });
    } catch (cause) {
      throw new NestswapError('ERR_BUS', `Cannot connect to the NATS bus at ${url}: ${(cause as Error).message}`, { cause });
    }
    const bus = new NatsBus(nc, opts.logger);
    void (async () => {
      for await (const s of nc.status()) opts.logger?.info({ type: s.type, data: typeof s.data === 'string' ? s.data : undefined }, 'bus status');
    })().catch(() => undefined);
    return bus;
  }

  publish(subject: string, msg: BusMessage): void {
    try {
      this.nc.publish(subject, codec.encode(msg));
    } catch (err) {
      // closed or draining: the database still has the command; the device gets it on its next hello
      this.log?.warn({ err: (err as Error).message, subject }, 'bus publish failed');
    }
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void): () => void {
    const sub = this.nc.subscribe(subject, {
      callback: (err, m) => {
        if (err) return void this.log?.warn({ err: err.message, subject }, 'bus subscription error');
        let msg: BusMessage;
        try {
          msg = codec.decode(m.data);
        } catch {
          return void this.log?.warn({ subject }, 'undecodable bus message');
        }
        handler(msg);
      },
    });
    return () => sub.unsubscribe();
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    await this.nc.drain().catch(() => this.nc.close());
  }
}
