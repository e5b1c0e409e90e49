import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoPath, tempDir } from './helpers.js';

const LAUNCHER = repoPath('bin', 'nestswap-agent');

function launch(args: string[], env: Record<string, string> = {}) {
  return spawnSync(LAUNCHER, args, { encoding: 'utf8', env: { ...process.env, NODE: process.execPath, ...env } });
}

test('bin/nestswap-agent starts node with the memory settings and passes the agent its arguments', () => {
  using dir = tempDir();
  // a preload that reports how the process was started, then exits before the CLI runs
  const probe = join(dir.path, 'probe.cjs');
  writeFileSync(probe, 'process.stdout.write(JSON.stringify({ execArgv: process.execArgv, argv: process.argv.slice(2), mmap: process.env.MALLOC_MMAP_THRESHOLD_, arenas: process.env.MALLOC_ARENA_MAX })); process.exit(0);\n');
  const plain = launch(['--supernet', 'fmnist-ofa', '--latency-ms', '3'], { NESTSWAP_NODE_FLAGS: `--require=${probe}`, MALLOC_MMAP_THRESHOLD_: '', MALLOC_ARENA_MAX: '' });
  assert.equal(plain.status, 0, plain.stderr);
  const seen = JSON.parse(plain.stdout) as { execArgv: string[]; argv: string[]; mmap: string; arenas: string };
  assert.ok(seen.execArgv.includes('--max-semi-space-size=2'), seen.execArgv.join(' '));
  assert.deepEqual(seen.argv, ['agent', '--supernet', 'fmnist-ofa', '--latency-ms', '3']);
  assert.equal(seen.mmap, '131072');
  assert.equal(seen.arenas, '2');

  // settings the user made are kept
  const own = launch([], { NESTSWAP_NODE_FLAGS: `--require=${probe}`, MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_ARENA_MAX: '4' });
  assert.equal(own.status, 0, own.stderr);
  const kept = JSON.parse(own.stdout) as { mmap: string; arenas: string };
  assert.equal(kept.mmap, '65536');
  assert.equal(kept.arenas, '4');
});

test('bin/nestswap-agent runs the agent command: its usage errors come back with their code', () => {
  const help = launch(['--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /nestswap agent --supernet/);
  const bad = launch(['--latency-ms', '2']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /Missing required option --supernet\. \[ERR_USAGE\]/);
});
