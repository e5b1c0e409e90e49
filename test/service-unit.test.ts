/** `--print-systemd-unit`: the units systemd would run for the agent and the registry. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemdUnit } from '../runtime/node/service-unit.js';
import { isNestswapError } from '../runtime/errors.js';
import { repoPath, tempDir } from './helpers.js';

const CLI = repoPath('bin', 'nestswap.js');
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** key=value settings of one section (comments dropped; repeated keys kept in order). */
function section(unit: string, name: string): [string, string][] {
  const body = unit.split(/^\[/m).find((s) => s.startsWith(`${name}]`)) ?? '';
  return body
    .split('\n')
    .slice(1)
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]);
}
const get = (kv: [string, string][], k: string) => kv.filter(([key]) => key === k).map(([, v]) => v);

/** systemd-analyze verify: exit 0 and no complaint about a line of this file. */
function verify(text: string, name: string, t: { skip(msg: string): void }): void {
  if (!ANALYZE) return t.skip('systemd-analyze not installed (Debian package systemd)');
  using dir = tempDir();
  const file = join(dir.path, name);
  writeFileSync(file, text);
  const r = spawnSync(ANALYZE, ['verify', file], { encoding: 'utf8' });
  const complaints = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(file) || l.includes(name));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(complaints, []);
}

test('agent unit: nestswap-agent from this package, state directory as --data, restart, hardening, no root, no secrets', (t) => {
  const r = cli(['agent', '--registry', 'http://registry.local:8700', '--enroll-token', 'nse_secret_value', '--supernet', 'fmnist-ofa', '--latency-ms', '2', '--print-systemd-unit']);
  assert.equal(r.status, 0, r.stderr);
  const unit = r.stdout;
  assert.doesNotMatch(unit, /nse_secret_value|--enroll-token/);
  assert.match(r.stderr, /NESTSWAP_ENROLL_TOKEN=\.\.\. in \/etc\/nestswap\/agent\.env/);
  const s = section(unit, 'Service');
  const exec = get(s, 'ExecStart')[0]!.split(' ');
  assert.equal(exec[0], repoPath('bin', 'nestswap-agent'));
  accessSync(exec[0]!, constants.X_OK);
  assert.deepEqual(exec.slice(1), ['--registry', 'http://registry.local:8700', '--supernet', 'fmnist-ofa', '--latency-ms', '2', '--data', '/var/lib/nestswap-agent']);
  assert.deepEqual(get(s, 'DynamicUser'), ['yes']);
  assert.deepEqual(get(s, 'User'), []);
  assert.deepEqual(get(s, 'StateDirectory'), ['nestswap-agent']);
  assert.deepEqual(get(s, 'ReadWritePaths'), ['/var/lib/nestswap-agent']);
  assert.deepEqual(get(s, 'ProtectSystem'), ['strict']);
  assert.deepEqual(get(s, 'NoNewPrivileges'), ['yes']);
  assert.deepEqual(get(s, 'Restart'), ['on-failure']);
  assert.deepEqual(get(s, 'CapabilityBoundingSet'), ['']);
  assert.deepEqual(get(s, 'EnvironmentFile'), ['-/etc/nestswap/agent.env']);
  assert.ok(get(s, 'Environment').includes('MALLOC_ARENA_MAX=2'));
  assert.ok(get(s, 'Environment').includes(`NODE=${process.execPath}`));
  assert.deepEqual(get(s, 'PrivateDevices'), [], 'the agent keeps /dev for accelerators');
  assert.deepEqual(get(section(unit, 'Install'), 'WantedBy'), ['multi-user.target']);
  verify(unit, 'nestswap-agent.service', t);
});

test('registry unit: node + bin/nestswap.js registry, dedicated user, private devices; passes systemd-analyze verify', (t) => {
  const r = cli(['registry', '--host', '0.0.0.0', '--port', '8700', '--admin-token', 'nsa_secret_secret_1', '--print-systemd-unit', '--service-user', 'nestswap']);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /nsa_secret_secret_1/);
  const s = section(r.stdout, 'Service');
  assert.deepEqual(get(s, 'ExecStart')[0]!.split(' '), [process.execPath, repoPath('bin', 'nestswap.js'), 'registry', '--host', '0.0.0.0', '--port', '8700', '--data', '/var/lib/nestswap-registry']);
  assert.deepEqual(get(s, 'User'), ['nestswap']);
  assert.deepEqual(get(s, 'DynamicUser'), []);
  assert.deepEqual(get(s, 'StateDirectory'), ['nestswap-registry']);
  assert.deepEqual(get(s, 'PrivateDevices'), ['yes']);
  assert.deepEqual(get(s, 'ProtectSystem'), ['strict']);
  verify(r.stdout, 'nestswap-registry.service', t);
});

test('arguments systemd would expand or split are quoted and escaped', (t) => {
  const u = systemdUnit({ kind: 'agent', args: ['--supernet', '/opt/my models/fmnist', '--name', 'kiosk 100%', '--latency-ms', '$X'], root: repoPath() });
  const exec = get(section(u.text, 'Service'), 'ExecStart')[0]!;
  assert.ok(exec.includes('"/opt/my models/fmnist"'), exec);
  assert.ok(exec.includes('"kiosk 100%%"'), exec);
  assert.ok(exec.includes('$$X'), exec);
  verify(u.text, 'nestswap-agent.service', t);
});

test('a unit that would run as root or keep data outside its state directory is refused (ERR_USAGE)', () => {
  assert.throws(() => systemdUnit({ kind: 'agent', args: [], user: 'root', root: repoPath() }), (e: unknown) => isNestswapError(e, 'ERR_USAGE'));
  assert.throws(() => systemdUnit({ kind: 'agent', args: ['--data', '/home/me/x'], root: repoPath() }), (e: unknown) => isNestswapError(e, 'ERR_USAGE') && /StateDirectory/.test(e.message));
  const ok = systemdUnit({ kind: 'registry', args: ['--data=/var/lib/nestswap-registry/'], root: repoPath() });
  assert.match(ok.text, /registry --data \/var\/lib\/nestswap-registry\n/);
  const r = cli(['agent', '--supernet', 'fmnist-ofa', '--print-systemd-unit', '--service-user', 'Bad User']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^nestswap: .*\[ERR_USAGE\]\n$/);
});

test('systemd-analyze verify rejects a broken unit (the check above can fail)', (t) => {
  if (!ANALYZE) return t.skip('systemd-analyze not installed');
  const u = systemdUnit({ kind: 'agent', args: [], root: repoPath() }).text.replace(/^ExecStart=\//m, 'ExecStart=');
  assert.throws(() => verify(u, 'nestswap-agent.service', t));
});
