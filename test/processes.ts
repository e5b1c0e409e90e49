/** Real nestswap processes for tests: spawn, collect JSON log lines, wait, stop. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { repoPath } from './helpers.js';

export const BIN = repoPath('bin', 'nestswap.js');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Proc {
  child: ChildProcess;
  out: string;
  lines: Record<string, unknown>[];
  /** resolves with the exit code, or the signal name when a signal ended it */
  exited: Promise<number | string | null>;
}

export function start(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NESTSWAP_CRASH_AT: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = { child, out: '', lines: [], exited: new Promise((r) => child.once('exit', (code, signal) => r(signal ?? code))) };
  let rest = '';
  const onData = (d: Buffer) => {
    p.out += d.toString();
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop()!;
    for (const line of parts)
      if (line.startsWith('{'))
        try {
          p.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not JSON
        }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return p;
}

export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 60_000, every = 100): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch {
      // not yet
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

export async function stop(p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  await p.exited;
  clearTimeout(t);
}

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI to its end without blocking this process (servers the test started here keep answering).
 * The caller's own NESTSWAP_* settings are not passed on; `env` adds settings (undefined removes one).
 */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<Ran> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NESTSWAP_')));
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

export function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
