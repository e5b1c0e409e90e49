/**
 * kill -9 at every step, with real processes. NESTSWAP_CRASH_AT=<point> makes a process SIGKILL
 * itself at a named point (runtime/crash.ts), so each kill lands exactly where it is meant to.
 * Agent: during a download, after it before verification, before the package is moved into place,
 * during BN calibration, during materialize, during a swap, while writing the profile, while
 * appending telemetry, while handling a pushed command. Registry: during publish, a telemetry batch,
 * a command, a command's acknowledgement. After each restart: a verified model serves, no
 * half-written file is used, no telemetry event is lost or stored twice, acknowledged pins and
 * budgets hold, nothing the registry acknowledged is lost.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadFleetState } from '../agent/fleet-state.js';
import { readProfileFile } from '../agent/profiler.js';
import { decodeStats } from '../runtime/calibrate.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { cachedVersionDirs, tempDir } from './helpers.js';
import { sleep, start, stop, until, type Proc } from './processes.js';
import { registryProcess, type RegistryProcess } from './registry-process.js';

const ADMIN = 'crash-admin-token-0123456789';
const ENROLL = 'crash-enroll-token-0123456789';
const TEMP = /(\.tmp-\d+(-\d+)?|\.part)$/;

/** Every file an agent or registry would read after a restart is whole: JSON parses, stats decode, packages verify. */
async function assertNoHalfFiles(root: string): Promise<void> {
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
  for (const f of walk(root)) {
    if (TEMP.test(f) || f.includes(`${'/'}.staging${'/'}`)) continue; // temp and staging files are never read as results
    if (f.endsWith('.json') && !f.includes('/packages/')) JSON.parse(readFileSync(f, 'utf8'));
    if (f.endsWith('.bnstats')) decodeStats(readFileSync(f));
    if (/\/profiles\/[^/]+\.json$/.test(f)) await readProfileFile(f);
  }
  const pkgs = join(root, 'fleet', 'packages', 'tiny');
  for (const pointer of ['current.json', 'served.json']) if (existsSync(join(pkgs, pointer))) JSON.parse(readFileSync(join(pkgs, pointer), 'utf8'));
  for (const v of cachedVersionDirs(pkgs)) await loadPackageDir(join(pkgs, v)); // verifies every digest
}

/** Inference requests until the process exits (latency windows, hence telemetry, need traffic). */
async function traffic(p: Proc, url: string): Promise<void> {
  const body = JSON.stringify({ input: new Array(144).fill(0.5) });
  void (async () => {
    while (p.child.exitCode === null && p.child.signalCode === null) {
      await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).catch(() => undefined);
      await sleep(20);
    }
  })();
}

function spool(dataDir: string): { seqs: number[]; torn: boolean } {
  const f = join(dataDir, 'fleet', 'telemetry.jsonl');
  if (!existsSync(f)) return { seqs: [], torn: false };
  const text = readFileSync(f, 'utf8');
  const lines = text.split('\n');
  const last = lines.pop()!;
  return { seqs: lines.filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq), torn: last.length > 0 };
}

