/** The dependency arrows of docs/architecture.md: agent and registry import runtime; registry never imports agent; runtime imports neither. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { repoPath } from './helpers.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function importsInto(fromDir: string, forbidden: string[]): string[] {
  const bad: string[] = [];
  for (const file of sources(repoPath(fromDir))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      const spec = m[1]!;
      if (!spec.startsWith('.')) continue;
      const target = relative(repoPath(), join(file, '..', spec));
      if (forbidden.some((f) => target === f || target.startsWith(`${f}/`))) bad.push(`${relative(repoPath(), file)} -> ${spec}`);
    }
  }
  return bad;
}

test('registry/ does not import agent/', () => {
  assert.deepEqual(importsInto('registry', ['agent']), []);
});

test('runtime/ imports neither agent/ nor registry/', () => {
  assert.deepEqual(importsInto('runtime', ['agent', 'registry']), []);
});
