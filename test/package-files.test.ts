/**
 * What `npm pack` puts in the tarball (package.json `files`) and whether the container images'
 * definitions fit it: every path a Dockerfile copies from its build context (the unpacked package) is in
 * the tarball, every module the built code imports is too, and nothing a device does not need is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { repoPath } from './helpers.js';

interface PackFile {
  path: string;
  size: number;
}
let packed: { files: PackFile[]; size: number; unpackedSize: number } | undefined;
function pack(): { files: PackFile[]; size: number; unpackedSize: number } {
  // --ignore-scripts: dist/ is already built by the test run (prepack would rebuild it under the tests' feet)
  packed ??= (JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoPath(), encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } })) as (typeof packed)[])[0]!;
  return packed!;
}
const paths = () => new Set(pack().files.map((f) => f.path));

/** A path of the build context (file or directory) that the tarball holds. */
function inTarball(p: string, all: Set<string>): boolean {
  const clean = p.replace(/^\.\//, '').replace(/\/+$/, '');
  return all.has(clean) || [...all].some((f) => f.startsWith(`${clean}/`));
}

test('the tarball holds the built code, bins, the bundled fmnist-ofa package, the OpenAPI file, README and licence', () => {
  const all = paths();
  for (const p of ['package.json', 'README.md', 'LICENSE', 'bin/nestswap.js', 'bin/nestswap-agent', 'dist/agent/cli.js', 'dist/agent/fleet.js', 'dist/registry/server.js', 'dist/lib/index.js', 'registry/openapi.yaml', 'models/fmnist-ofa/arch.json', 'deploy/agent.Dockerfile', 'deploy/registry.Dockerfile'])
    assert.ok(all.has(p), `${p} is in the tarball`);
  const manifest = JSON.parse(readFileSync(repoPath('models', 'fmnist-ofa', 'package', 'manifest.json'), 'utf8')) as { files: { path: string; bytes: number }[] };
  for (const f of [{ path: 'manifest.json' }, ...manifest.files]) assert.ok(all.has(`models/fmnist-ofa/package/${f.path}`), `bundled package file ${f.path}`);
  const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { bin: Record<string, string>; exports: Record<string, string> };
  for (const b of Object.values(pkg.bin)) assert.ok(all.has(posix.normalize(b)), `bin ${b}`);
  for (const e of Object.values(pkg.exports)) assert.ok(all.has(posix.normalize(e)), `export ${e}`);
});

test('the tarball holds nothing a device does not need: no tests, fixtures, benchmarks, sources, maps or training scratch', () => {
  const bad = [...paths()].filter((p) => /^(test|bench|dist\/test|dist\/bench)\//.test(p) || /\.(ts|map|py|sh)$/.test(p) && !p.endsWith('.d.ts') || /scratch|checkpoints|fixtures|results\//.test(p) || p.startsWith('docs/') || p === '.npmrc');
  assert.deepEqual(bad, []);
  // the bundled package (9.7 MB) and the demo's image sample (1.6 MB) are most of the unpacked size: much more
  // means something else got in
  assert.ok(pack().unpackedSize < 14e6, `unpacked ${pack().unpackedSize} bytes`);
  // docs/install.md states the tarball's size; within 10% (code grows a little with every change)
  const stated = /tarball is ([\d.]+) MB/.exec(readFileSync(repoPath('docs', 'install.md'), 'utf8'));
  assert.ok(stated, 'docs/install.md says "The tarball is N MB"');
  const mb = pack().size / 1e6;
  assert.ok(Math.abs(Number(stated[1]) - mb) / mb < 0.1, `docs/install.md says ${stated[1]} MB; the tarball is ${mb.toFixed(2)} MB`);
});

test('every relative import in the built code resolves inside the tarball', () => {
  const all = paths();
  const missing: string[] = [];
  for (const f of all) {
    if (!f.startsWith('dist/') || !f.endsWith('.js')) continue;
    const src = readFileSync(repoPath(f), 'utf8');
    for (const m of src.matchAll(/(?:from\s+|import\s*\(\s*|new URL\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = posix.normalize(posix.join(posix.dirname(f), m[1]!));
      if (!target.endsWith('/') && !all.has(target)) missing.push(`${f} -> ${m[1]}`);
    }
  }
  assert.deepEqual(missing, []);
});

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(file: string): Instruction[] {
  const text = readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  let stage = -1;
  const out: Instruction[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m || line.trim().startsWith('#')) continue;
    if (m[1] === 'FROM') stage++;
    out.push({ op: m[1]!, args: m[2]!.trim(), stage });
  }
  return out;
}

for (const [kind, port, health] of [['agent', '8787', '/healthz'], ['registry', '8700', '/healthz']] as const) {
  test(`deploy/${kind}.Dockerfile copies only what the tarball holds, is multi-stage on Node 20, runs as non-root with a data volume and a health check`, () => {
    const ins = instructions(repoPath('deploy', `${kind}.Dockerfile`));
    const all = paths();
    const froms = ins.filter((i) => i.op === 'FROM');
    assert.ok(froms.length >= 2, 'multi-stage');
    for (const f of froms) assert.match(f.args, /^node:20[-.\w]*( AS \w+)?$/, f.args);
    for (const c of ins.filter((i) => (i.op === 'COPY' || i.op === 'ADD') && !i.args.startsWith('--from'))) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) assert.ok(inTarball(src, all), `${kind}.Dockerfile copies '${src}', which the tarball does not hold`);
    }
    const last = Math.max(...ins.map((i) => i.stage));
    const final = ins.filter((i) => i.stage === last);
    const user = final.filter((i) => i.op === 'USER').pop();
    assert.ok(user && !/^(root|0)(:|$)/.test(user.args), 'the final stage runs as a non-root user');
    assert.ok(final.some((i) => i.op === 'VOLUME'), 'data in a volume');
    const hc = final.find((i) => i.op === 'HEALTHCHECK');
    assert.ok(hc && hc.args.includes(`127.0.0.1:${port}${health}`), `health check on ${health}`);
    const entry = JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    const bin = entry.find((a) => a.startsWith('/opt/nestswap/'))!;
    assert.ok(all.has(bin.replace('/opt/nestswap/', '')), `entrypoint ${bin} is in the package`);
    assert.ok(entry.includes(port), `listens on ${port}`);
  });
}
