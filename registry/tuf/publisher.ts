/**
 * Signing targets where a package is published (`nestswap publish DIR --sign-targets KEYFILE`):
 * the publisher fetches the registry's current targets, checks that its own keys signed them (so a
 * registry cannot slip extra targets in to be signed), adds the package's files with hashes
 * computed here, signs the next version and uploads it. Another publisher first: fetch and retry.
 */
import { Metadata, MetadataKind, TargetFile, Targets, type Snapshot, type Timestamp } from '@tufjs/models';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NestswapError } from '../../runtime/errors.js';
import { parseManifest } from '../../runtime/package.js';
import { nextSeq, packageTargetEntries, packagesIn, targetPath, tufDate, TUF_SPEC_VERSION, type TargetJson } from '../../runtime/tuf-layout.js';
import { RegistryApiError, type AdminClient } from '../admin-client.js';
import { readKeyFile, type SigningKey } from './keys.js';

export interface SignTargetsResult {
  targetsVersion: number;
  seq: number;
  /** false when the registry's targets already named this exact package */
  signed: boolean;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

type Json = Parameters<typeof Metadata.fromJSON>[1];

async function currentTargets(client: AdminClient): Promise<Metadata<Targets>> {
  const ts = Metadata.fromJSON(MetadataKind.Timestamp, JSON.parse(await client.tufMetadata('timestamp.json')) as Json) as unknown as Metadata<Timestamp>;
  const snap = Metadata.fromJSON(MetadataKind.Snapshot, JSON.parse(await client.tufMetadata(`${ts.signed.snapshotMeta.version}.snapshot.json`)) as Json) as unknown as Metadata<Snapshot>;
  const meta = snap.signed.meta['targets.json'];
  if (!meta) throw new NestswapError('ERR_METADATA_INVALID', "The registry's snapshot names no targets.json.");
  return Metadata.fromJSON(MetadataKind.Targets, JSON.parse(await client.tufMetadata(`${meta.version}.targets.json`)) as Json);
}

function checkOwnSignatures(md: Metadata<Targets>, keys: SigningKey[]): void {
  for (const k of keys) {
    try {
      if (!md.signatures[k.key.keyID]) throw new Error('no signature');
      k.key.verifySignature(md);
    } catch {
      throw new NestswapError('ERR_METADATA_SIGNATURE', `The registry's targets (version ${md.signed.version}) are not signed by key ${k.key.keyID.slice(0, 12)}: refusing to sign on top of them.`);
    }
  }
}

export async function signPackageTargets(client: AdminClient, dir: string, keyFiles: string[], o: { expiresDays?: number; attempts?: number } = {}): Promise<SignTargetsResult> {
  const keys = keyFiles.map(readKeyFile);
  for (const k of keys) if (k.role !== 'targets') throw new NestswapError('ERR_TUF_KEY', `--sign-targets needs targets keys; ${k.key.keyID.slice(0, 12)} is a ${k.role} key.`);
  const manifestBytes = await readFile(join(dir, 'manifest.json'));
  const manifest = parseManifest(JSON.parse(manifestBytes.toString('utf8')), dir);
  // hashes computed here, from the publisher's own files
  const files = await Promise.all(manifest.files.map(async (f) => {
    const b = await readFile(join(dir, f.path));
    return { path: f.path, bytes: b.length, sha256: sha256(b) };
  }));
  const mf = { path: 'manifest.json', bytes: manifestBytes.length, sha256: sha256(manifestBytes) };
  for (let attempt = 0; ; attempt++) {
    const cur = await currentTargets(client);
    checkOwnSignatures(cur, keys);
    const entries = Object.fromEntries(Object.entries(cur.signed.targets).map(([p, t]) => [p, t.toJSON() as unknown as TargetJson]));
    const existing = entries[targetPath(manifest.name, manifest.version, 'manifest.json')];
    if (existing?.hashes.sha256 === mf.sha256) {
      const seq = packagesIn(entries, manifest.name).find((p) => p.version === manifest.version)?.seq ?? 0;
      return { targetsVersion: cur.signed.version, seq, signed: false };
    }
    if (existing) throw new NestswapError('ERR_USAGE', `${manifest.name}@${manifest.version} is signed already with other content; publish a new version.`);
    const seq = nextSeq(entries, manifest.name);
    const all = { ...entries, ...packageTargetEntries(manifest.name, manifest.version, seq, mf, files) };
    const next = new Metadata(new Targets({
      version: cur.signed.version + 1,
      specVersion: TUF_SPEC_VERSION,
      expires: tufDate(Date.now() + (o.expiresDays ?? 365) * 86_400_000),
      targets: Object.fromEntries(Object.entries(all).map(([p, t]) => [p, TargetFile.fromJSON(p, t as unknown as Json)])),
    }));
    for (const k of keys) next.sign((d) => k.sign(d));
    try {
      const r = await client.putTufMetadata('targets', JSON.stringify(next.toJSON()));
      return { targetsVersion: r.version, seq, signed: true };
    } catch (err) {
      if (!(err instanceof RegistryApiError && err.code === 'ERR_TUF_VERSION') || attempt + 1 >= (o.attempts ?? 5)) throw err;
    }
  }
}
