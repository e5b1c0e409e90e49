/**
 * Fleet end to end with real processes: a registry (`nestswap registry`), two agents
 * (`nestswap agent --registry ...`), the admin CLI, a registry crash and restart, agent restarts
 * from cache, and an agent killed mid-download.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { cachedVersionDirs, repoPath, tempDir } from './helpers.js';
import { midBudgetMs } from './registry-fixtures.js';
import { registryProcess, type RegistryProcess } from './registry-process.js';
import { cli, sleep, start, stop, until, type Proc } from './processes.js';
import { parseProfile } from '../runtime/profile.js';

const ADMIN = 'fleet-admin-token-0123456789';
const ENROLL = 'fleet-enroll-token-0123456789';
describe('fleet end to end', { timeout: 600_000 }, () => {
  const dir = tempDir('nestswap-fleet-');
  let reg: RegistryProcess;
  let url: string;
  let registry: Proc | undefined;
  const agents: Record<string, Proc | undefined> = {};
  const admin = () => reg.admin();
  const startRegistry = async () => {
    registry = await reg.start();
  };
  const startAgent = (name: string, supernet = 'tiny') => (agents[name] = start(reg.agentArgs(name, join(dir.path, name), supernet)));
  const serving = (p: Proc) => until(`agent serving`, () => p.lines.find((l) => l.msg === 'fleet agent serving') as { device: string; url: string; downloaded: boolean } | undefined, 120_000);

  before(async () => {
    reg = await registryProcess(dir.path, { admin: ADMIN, enroll: ENROLL });
    url = reg.url;
    registry = reg.current;
  });
  after(async () => {
    if (process.env.NESTSWAP_TEST_LOGS) writeFileSync(process.env.NESTSWAP_TEST_LOGS, [registry, ...Object.values(agents)].map((p) => p?.out ?? '').join('\n=====\n'));
    for (const p of Object.values(agents)) await stop(p, 'SIGKILL');
    await stop(registry, 'SIGKILL');
    dir[Symbol.dispose]();
  });

  let a1: { device: string; url: string };
  let a2: { device: string; url: string };

  test('two agents enroll, download, profile, upload; query and a remote switch are acknowledged', async () => {
    startAgent('a1');
    startAgent('a2');
    [a1, a2] = await Promise.all([serving(agents.a1!), serving(agents.a2!)]);
    assert.notEqual(a1.device, a2.device);
    for (const d of [a1, a2]) await until('profile + online', async () => {
      const info = await admin().device(d.device);
      return info.online && info.profile !== null ? info : undefined;
    }, 120_000);
    const list = cli(['devices', '--registry', url, '--token', ADMIN, '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).map((d: { id: string }) => d.id).sort(), [a1.device, a2.device].sort());
    // best model for a1 under a budget that excludes the largest subnets
    const profile = parseProfile(await (await fetch(`${url}/v1/devices/${a1.device}/profile`, { headers: { authorization: `Bearer ${ADMIN}` } })).json());
    const budget = await midBudgetMs(profile);
    const q = cli(['query', '--registry', url, '--token', ADMIN, '--supernet', 'tiny', '--device', a1.device, '--latency-ms', String(budget), '--json']);
    assert.equal(q.code, 0, q.stderr);
    const best = JSON.parse(q.stdout) as { subnet: unknown; subnetId: string; predicted: { latencyMs: number } };
    assert.ok(best.predicted.latencyMs <= budget);
    const sw = cli(['switch', '--registry', url, '--token', ADMIN, '--device', a1.device, '--subnet', JSON.stringify(best.subnet), '--json']);
    assert.equal(sw.code, 0, sw.stdout + sw.stderr);
    assert.equal(JSON.parse(sw.stdout).status, 'acked');
    const status = (await (await fetch(`${a1.url}/v1/status`)).json()) as { subnet: { id: string }; pinned: boolean };
    assert.equal(status.subnet.id, best.subnetId);
    assert.equal(status.pinned, true);
    // the registry learns the new subnet from the swap telemetry
    await until('registry sees the swap', async () => ((await admin().device(a1.device)).subnetId === best.subnetId ? true : undefined), 20_000);
    // a budget command goes through the same path
    const bud = cli(['switch', '--registry', url, '--token', ADMIN, '--device', a2.device, '--latency-ms', '40', '--json']);
    assert.equal(bud.code, 0, bud.stdout + bud.stderr);
  });

  test('registry killed: agents keep serving; restarted: they reconnect and queued telemetry arrives, nothing lost', async () => {
    const before = await admin().device(a1.device);
    await stop(registry, 'SIGKILL');
    // serving continues
    const infer = await fetch(`${a1.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: new Array(144).fill(0.5) }) });
    assert.equal(infer.status, 200);
    // an agent restarted while the registry is away serves from its cache
    await stop(agents.a2, 'SIGTERM');
    startAgent('a2');
    const again = await serving(agents.a2!);
    assert.equal(again.device, a2.device);
    assert.equal(again.downloaded, false);
    assert.ok(agents.a2!.lines.some((l) => l.msg === 'registry unreachable: serving the cached package'));
    await sleep(3000); // latency windows queue up on disk meanwhile
    const queued = JSON.parse(`[${readFileSync(join(dir.path, 'a1', 'fleet', 'telemetry.jsonl'), 'utf8').trim().split('\n').join(',')}]`) as { seq: number }[];
    assert.ok(queued.length > 0, 'telemetry queued while the registry is down');
    const lastQueued = Math.max(...queued.map((e) => e.seq));
    assert.ok(lastQueued > before.telemetrySeq);
    await startRegistry();
    for (const d of [a1, a2]) {
      const info = await until('reconnect + drain', async () => {
        const i = await admin().device(d.device);
        return i.online && i.telemetrySeq >= (d === a1 ? lastQueued : 1) ? i : undefined;
      }, 90_000);
      // no gaps, no duplicates: every seq from 1 to the highest is stored exactly once
      const t = await admin().telemetry(d.device, 1);
      assert.equal(t.count, t.telemetrySeq, `device ${d.device}: ${t.count} events stored for seq 1..${t.telemetrySeq}`);
      assert.ok(info.telemetrySeq > 0);
    }
  });

  test('an agent killed mid-download resumes or restarts cleanly and never runs a corrupt package', async () => {
    const big = repoPath('models', 'ofa-mbv3-w1.0', 'package');
    if (!existsSync(join(big, 'manifest.json'))) return;
    const pub = cli(['publish', big, '--registry', url, '--token', ADMIN]);
    assert.equal(pub.code, 0, pub.stderr);
    const staging = join(dir.path, 'a3', 'fleet', 'packages', '.staging');
    startAgent('a3', 'ofa-mbv3-w1.0');
    const part = await until('a partial download', () => {
      if (!existsSync(staging)) return undefined;
      for (const s of readdirSync(staging)) for (const f of readdirSync(join(staging, s))) if (f.endsWith('.part')) return join(staging, s, f);
      return undefined;
    }, 60_000, 5);
    agents.a3!.child.kill('SIGKILL');
    await agents.a3!.exited;
    // the half-written file must never be trusted: damage it, as a crash mid-write could
    if (existsSync(part)) {
      const b = readFileSync(part);
      if (b.length > 10) {
        b[5] = b[5]! ^ 0xff;
        writeFileSync(part, b);
      }
    }
    assert.equal(cachedVersionDirs(join(dir.path, 'a3', 'fleet', 'packages', 'ofa-mbv3-w1.0')).length > 0, false, 'no package dir before completion');
    startAgent('a3', 'ofa-mbv3-w1.0');
    const p = await until('package complete', () => agents.a3!.lines.find((l) => l.msg === 'package downloaded'), 120_000);
    assert.ok(p);
    await stop(agents.a3, 'SIGKILL');
    const pkgRoot = join(dir.path, 'a3', 'fleet', 'packages', 'ofa-mbv3-w1.0');
    const versions = cachedVersionDirs(pkgRoot);
    assert.equal(versions.length, 1);
    const pkg = await loadPackageDir(join(pkgRoot, versions[0]!)); // verifies every digest
    assert.equal(pkg.name, 'ofa-mbv3-w1.0');
  });
});
