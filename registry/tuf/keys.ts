/**
 * ed25519 keys for TUF (node:crypto): key ids per the TUF spec (sha256 of the canonical JSON of the
 * public key), key files, signers, and the key directory `nestswap keys init` writes:
 *
 *   root.key.json  targets.key.json  snapshot.key.json  timestamp.key.json   (mode 0600; `-2`, `-3`... for more keys of a role)
 *   1.root.json  2.root.json ...  root.json (= the newest)                    (public: give root.json to agents)
 */
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Metadata, MetadataKind, Root, Signature, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NestswapError } from '../../runtime/errors.js';

export type AnySigned = Root | Targets | Snapshot | Timestamp;

export const ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type RoleName = (typeof ROLES)[number];

export interface KeyFile {
  role: RoleName;
  keytype: 'ed25519';
  scheme: 'ed25519';
  keyid: string;
  keyval: { public: string };
  /** PKCS#8 PEM */
  private: string;
}

export interface SigningKey {
  role: RoleName;
  key: Key;
  sign(data: Buffer): Signature;
}

/** The TUF public key object and its key id (sha256 over canonical JSON). */
export function publicKey(publicHex: string): Key {
  const body = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: publicHex } };
  const keyID = createHash('sha256').update(canonicalize(body)).digest('hex');
  return new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: publicHex } });
}

function rawPublicHex(pub: KeyObject): string {
  const jwk = pub.export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url').toString('hex');
}

export function generateKey(role: RoleName): KeyFile {
  const { publicKey: pub, privateKey } = generateKeyPairSync('ed25519');
  const hex = rawPublicHex(pub);
  return { role, keytype: 'ed25519', scheme: 'ed25519', keyid: publicKey(hex).keyID, keyval: { public: hex }, private: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

export function signerOf(file: KeyFile): SigningKey {
  let priv: KeyObject;
  try {
    priv = createPrivateKey(file.private);
  } catch (err) {
    throw new NestswapError('ERR_TUF_KEY', `The ${file.role} key ${file.keyid.slice(0, 12)} has no readable private key.`, { cause: err });
  }
  const key = publicKey(file.keyval.public);
  if (key.keyID !== file.keyid || rawPublicHex(createPublicKey(priv)) !== file.keyval.public)
    throw new NestswapError('ERR_TUF_KEY', `The ${file.role} key file's key id or public key does not match its private key.`);
  return { role: file.role, key, sign: (data) => new Signature({ keyID: key.keyID, sig: sign(null, data, priv).toString('hex') }) };
}

export function readKeyFile(path: string): SigningKey {
  let v: Partial<KeyFile>;
  try {
    v = JSON.parse(readFileSync(path, 'utf8')) as Partial<KeyFile>;
  } catch (err) {
    throw new NestswapError('ERR_TUF_KEY', `Cannot read the key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (v.keytype !== 'ed25519' || v.scheme !== 'ed25519' || !ROLES.includes(v.role as RoleName) || typeof v.keyid !== 'string' || typeof v.keyval?.public !== 'string' || typeof v.private !== 'string')
    throw new NestswapError('ERR_TUF_KEY', `${path} is not a nestswap ed25519 key file (role, keyid, keyval.public, private).`);
  return signerOf(v as KeyFile);
}

/** Every `<role>[-n].key.json` in `dir`, by role. */
export function readKeyDir(dir: string, roles: readonly RoleName[]): Map<RoleName, SigningKey[]> {
  if (!existsSync(dir)) throw new NestswapError('ERR_TUF_KEY', `The key directory ${dir} does not exist (make one with 'nestswap keys init --out ${dir}').`);
  const out = new Map<RoleName, SigningKey[]>();
  for (const f of readdirSync(dir).sort()) {
    const m = /^([a-z]+)(?:-\d+)?\.key\.json$/.exec(f);
    if (!m || !roles.includes(m[1] as RoleName)) continue;
    const k = readKeyFile(join(dir, f));
    out.set(k.role, [...(out.get(k.role) ?? []), k]);
  }
  return out;
}

/** Parses root metadata bytes (no signature check: see verifyRootChain). */
export function parseRoot(bytes: Buffer | string, what: string): Metadata<Root> {
  try {
    const md = Metadata.fromJSON(MetadataKind.Root, JSON.parse(bytes.toString()) as Parameters<typeof Metadata.fromJSON>[1]);
    return md;
  } catch (err) {
    throw new NestswapError('ERR_TRUST_ROOT_INVALID', `${what} is not TUF root metadata: ${(err as Error).message}`, { cause: err });
  }
}

/** Throws ERR_METADATA_SIGNATURE unless `md` carries the threshold of valid signatures of the keys `root` gives `role`. */
export function verifyRole(root: Metadata<Root>, role: string, md: Metadata<AnySigned>, what: string): void {
  try {
    root.verifyDelegate(role, md);
  } catch (err) {
    throw new NestswapError('ERR_METADATA_SIGNATURE', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** A new root (version n+1) is trusted when the old root's threshold and its own threshold both sign it. */
export function verifyNextRoot(trusted: Metadata<Root>, next: Metadata<Root>, what: string): void {
  if (next.signed.version !== trusted.signed.version + 1)
    throw new NestswapError('ERR_METADATA_ROLLBACK', `${what} has version ${next.signed.version}; the next root version is ${trusted.signed.version + 1}.`);
  verifyRole(trusted, 'root', next, `${what} (old root's keys)`);
  verifyRole(next, 'root', next, `${what} (its own root keys)`);
}

/** The canonical bytes TUF signs (what tuf-js and python-tuf verify). */
export function signedBytes(md: Metadata<AnySigned>): Buffer {
  return Buffer.from(canonicalize(md.signed.toJSON() as Parameters<typeof canonicalize>[0]));
}