describe('kill -9 at every step', { timeout: 900_000 }, () => {
  const dir = tempDir('nestswap-crash-');
  let reg: RegistryProcess;
  const agentData = join(dir.path, 'agent');
  let url: string;
  let registry: Proc | undefined;
  let agent: Proc | undefined;
  const all: Proc[] = [];
  const admin = () => reg.admin();
  let pkgDir: string;

  const startRegistry = async (crashAt = '') => {
    registry = await reg.start({ NESTSWAP_CRASH_AT: crashAt });
    all.push(registry);
  };
  const startAgent = (crashAt = '') => {
    agent = start(
      reg.agentArgs('c1', agentData),
      { NESTSWAP_CRASH_AT: crashAt },
    );
    all.push(agent);
    return agent;
  };
  const serving = (p: Proc) => until('agent serving', () => p.lines.find((l) => l.msg === 'fleet agent serving') as { device: string; url: string } | undefined, 120_000);
  /** Runs an agent armed at `point` and waits for it to kill itself there. */
  const crashAgentAt = async (point: string, during?: (p: Proc) => Promise<void>) => {
    const p = startAgent(point);
    if (during) await during(p);
    const how = await Promise.race([p.exited, sleep(120_000).then(() => 'still running')]);
    assert.equal(how, 'SIGKILL', `the agent should have died at ${point}:\n${p.out.slice(-2000)}`);
    await assertNoHalfFiles(agentData);
  };
  const finalDirs = () => cachedVersionDirs(join(agentData, 'fleet', 'packages', 'tiny'));

  before(async () => {
    reg = await registryProcess(dir.path, { admin: ADMIN, enroll: ENROLL });
    ({ url, pkgDir } = reg);
    registry = reg.current;
    all.push(registry!);
  });
  after(async () => {
    if (process.env.NESTSWAP_TEST_LOGS) (await import('node:fs')).writeFileSync(process.env.NESTSWAP_TEST_LOGS, all.map((p) => p.out).join('\n=====\n'));
    for (const p of all) await stop(p, 'SIGKILL');
    dir[Symbol.dispose]();
  });

  test('agent: killed during the download, after it (before verification), before the move into place: no package is used half-done', async () => {
    await crashAgentAt('download-chunk');
    assert.deepEqual(finalDirs(), []);
    await crashAgentAt('file-downloaded');
    assert.deepEqual(finalDirs(), []);
    await crashAgentAt('package-downloaded');
    assert.deepEqual(finalDirs(), [], 'a complete but unmoved download is still staging');
  });

  test('agent: killed during BN calibration, materialize and the first swap; then while writing its profile', async () => {
    await crashAgentAt('calibrate');
    assert.deepEqual(finalDirs(), ['1.0.0-q'], 'the verified package is in place');
    await crashAgentAt('materialize');
    await crashAgentAt('swap');
    await crashAgentAt('profile-write', async (p) => void (await serving(p)));
  });

  test('agent: killed mid-append to the telemetry spool; the torn record is cut off on restart and nothing is lost or doubled', async () => {
    await crashAgentAt('telemetry-append:3', async (p) => traffic(p, (await serving(p)).url));
    const s = spool(agentData);
    assert.equal(s.torn, true, 'the spool ends in a torn record');
    const a = startAgent();
    const up = await serving(a);
    assert.ok(a.lines.some((l) => l.msg === 'telemetry spool: cut off a torn last record'));
    // the restarted agent's first event takes the torn one's seq; it and everything spooled before arrive once
    const info = await until('telemetry drained', async () => {
      const t = await admin().telemetry(up.device, 1000);
      return t.telemetrySeq >= Math.max(0, ...s.seqs) + 1 ? t : undefined;
    }, 60_000);
    assert.equal(info.count, info.telemetrySeq, `${info.count} events stored for seq 1..${info.telemetrySeq}: none lost, none twice`);
    // every event the spool held when the agent died is at the registry, as written
    const spooled = readFileSync(join(agentData, 'fleet', 'telemetry.jsonl'), 'utf8');
    assert.ok(!spooled.includes('}{'), 'no event was appended onto the torn one');
    const r = await fetch(`${up.url}/v1/status`);
    assert.equal(r.status, 200);
    await stop(a, 'SIGKILL');
  });

  test('agent: killed while handling a pushed command, and killed after acknowledging: the pin and the budget hold', async () => {
    // killed after applying a budget command, before recording/acknowledging it
    let device = '';
    await crashAgentAt('command-applied', async (p) => {
      device = (await serving(p)).device;
      await until('online', async () => (await admin().device(device)).online, 30_000);
      await admin().command(device, { type: 'budget', budget: { latencyMs: 20 } });
    });
    // restarted: the registry re-sends the unacknowledged command, the agent (re)applies and acks it
    let a = startAgent();
    await serving(a);
    const cmds = await until('budget acked', async () => {
      const d = await admin().device(device);
      return d.budget && (d.budget as { latencyMs?: number }).latencyMs === 20 ? d : undefined;
    }, 60_000);
    assert.ok(cmds);
    // a switch (pin) acknowledged, then kill -9 from outside
    const up = a.lines.find((l) => l.msg === 'fleet agent serving') as { url: string };
    const status = (await (await fetch(`${up.url}/v1/status`)).json()) as { subnet: { config: { ks: number[]; e: number[]; d: number[]; image_size: number } } };
    const target = { ...status.subnet.config, d: status.subnet.config.d.map((x) => (x === 2 ? 3 : 2)) };
    const sw = await admin().command(device, { type: 'switch', subnet: target, waitMs: 30_000 });
    assert.equal(sw.status, 'acked', JSON.stringify(sw));
    const pinnedId = ((await (await fetch(`${up.url}/v1/status`)).json()) as { subnet: { id: string } }).subnet.id;
    assert.deepEqual(loadFleetState(join(agentData, 'fleet')).budget, { latencyMs: 20 });
    await stop(a, 'SIGKILL');
    a = startAgent();
    const again = await serving(a);
    const after = await until('pin restored', async () => {
      const s = (await (await fetch(`${again.url}/v1/status`)).json()) as { subnet: { id: string }; pinned: boolean; budget: { latencyMs?: number } };
      return s.pinned ? s : undefined;
    }, 30_000);
    assert.equal(after.subnet.id, pinnedId);
    assert.equal(after.budget.latencyMs, 20);
    const infer = await fetch(`${again.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: new Array(144).fill(0.5) }) });
    assert.equal(infer.status, 200);
    assert.equal(((await infer.json()) as { subnet: string }).subnet, pinnedId);
  });

  test('registry: killed during a telemetry batch, a command, its acknowledgement and a publish: restart loses nothing acknowledged', async () => {
    const device = (agent!.lines.find((l) => l.msg === 'fleet agent serving') as { device: string }).device;
    // telemetry batch stored, killed before the ack: the agent resends, the registry stores it once
    await stop(registry, 'SIGKILL');
    await startRegistry('registry-telemetry-stored');
    assert.equal(await Promise.race([registry!.exited, sleep(60_000).then(() => 'alive')]), 'SIGKILL');
    await startRegistry();
    const t = await until('telemetry resent', async () => {
      const x = await admin().telemetry(device, 1);
      const s = spool(agentData).seqs;
      return (await admin().device(device)).online && x.telemetrySeq >= Math.max(0, ...s) ? x : undefined;
    }, 60_000);
    assert.equal(t.count, t.telemetrySeq, 'none lost, none twice');
    // a command stored, killed before the answer: after restart it is delivered and acknowledged
    await stop(registry, 'SIGKILL');
    await startRegistry('registry-command-stored');
    await assert.rejects(admin().command(device, { type: 'unpin' }));
    assert.equal(await registry!.exited, 'SIGKILL');
    await startRegistry();
    await until('unpin delivered', async () => !((await (await fetch(`${(agent!.lines.find((l) => l.msg === 'fleet agent serving') as { url: string }).url}/v1/status`)).json()) as { pinned: boolean }).pinned, 60_000);
    // an acknowledgement stored, killed right after: the command stays acked
    await stop(registry, 'SIGKILL');
    await startRegistry('registry-command-acked');
    const cmd = admin().command(device, { type: 'budget', budget: { latencyMs: 30 } });
    const id = (await cmd).id;
    assert.equal(await registry!.exited, 'SIGKILL');
    await startRegistry();
    const done = await until('acked after restart', async () => {
      const c = await admin().commandStatus(id);
      return c.status === 'acked' ? c : undefined;
    }, 60_000);
    assert.equal(done.status, 'acked');
    // publish: killed with the blobs written but no version row; then killed after the row, before the answer
    const m = JSON.parse(readFileSync(join(pkgDir, 'manifest.json'), 'utf8')) as { version: string };
    const { writeFileSync } = await import('node:fs');
    m.version = '2.0.0';
    writeFileSync(join(pkgDir, 'manifest.json'), JSON.stringify(m));
    await stop(registry, 'SIGKILL');
    await startRegistry('registry-publish-blobs');
    await assert.rejects(admin().publishDir(pkgDir));
    assert.equal(await registry!.exited, 'SIGKILL');
    await startRegistry('registry-publish-stored');
    assert.equal((await admin().supernets()).supernets[0]!.versions.length, 1, 'an unacknowledged publish left no version');
    await assert.rejects(admin().publishDir(pkgDir));
    assert.equal(await registry!.exited, 'SIGKILL');
    await startRegistry();
    const again = await admin().publishDir(pkgDir); // the version committed before the crash is there, whole
    assert.equal(again.created, false);
    assert.equal((await admin().version('tiny', '2.0.0')).version, '2.0.0');
    // every stored blob is whole: its content hashes to its name (content-addressed, written by rename)
    const blobRoot = join(reg.dataDir, 'blobs');
    const blobs = readdirSync(blobRoot).flatMap((d) => readdirSync(join(blobRoot, d)));
    assert.ok(blobs.length > 0);
    for (const b of blobs) assert.equal(createHash('sha256').update(readFileSync(join(blobRoot, b.slice(0, 2), b))).digest('hex'), b, `blob ${b} is whole`);
  });
});
