/**
 * Every command of the real CLI (bin/nestswap.js, spawned) given bad input: one line on stderr ending
 * in a stable code, the documented exit status, no stack trace, nothing on stdout. Real servers on
 * 127.0.0.1 stand in for a registry that refuses connections, does not answer, speaks no TLS, or
 * refuses the token.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type Socket, type Server as NetServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { startRegistry } from '../registry/server.js';
import { tempDir, TINY } from './helpers.js';
import { runCli, type Ran } from './processes.js';

const nestswap = runCli;

const listen = <S extends Server | NetServer>(s: S) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)));

const dir = tempDir('nestswap-cli-errors-');
const sockets = new Set<Socket>();
const silent = createNetServer((s) => sockets.add(s)); // accepts and never answers
const plain = createHttpServer((_q, r) => r.end('{}')); // plain HTTP where https:// is asked for
let silentPort = 0;
let plainPort = 0;
let closedPort = 0;
let registry: Awaited<ReturnType<typeof startRegistry>>;

before(async () => {
  silentPort = await listen(silent);
  plainPort = await listen(plain);
  const c = createNetServer();
  closedPort = await listen(c);
  await new Promise((r) => c.close(r));
  registry = await startRegistry({ port: 0, dataDir: join(dir.path, 'registry'), adminToken: 'admin-right-0123456789', enrollToken: 'enroll-right-0123456789', logger: pino({ level: 'silent' }) });
  writeFileSync(join(dir.path, 'bad-profile.json'), '{"format":"nestswap.profile/1"}');
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
  await new Promise((r) => plain.close(r));
  await registry.close();
  dir[Symbol.dispose]();
});

/** One line, the code at its end, the status, no stack frames, nothing on stdout. */
function assertOneLine(r: Ran, code: string, status: number, what: string): string {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: expected one line on stderr, got:\n${r.stderr}`);
  const line = lines[0]!;
  assert.ok(line.startsWith('nestswap: '), `${what}: ${line}`);
  assert.ok(line.endsWith(` [${code}]`), `${what}: expected [${code}], got: ${line}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: a stack trace`);
  assert.equal(r.status, status, `${what}: exit status (stderr: ${line})`);
  assert.equal(r.stdout, '', `${what}: stdout`);
  return line;
}

const BAD_CONFIG = '{"ks":[9],"e":[3],"d":[2],"image_size":1}';

test('every command refuses bad input in one line with its code and exit status', async () => {
  const cases: [string[], string, number][] = [
    [[], 'ERR_USAGE', 2],
    [['frobnicate'], 'ERR_USAGE', 2],
    [['demo', '--supernet', join(dir.path, 'nope')], 'ERR_PACKAGE_MISSING', 1],
    [['demo', '--bogus'], 'ERR_USAGE', 2],
    [['space'], 'ERR_USAGE', 2],
    [['space', '--supernet', TINY, '--sample', 'many'], 'ERR_USAGE', 2],
    [['materialize', '--supernet', TINY, '--subnet', '{"ks":', '--out', join(dir.path, 'm.onnx')], 'ERR_CONFIG_INVALID', 1],
    [['materialize', '--supernet', TINY, '--subnet', BAD_CONFIG, '--out', join(dir.path, 'm.onnx')], 'ERR_CONFIG_INVALID', 1],
    [['predict', '--supernet', TINY, '--subnet', 'not-a-file.json'], 'ERR_USAGE', 2],
    [['device', '--bogus'], 'ERR_USAGE', 2],
    [['profile', '--supernet', TINY, '--threads', '-1'], 'ERR_USAGE', 2],
    [['profile', '--supernet', join(dir.path, 'nope')], 'ERR_PACKAGE_MISSING', 1],
    [['search', '--supernet', TINY, '--latency-ms', '1'], 'ERR_USAGE', 2],
    [['search', '--supernet', TINY, '--profile', join(dir.path, 'bad-profile.json'), '--latency-ms', '1'], 'ERR_PROFILE_INVALID', 1],
    [['search', '--space', 'no-such-family', '--accuracy-predictor', 'p.onnx', '--latency-table', '.', '--latency-ms', '1'], 'ERR_FAMILY_UNKNOWN', 1],
    [['agent', '--supernet', TINY], 'ERR_USAGE', 2],
    [['agent', '--registry', `http://127.0.0.1:${closedPort}`, '--supernet', 'tiny'], 'ERR_USAGE', 2],
    [['registry', '--port', '70000'], 'ERR_USAGE', 2],
    [['registry', '--port', String(registry.port), '--data', join(dir.path, 'second'), '--admin-token', 'a'.repeat(20), '--enroll-token', 'e'.repeat(20)], 'ERR_IO', 1],
    [['publish', TINY, '--token', 't'], 'ERR_USAGE', 2],
    [['devices', '--registry', 'localhost:8700', '--token', 't'], 'ERR_USAGE', 2],
    [['query', '--registry', registry.url, '--token', 't', '--supernet', 'x', '--device', 'd'], 'ERR_USAGE', 2],
    [['switch', '--registry', registry.url, '--token', 't', '--device', 'd', '--latency-ms', '1', '--timeout-ms', 'soon'], 'ERR_USAGE', 2],
    [['init-model'], 'ERR_USAGE', 2],
    [['init-model', 'no-such-family'], 'ERR_FAMILY_UNKNOWN', 1],
  ];
  for (const [args, code, status] of cases) assertOneLine(await nestswap(args), code, status, `nestswap ${args.join(' ')}`);
});

