/**
 * Real PostgreSQL and NATS servers for tests and benches, started on 127.0.0.1, a random port and
 * a temporary directory, stopped (and the directory removed) by `stop()`. PostgreSQL refuses to run
 * as root: when we are root, initdb and the server run as the `postgres` user (runuser).
 * `postgresAvailable()` / `natsAvailable()` say why not when a binary is missing, for test skips.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PG_BIN = process.env.NESTSWAP_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const NATS_BIN = process.env.NESTSWAP_NATS_SERVER ?? 'nats-server';

export function postgresAvailable(): string | undefined {
  if (!existsSync(join(PG_BIN, 'initdb')) || !existsSync(join(PG_BIN, 'pg_ctl'))) return `PostgreSQL is not installed (no initdb/pg_ctl in ${PG_BIN}; apt-get install postgresql)`;
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return "running as root and there is no 'postgres' user to run PostgreSQL as";
  return undefined;
}

export function natsAvailable(): string | undefined {
  const r = spawnSync(NATS_BIN, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `nats-server is not installed (apt-get install nats-server)`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function asPostgres(cmd: string, args: string[]): { cmd: string; args: string[] } {
  return process.getuid?.() === 0 ? { cmd: 'runuser', args: ['-u', 'postgres', '--', cmd, ...args] } : { cmd, args };
}

function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr || r.stdout}`);
}

export interface PostgresServer {
  /** postgres://... of the `postgres` database */
  url: string;
  port: number;
  /** a URL of a fresh, empty database */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startPostgres(opts: { maxConnections?: number } = {}): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nestswap-pg-'));
  if (process.getuid?.() === 0) chownSync(dir, Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim()), Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim()));
  const data = join(dir, 'data');
  const port = await freePort();
  const init = asPostgres(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  run(init.cmd, init.args, 'initdb');
  // a throwaway test server: durability off, enough connections for three replicas
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=${opts.maxConnections ?? 200} -c shared_buffers=64MB`;
  const start = asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  run(start.cmd, start.args, 'pg_ctl start');
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let stopped = false;
  return {
    url,
    port,
    async createDatabase(name: string) {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const stop = asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
      spawnSync(stop.cmd, stop.args);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NatsServer {
  url: string;
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

export async function startNats(): Promise<NatsServer> {
  const port = await freePort();
  const proc = spawn(NATS_BIN, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const deadline = Date.now() + 20_000;
  while (!/Server is ready/.test(log)) {
    if (proc.exitCode !== null) throw new Error(`nats-server exited: ${log}`);
    if (Date.now() > deadline) throw new Error(`nats-server did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    proc,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
