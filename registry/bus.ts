/**
 * Messages between registry replicas. The bus only rings doorbells: the database stays the source
 * of truth, so a message lost (a replica down, a subscriber late) delays, never loses, a command.
 * `LocalBus` is the in-process default of a single registry; registry/bus-nats.ts is the NATS one.
 *
 * Subjects:
 *   nestswap.replica.<replica id>  - to the replica holding a device: push a command (it rides along, as
 *                                    stored, so the holder delivers without a read), or drop a connection
 *                                    superseded elsewhere
 *   nestswap.commands.done         - to every replica: a command's outcome was recorded (answers `waitMs` waiters)
 */
import { EventEmitter } from 'node:events';
import type { CommandInfo } from './protocol.js';

export type BusMessage =
  | { t: 'push'; deviceId: string; command: CommandInfo }
  | { t: 'superseded'; deviceId: string; epoch: number }
  | { t: 'done'; command: CommandInfo };

export interface Bus {
  readonly kind: 'local' | 'nats';
  publish(subject: string, msg: BusMessage): void;
  /** Returns the unsubscribe function. */
  subscribe(subject: string, handler: (msg: BusMessage) => void): () => void;
  /** Resolves when everything published so far has left this process. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export const replicaSubject = (replicaId: string) => `nestswap.replica.${replicaId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
export const DONE_SUBJECT = 'nestswap.commands.done';

export class LocalBus implements Bus {
  readonly kind = 'local' as const;
  private readonly ee = new EventEmitter();

  constructor() {
    this.ee.setMaxListeners(0);
  }

  publish(subject: string, msg: BusMessage): void {
    // asynchronous like a network bus, so callers never depend on re-entrancy
    queueMicrotask(() => this.ee.emit(subject, msg));
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void): () => void {
    this.ee.on(subject, handler);
    return () => this.ee.off(subject, handler);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.ee.removeAllListeners();
  }
}