test('an unreachable registry is ERR_REGISTRY_UNREACHABLE naming the URL and the cause, exit 4', async () => {
  const refused = `http://127.0.0.1:${closedPort}`;
  const line = assertOneLine(await nestswap(['devices', '--registry', refused, '--token', 't']), 'ERR_REGISTRY_UNREACHABLE', 4, 'refused');
  assert.ok(line.includes(refused), line);
  assert.match(line, /connection refused \(ECONNREFUSED\)/);

  const dns = assertOneLine(await nestswap(['query', '--registry', 'http://no-such-host.invalid:8700', '--token', 't', '--supernet', 'x', '--device', 'd', '--latency-ms', '1']), 'ERR_REGISTRY_UNREACHABLE', 4, 'dns');
  assert.match(dns, /no-such-host\.invalid/);
  assert.match(dns, /DNS lookup failed .*\((ENOTFOUND|EAI_AGAIN)\)/);

  const tls = assertOneLine(await nestswap(['publish', TINY, '--registry', `https://127.0.0.1:${plainPort}`, '--token', 't']), 'ERR_REGISTRY_UNREACHABLE', 4, 'tls');
  assert.match(tls, /TLS failure/);

  const t0 = Date.now();
  const slow = assertOneLine(await nestswap(['switch', '--registry', `http://127.0.0.1:${silentPort}`, '--token', 't', '--device', 'd', '--unpin', '--wait-ms', '0', '--timeout-ms', '300']), 'ERR_REGISTRY_UNREACHABLE', 4, 'timeout');
  assert.match(slow, /no answer within 300 ms \(timeout/);
  assert.ok(Date.now() - t0 < 20_000, 'the deadline ended it');
  const env = assertOneLine(await nestswap(['devices', '--registry', `http://127.0.0.1:${silentPort}`, '--token', 't'], { NESTSWAP_REGISTRY_TIMEOUT_MS: '200' }), 'ERR_REGISTRY_UNREACHABLE', 4, 'timeout from the environment');
  assert.match(env, /no answer within 200 ms/);
});

test('a refused token is ERR_AUTH_INVALID, also for a publish (whose upload the registry refuses unread)', async () => {
  for (let i = 0; i < 3; i++) assertOneLine(await nestswap(['publish', TINY, '--registry', registry.url, '--token', 'wrong']), 'ERR_AUTH_INVALID', 1, `publish ${i}`);
  assertOneLine(await nestswap(['devices', '--registry', registry.url, '--token', 'wrong']), 'ERR_AUTH_INVALID', 1, 'devices');
  const ok = await nestswap(['devices', '--registry', registry.url, '--token', 'admin-right-0123456789', '--json']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout), []);
});

test('--verbose or NESTSWAP_DEBUG=1 adds the stack, and still ends with the one line', async () => {
  for (const [args, env] of [
    [['--verbose', 'space', '--supernet', join(dir.path, 'nope')], {}],
    [['space', '--supernet', join(dir.path, 'nope')], { NESTSWAP_DEBUG: '1' }],
  ] as [string[], Record<string, string>][]) {
    const r = await nestswap(args, env);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^\s+at /m, 'a stack');
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[lines.length - 1]!, /^nestswap: No supernet package .* \[ERR_PACKAGE_MISSING\]$/);
  }
});
