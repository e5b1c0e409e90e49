/**
 * The documentation stays honest: the README stays a front page, every relative link (and its #anchor)
 * resolves, every command and error code the code has is documented, and the plots are what
 * bench/plots.ts draws from the committed results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../registry/protocol.js';
import { renderPlots } from '../bench/plots.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');
const DOCS = readdirSync(join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => `docs/${f}`);
const PAGES = ['README.md', ...DOCS];

/** Markdown without fenced code blocks and inline code (links there are examples, not links). */
function prose(md: string): string {
  return md.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchors(md: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of md.replace(/^```[\s\S]*?^```/gm, '').split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

function links(md: string): string[] {
  return [...prose(md).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

test('README is a front page of at most 12 KB', () => {
  const bytes = statSync(join(ROOT, 'README.md')).size;
  assert.ok(bytes <= 12 * 1024, `README.md is ${bytes} bytes`);
  const readme = read('README.md');
  assert.match(readme, /npm ci && npm start/);
  assert.match(readme, /npm ci && npm test/);
  assert.match(read('.ci/run'), /npm ci && npm test/, '.ci/run runs the README test command');
});

test('every relative link in README and docs/ resolves, anchors included', () => {
  const broken: string[] = [];
  for (const page of PAGES) {
    for (const href of links(read(page))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // http:, https:, mailto:
      const [path, anchor] = href.split('#') as [string, string | undefined];
      const target = path === '' ? join(ROOT, page) : resolve(dirname(join(ROOT, page)), decodeURIComponent(path));
      if (!existsSync(target)) {
        broken.push(`${page}: ${href} (no ${relative(ROOT, target)})`);
        continue;
      }
      if (anchor !== undefined && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(anchor))
        broken.push(`${page}: ${href} (no heading #${anchor} in ${relative(ROOT, target)})`);
    }
  }
  assert.deepEqual(broken, []);
});

test('the anchor rule matches GitHub on the headings these pages use', () => {
  const a = anchors('# Command line\n### `nestswap materialize`\n## Device profile (`nestswap.profile/1`)\n## Hot swap\n## Hot swap\n```\n# not a heading\n```\n');
  assert.deepEqual([...a], ['command-line', 'nestswap-materialize', 'device-profile-nestswapprofile1', 'hot-swap', 'hot-swap-1']);
});

test('every docs page is linked from another page', () => {
  const linked = new Set<string>();
  for (const page of PAGES)
    for (const href of links(read(page))) {
      const path = href.split('#')[0]!;
      if (path && !/^[a-z]+:/i.test(path)) linked.add(relative(ROOT, resolve(dirname(join(ROOT, page)), path)));
    }
  assert.deepEqual(
    DOCS.filter((d) => !linked.has(d)),
    [],
  );
});

test('docs/cli.md has a section for every command of the CLI', () => {
  const cli = read('agent/cli.ts');
  const table = cli.slice(cli.indexOf('const COMMANDS'), cli.indexOf('});', cli.indexOf('const COMMANDS')));
  const names = [...table.matchAll(/^\s+'?([a-z-]+)'?: \{ summary:/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 14, `found ${names.length} commands in agent/cli.ts`);
  const sections = anchors(read('docs/cli.md'));
  assert.deepEqual(
    names.filter((n) => ![...sections].some((s) => s === `nestswap-${n}` || s.startsWith(`nestswap-${n}-`))),
    [],
  );
});

/** Every `'ERR_…'` literal in the source files under these directories. */
function codesIn(dirs: string[], skip: (rel: string) => boolean = () => false): Set<string> {
  const out = new Set<string>();
  const walk = (rel: string) => {
    for (const e of readdirSync(join(ROOT, rel), { withFileTypes: true })) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !skip(p)) for (const m of read(p).matchAll(/'(ERR_[A-Z_]+)'/g)) out.add(m[1]!);
    }
  };
  dirs.forEach(walk);
  return out;
}

/** All of docs/: a code may be explained on its feature's page (cli.md and http-api.md hold the core ones). */
const allDocs = () => DOCS.map(read).join('\n');

test('docs/http-api.md names every error code the agent answers with, and docs/ every registry code', () => {
  // the agent's HTTP answers: agent/server.ts (express routes) and agent/infer-http.ts (POST /v1/infer, the error mapping)
  const agentServer = ['agent/server.ts', 'agent/infer-http.ts'].flatMap((f) => [...read(f).matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]!));
  assert.ok(agentServer.length > 5, 'agent/server.ts and agent/infer-http.ts codes were found');
  const api = read('docs/http-api.md');
  assert.deepEqual(
    [...new Set(agentServer)].filter((c) => !api.includes(c)),
    [],
  );
  const docs = allDocs();
  assert.deepEqual(
    ERROR_CODES.filter((c) => !docs.includes(c)),
    [],
  );
});

test('docs/ names every runtime error code the code raises', () => {
  const declared = [...read('runtime/errors.ts').matchAll(/\| '(ERR_[A-Z_]+)'/g)].map((m) => m[1]!);
  assert.ok(declared.length >= 10, 'the ErrorCode union was found');
  const raised = codesIn(['agent', 'runtime', 'registry', 'models', 'lib'], (p) => p === 'runtime/errors.ts');
  const docs = allDocs();
  assert.deepEqual(
    declared.filter((c) => raised.has(c) && !docs.includes(c)),
    [],
  );
});

test('docs/img holds exactly what bench/plots.ts draws from the committed results (npm run plots)', () => {
  const plots = renderPlots(ROOT);
  assert.ok(plots.size >= 4);
  for (const [name, svg] of plots) {
    const path = join(ROOT, 'docs', 'img', name);
    assert.ok(existsSync(path), `docs/img/${name} is missing: run npm run plots`);
    assert.equal(readFileSync(path, 'utf8'), svg, `docs/img/${name} is stale: run npm run plots`);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  }
});
