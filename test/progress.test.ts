/**
 * Progress of long work: drawn on stderr only when it is a terminal and not --json. A terminal is
 * injected (the helper's `tty` option; NESTSWAP_PROGRESS=tty for spawned commands), never required.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { progress } from '../runtime/node/progress.js';
import { startRegistry } from '../registry/server.js';
import { tempDir, TINY } from './helpers.js';
import { runCli } from './processes.js';
import { fixture, predictorPath } from './search-fixtures.js';

function sink(isTTY: boolean) {
  const out: string[] = [];
  return { isTTY, out, write: (s: string) => out.push(s) };
}

test('the helper draws one redrawn line on a terminal, nothing elsewhere or with --json', () => {
  const tty = sink(true);
  const p = progress('calibrating BN', { stream: tty, minIntervalMs: 0, env: {} });
  assert.equal(p.active, true);
  for (const done of [64, 128, 192, 256]) p.update(done, 256);
  p.end();
  assert.equal(tty.out.length, 5);
  assert.ok(tty.out.slice(0, 4).every((s) => s.startsWith('\r\x1b[2K') && !s.includes('\n')), 'redrawn in place');
  assert.match(tty.out[0]!, /calibrating BN\s+\[#{6}\.{18}\]\s+25%\s+64\/256/);
  assert.match(tty.out[3]!, /\[#{24}\] 100%\s+256\/256/);
  assert.equal(tty.out[4], '\r\x1b[2K', 'cleared at the end');

  for (const [stream, opts] of [
    [sink(false), { env: {} }],
    [sink(true), { json: true, env: {} }],
    [sink(true), { env: { NESTSWAP_PROGRESS: 'off' } }],
    [sink(true), { tty: false }],
  ] as const) {
    const q = progress('x', { ...opts, stream, minIntervalMs: 0 });
    q.update(1, 2);
    q.end();
    assert.equal(q.active, false);
    assert.deepEqual(stream.out, []);
  }
  const injected = sink(false);
  progress('x', { stream: injected, env: { NESTSWAP_PROGRESS: 'tty' } }).update(1, 2);
  assert.equal(injected.out.length, 1, 'NESTSWAP_PROGRESS=tty draws on a pipe');
});

test('redraws are throttled, the last state is always drawn, bytes are shown as MB, a label change redraws', () => {
  const tty = sink(true);
  const p = progress('uploading', { stream: tty, tty: true, unit: 'bytes', minIntervalMs: 60_000 });
  for (let i = 1; i <= 100; i++) p.update(i * 1e5, 1e7);
  assert.equal(tty.out.length, 2, 'first and last');
  assert.match(tty.out[1]!, /100%\s+10\.0 MB\/10\.0 MB/);
  p.update(5, 0, 'counting');
  assert.match(tty.out[2]!, /counting\s+0\.00 MB$/);
});

const nestswap = runCli;

const dir = tempDir('nestswap-progress-');
let registry: Awaited<ReturnType<typeof startRegistry>>;
before(async () => {
  registry = await startRegistry({ port: 0, dataDir: join(dir.path, 'registry'), adminToken: 'admin-token-0123456789', enrollToken: 'enroll-token-0123456789', logger: pino({ level: 'silent' }) });
});
after(async () => {
  await registry.close();
  dir[Symbol.dispose]();
});

const SUBNET = '{"ks":[3,3,3,3,3,3,3,3],"e":[3,3,3,3,3,3,3,3],"d":[2,2],"image_size":10}';

test('commands draw progress on an injected terminal, and none on a pipe or with --json', async (t) => {
  const runs: [string, string[], RegExp][] = [
    ['materialize (BN calibration)', ['materialize', '--supernet', TINY, '--subnet', SUBNET, '--out', join(dir.path, 'm.onnx')], /calibrating BN\s+\[[#.]+\]\s+\d+%/],
    ['search --pareto', ['search', '--space', 'ofa-mbv3-w1.0', '--width-mult', '1.2', '--accuracy-predictor', predictorPath, '--latency-table', fixture('note10'), '--latency-ms', '30', '--pareto', '--generations', '3'], /searching \(Pareto\)\s+\[#+\] 100%\s+3\/3/],
    ['publish (upload)', ['publish', TINY, '--registry', '', '--token', 'admin-token-0123456789'], /uploading\s+\[#+\] 100%\s+[\d.]+ MB\/[\d.]+ MB/],
  ];
  for (const [what, args0, drawn] of runs) {
    await t.test(what, async () => {
      const args = args0.map((a) => (a === '' ? registry.url : a));
      const shown = await nestswap(args, { NESTSWAP_PROGRESS: 'tty' });
      assert.equal(shown.status, 0, shown.stderr);
      assert.match(shown.stderr, drawn);
      assert.ok(shown.stderr.endsWith('\r\x1b[2K'), 'the line is cleared before the result');
      assert.doesNotMatch(shown.stdout, /\r/, 'stdout stays clean');
      const piped = await nestswap(args, {});
      assert.equal(piped.status, 0, piped.stderr);
      assert.equal(piped.stderr, '', 'nothing extra on a pipe');
      const json = await nestswap([...args, '--json'], { NESTSWAP_PROGRESS: 'tty' });
      assert.equal(json.status, 0, json.stderr);
      assert.equal(json.stderr, '', 'nothing extra with --json');
      JSON.parse(json.stdout);
    });
  }
});
