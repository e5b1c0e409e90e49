/**
 * Registry replicas as real processes (`nestswap registry --database --bus --blobs --replica-id`),
 * for the scale test and bench: start, wait until healthy, kill -9, restart with the same id.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoPath } from './helpers.js';
import { freePort } from './servers.js';

export const BIN = repoPath('bin', 'nestswap.js');

export interface ReplicaSpec {
  id: string;
  database: string;
  bus: string;
  blobs: string;
  dataRoot: string;
  adminToken: string;
  enrollToken: string;
  port?: number;
  env?: Record<string, string>;
  /** more `nestswap registry` flags (e.g. TUF signing keys) */
  args?: string[];
}

export class Replica {
  child: ChildProcess | undefined;
  out = '';
  port = 0;
  exited: Promise<number | null> = Promise.resolve(null);

  constructor(readonly spec: ReplicaSpec) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (!this.port) this.port = this.spec.port ?? (await freePort());
    const s = this.spec;
    const args = [BIN, 'registry', '--port', String(this.port), '--data', join(s.dataRoot, s.id), '--database', s.database, '--bus', s.bus, '--blobs', s.blobs, '--replica-id', s.id, '--log-level', 'warn', ...(s.args ?? [])];
    const child = spawn(process.execPath, args, { env: { ...process.env, NESTSWAP_ADMIN_TOKEN: s.adminToken, NESTSWAP_ENROLL_TOKEN: s.enrollToken, ...s.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
    const keep = (d: Buffer) => {
      this.out = (this.out + d.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const t0 = Date.now();
    for (;;) {
      if (!this.running) throw new Error(`replica ${s.id} exited: ${this.out}`);
      try {
        if ((await fetch(`${this.url}/v1/health`)).ok) return;
      } catch {
        // not yet
      }
      if (Date.now() - t0 > 60_000) throw new Error(`replica ${s.id} did not become healthy: ${this.out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** kill -9: no close handshakes, no cleanup. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    const t = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}
