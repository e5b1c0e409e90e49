/**
 * How nestswap packages appear as TUF targets (shared by the registry, the publisher and the agent):
 * every file of package `name@version` is the target `<name>/<version>/<path>`, the manifest is
 * `<name>/<version>/manifest.json`, and the manifest's target carries a signed custom field
 * `{ "nestswap": { "supernet", "version", "seq" } }` where `seq` counts the versions of that
 * supernet in publish order (the agent installs the highest signed `seq`, never a lower one).
 * URLs: metadata under `/v1/tuf/metadata/`, targets under `/v1/tuf/targets/` with the sha256
 * prefixed to the file name (consistent snapshots): `<name>/<version>/<sha256>.<file>`.
 */
export const TUF_METADATA_PATH = '/v1/tuf/metadata';
export const TUF_TARGETS_PATH = '/v1/tuf/targets';
export const TUF_SPEC_VERSION = '1.0.31';

export interface TargetJson {
  length: number;
  hashes: Record<string, string>;
  custom?: Record<string, unknown>;
}

export interface PackageTarget {
  supernet: string;
  version: string;
  seq: number;
  manifestPath: string;
  manifest: TargetJson;
}

export const targetPath = (name: string, version: string, file: string): string => `${name}/${version}/${file}`;

/** `<dir>/<sha256>.<base>` for a target path (TUF's hash-prefixed file name). */
export function hashedTargetPath(path: string, sha256: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? `${sha256}.${path}` : `${path.slice(0, i + 1)}${sha256}.${path.slice(i + 1)}`;
}

/** TUF's date format: seconds, no fraction (python-tuf and go-tuf parse exactly this). */
export function tufDate(ms: number): string {
  return new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function customOf(t: TargetJson): { supernet: string; version: string; seq: number } | undefined {
  const c = t.custom?.nestswap as { supernet?: unknown; version?: unknown; seq?: unknown } | undefined;
  if (!c || typeof c.supernet !== 'string' || typeof c.version !== 'string' || typeof c.seq !== 'number' || !Number.isSafeInteger(c.seq)) return undefined;
  return { supernet: c.supernet, version: c.version, seq: c.seq };
}

/** The packages a (verified) targets map names, by supernet, ordered by seq. */
export function packagesIn(targets: Record<string, TargetJson>, supernet?: string): PackageTarget[] {
  const out: PackageTarget[] = [];
  for (const [path, t] of Object.entries(targets)) {
    const c = customOf(t);
    if (!c || (supernet !== undefined && c.supernet !== supernet)) continue;
    // a manifest target must sit where its custom field says it does
    if (path !== targetPath(c.supernet, c.version, 'manifest.json')) continue;
    out.push({ ...c, manifestPath: path, manifest: t });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

export interface PackageFileInfo {
  path: string;
  bytes: number;
  sha256: string;
}

/** The targets one package adds: every file plus the manifest (with its custom field). */
export function packageTargetEntries(supernet: string, version: string, seq: number, manifest: PackageFileInfo, files: readonly PackageFileInfo[]): Record<string, TargetJson> {
  const out: Record<string, TargetJson> = {};
  for (const f of files) out[targetPath(supernet, version, f.path)] = { length: f.bytes, hashes: { sha256: f.sha256 } };
  out[targetPath(supernet, version, 'manifest.json')] = { length: manifest.bytes, hashes: { sha256: manifest.sha256 }, custom: { nestswap: { supernet, version, seq } } };
  return out;
}

/** The next seq for `supernet` given the current targets. */
export function nextSeq(targets: Record<string, TargetJson>, supernet: string): number {
  return Math.max(0, ...packagesIn(targets, supernet).map((p) => p.seq)) + 1;
}
