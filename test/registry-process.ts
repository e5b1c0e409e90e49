/**
 * A signed registry as a real process, for the fleet and crash tests: keys from `nestswap keys init`,
 * online targets, a free port on 127.0.0.1, restartable on the same data directory, the tiny queryable
 * package published through the CLI; agents get the arguments that trust its root.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AdminClient } from '../registry/admin-client.js';
import { cli, freePort, start, until, type Proc } from './processes.js';
import { makeQueryablePackage } from './registry-fixtures.js';

export interface RegistryProcess {
  readonly url: string;
  readonly keyDir: string;
  readonly dataDir: string;
  /** the package directory published at setup */
  readonly pkgDir: string;
  /** the process of the latest start */
  readonly current: Proc | undefined;
  /** starts (or restarts) the registry and waits until it answers (or, armed by NESTSWAP_CRASH_AT in `env`, has crashed there) */
  start(env?: Record<string, string>): Promise<Proc>;
  admin(): AdminClient;
  /** a fleet agent of these tests: `supernet` with a 50 ms budget, one thread, its own data directory, trusting this registry's root */
  agentArgs(name: string, dataDir: string, supernet?: string): string[];
}

export async function registryProcess(root: string, tokens: { admin: string; enroll: string }): Promise<RegistryProcess> {
  const keyDir = join(root, 'keys');
  const dataDir = join(root, 'registry');
  const keys = cli(['keys', 'init', '--out', keyDir, '--json']);
  assert.equal(keys.code, 0, keys.stderr);
  const url = `http://127.0.0.1:${await freePort()}`;
  const port = new URL(url).port;
  let current: Proc | undefined;
  const reg: RegistryProcess = {
    url,
    keyDir,
    dataDir,
    pkgDir: join(root, 'pkg'),
    get current() {
      return current;
    },
    async start(env = {}) {
      current = start(['registry', '--port', port, '--data', dataDir, '--keys', keyDir, '--online-targets', '--log-level', 'warn'], { NESTSWAP_ADMIN_TOKEN: tokens.admin, NESTSWAP_ENROLL_TOKEN: tokens.enroll, ...env });
      const p = current;
      // armed with a crash point, it may reach it before the first health check (a connected agent
      // sends at once): having killed itself there is what the caller waits for next, not a failed start
      const crashed = () => Boolean(env.NESTSWAP_CRASH_AT) && p.child.signalCode === 'SIGKILL';
      await until('registry', async () => crashed() || (p.child.exitCode === null && p.child.signalCode === null && (await fetch(`${url}/v1/health`)).ok), 30_000, 50);
      return p;
    },
    admin: () => new AdminClient(url, tokens.admin),
    agentArgs: (name, data, supernet = 'tiny') =>
      ['agent', '--registry', url, '--enroll-token', tokens.enroll, '--supernet', supernet, '--name', name, '--latency-ms', '50', '--port', '0', '--threads', '1', '--data', data, '--log-level', 'info', '--trust-root', join(keyDir, 'root.json')],
  };
  await reg.start();
  await makeQueryablePackage(reg.pkgDir);
  const pub = cli(['publish', reg.pkgDir, '--registry', url, '--token', tokens.admin, '--json']);
  assert.equal(pub.code, 0, pub.stderr);
  assert.equal((JSON.parse(pub.stdout) as { created: boolean }).created, true);
  return reg;
}
