/**
 * Stopping a fleet agent while it profiles in the background: the profile stops within one timed visit,
 * nothing half-measured is written or uploaded, and the next start measures again.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { startFleetAgent } from '../agent/fleet.js';
import { AdminClient } from '../registry/admin-client.js';
import { startRegistry } from '../registry/server.js';
import { tempDir } from './helpers.js';
import { makeQueryablePackage } from './registry-fixtures.js';

const ADMIN = 'admin-token-0123456789abcdef';
const ENROLL = 'enroll-token-0123456789abcdef';

test('closing a fleet agent stops its background profile: no profile is written or uploaded, the stop is logged', async () => {
  using dir = tempDir('nestswap-shutdown-');
  const pkgDir = await makeQueryablePackage(join(dir.path, 'pkg'));
  const reg = await startRegistry({ port: 0, dataDir: join(dir.path, 'reg'), adminToken: ADMIN, enrollToken: ENROLL });
  try {
    await new AdminClient(reg.url, ADMIN).publishDir(pkgDir);
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    // 20,000 timed runs per part: a profile of minutes, in visits of a fraction of a second
    const agent = await startFleetAgent({ registry: reg.url, enrollToken: ENROLL, supernet: 'tiny', port: 0, host: '127.0.0.1', dataDir: join(dir.path, 'agent'), insecureNoSignatures: true, logger, profile: { runs: 20_000, memorySubnets: 0 }, fewShot: false });
    await new Promise((r) => setTimeout(r, 1000));
    const closed = await Promise.race([agent.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('still waiting after 60 s'), 60_000).unref())]);
    assert.equal(closed, 'closed');
    assert.ok(lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('profiling stopped')), 'the stop is logged');
    assert.ok(!lines.some((l) => l.msg === 'profile ready'), 'the profile did not finish');
    assert.ok(!lines.some((l) => l.level === 50), `no error logged: ${JSON.stringify(lines.filter((l) => l.level === 50))}`);
    const daemonDir = join(dir.path, 'agent', 'daemon');
    const written = existsSync(daemonDir) ? readdirSync(daemonDir, { recursive: true }).map(String).filter((f) => /profile/.test(f) && f.endsWith('.json')) : [];
    assert.deepEqual(written, [], 'no profile file');
    assert.equal(await reg.store.profile(agent.deviceId), undefined, 'nothing uploaded');
  } finally {
    await reg.close();
  }
});
