/**
 * Adds files (accuracy predictor, accuracy table, ...) to a package and rewrites its manifest with
 * their sizes and digests. The manifest is replaced atomically.
 *
 *   node dist/models/add-files.js <package-dir> <file>:<role> [...] [--accuracy <json>]
 */
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

export function addFiles(dir: string, files: { path: string; role: string }[], extra: Record<string, unknown> = {}): void {
  const manifestPath = join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files: { path: string; role: string; bytes: number; sha256: string }[] } & Record<string, unknown>;
  for (const f of files) {
    const name = basename(f.path);
    if (f.path !== join(dir, name)) copyFileSync(f.path, join(dir, name));
    const bytes = readFileSync(join(dir, name));
    const entry = { path: name, role: f.role, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    manifest.files = manifest.files.filter((x) => x.path !== name && x.role !== f.role);
    manifest.files.push(entry);
  }
  Object.assign(manifest, extra);
  writeFileSync(`${manifestPath}.tmp`, JSON.stringify(manifest, null, 1));
  renameSync(`${manifestPath}.tmp`, manifestPath);
}

/** The predictor's held-out scores (predictor-onnx's output) without where that run wrote its model. */
function predictorEval(path: string): Record<string, unknown> {
  const { out: _local, ...scores } = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  return scores;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { accuracy: { type: 'string' } } });
  const [dir, ...specs] = positionals;
  if (!dir) throw new Error('usage: add-files <package-dir> <file>:<role> ...');
  addFiles(
    dir,
    specs.map((s) => {
      const i = s.lastIndexOf(':');
      return { path: s.slice(0, i), role: s.slice(i + 1) };
    }),
    values.accuracy ? { accuracy: predictorEval(values.accuracy) } : {},
  );
}
