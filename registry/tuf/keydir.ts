/**
 * The operator's key directory: `nestswap keys init` (new keys, the first root and an empty first
 * targets) and `nestswap keys rotate` (the next root, signed by the old root keys and the new ones).
 */
import { Metadata, Root, Targets, type Key } from '@tufjs/models';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NestswapError } from '../../runtime/errors.js';
import { tufDate, TUF_SPEC_VERSION } from '../../runtime/tuf-layout.js';
import { generateKey, parseRoot, readKeyDir, ROLES, signerOf, type KeyFile, type RoleName, type SigningKey } from './keys.js';

export interface RoleSetup {
  keys: number;
  threshold: number;
}

export interface InitOptions {
  /** keys and threshold per role (default 1 of 1) */
  roles?: Partial<Record<RoleName, RoleSetup>>;
  rootExpiresDays?: number;
  targetsExpiresDays?: number;
  now?: number;
}

export interface KeyDirResult {
  dir: string;
  rootVersion: number;
  rootFile: string;
  keyFiles: string[];
}

type RootJson = Parameters<typeof Root.fromJSON>[0];

/** A root from its keys and roles (built as JSON: @tufjs/models does not export Role). */
function buildRoot(version: number, expires: string, roles: Map<RoleName, { keys: Key[]; threshold: number }>): Root {
  const keys: Record<string, unknown> = {};
  const roleJson: Record<string, unknown> = {};
  for (const [role, r] of roles) {
    for (const k of r.keys) keys[k.keyID] = k.toJSON();
    roleJson[role] = { keyids: r.keys.map((k) => k.keyID), threshold: r.threshold };
  }
  return Root.fromJSON({ _type: 'root', spec_version: TUF_SPEC_VERSION, version, expires, consistent_snapshot: true, keys, roles: roleJson } as unknown as RootJson);
}

const keyFileName = (role: RoleName, i: number) => (i === 0 ? `${role}.key.json` : `${role}-${i + 1}.key.json`);

function writeFileAtomic(path: string, data: string, mode?: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, mode === undefined ? undefined : { mode });
  if (mode !== undefined) chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function writeRoot(dir: string, md: Metadata<Root>): string {
  const json = `${JSON.stringify(md.toJSON(), null, 1)}\n`;
  const file = join(dir, `${md.signed.version}.root.json`);
  writeFileAtomic(file, json);
  writeFileAtomic(join(dir, 'root.json'), json);
  return file;
}

function checkSetup(role: RoleName, s: RoleSetup): void {
  if (!Number.isInteger(s.keys) || !Number.isInteger(s.threshold) || s.threshold < 1 || s.keys < s.threshold || s.keys > 16)
    throw new NestswapError('ERR_USAGE', `The ${role} role needs 1 <= threshold <= keys <= 16 (got ${s.threshold} of ${s.keys}).`);
}

export function initKeyDir(dir: string, o: InitOptions = {}): KeyDirResult {
  if (existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.key.json') || f.endsWith('.root.json')))
    throw new NestswapError('ERR_USAGE', `${dir} already holds keys; use 'nestswap keys rotate --keys ${dir}' to change them.`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = o.now ?? Date.now();
  const files = new Map<RoleName, KeyFile[]>();
  const roles = new Map<RoleName, { keys: Key[]; threshold: number }>();
  const keyFiles: string[] = [];
  for (const role of ROLES) {
    const setup = o.roles?.[role] ?? { keys: 1, threshold: 1 };
    checkSetup(role, setup);
    const ks = Array.from({ length: setup.keys }, () => generateKey(role));
    files.set(role, ks);
    ks.forEach((k, i) => {
      const f = join(dir, keyFileName(role, i));
      writeFileAtomic(f, `${JSON.stringify(k, null, 1)}\n`, 0o600);
      keyFiles.push(f);
    });
    roles.set(role, { keys: ks.map((k) => signerOf(k).key), threshold: setup.threshold });
  }
  const md = new Metadata(buildRoot(1, tufDate(now + (o.rootExpiresDays ?? 365) * 86_400_000), roles));
  for (const k of files.get('root')!) md.sign((d) => signerOf(k).sign(d));
  const rootFile = writeRoot(dir, md);
  const targets = new Metadata(new Targets({ version: 1, specVersion: TUF_SPEC_VERSION, expires: tufDate(now + (o.targetsExpiresDays ?? 365) * 86_400_000) }));
  for (const k of files.get('targets')!) targets.sign((d) => signerOf(k).sign(d));
  writeFileAtomic(join(dir, '1.targets.json'), `${JSON.stringify(targets.toJSON(), null, 1)}\n`);
  return { dir, rootVersion: 1, rootFile, keyFiles };
}

export interface RotateOptions {
  /** roles that get new keys (the old ones are moved to `retired/`) */
  replace?: RoleName[];
  /** new thresholds (and key counts) for replaced roles */
  roles?: Partial<Record<RoleName, RoleSetup>>;
  rootExpiresDays?: number;
  now?: number;
}

/**
 * The next root: same keys except for `replace`d roles, signed by the old root keys (the old
 * threshold) and, when the root keys change, the new ones too. The root keys must be in `dir`.
 */
export function rotateRoot(dir: string, o: RotateOptions = {}): KeyDirResult {
  const current = parseRoot(readFileSync(join(dir, 'root.json')), join(dir, 'root.json'));
  const held = readKeyDir(dir, ['root']).get('root') ?? [];
  const oldRole = current.signed.roles.root!;
  const oldSigners = held.filter((k) => oldRole.keyIDs.includes(k.key.keyID));
  if (oldSigners.length < oldRole.threshold) throw new NestswapError('ERR_TUF_KEY', `Rotating needs ${oldRole.threshold} of the current root keys in ${dir}; found ${oldSigners.length}.`);
  const now = o.now ?? Date.now();
  const roles = new Map<RoleName, { keys: Key[]; threshold: number }>();
  const keyFiles: string[] = [];
  let newRootSigners: SigningKey[] = oldSigners;
  const retired = join(dir, 'retired');
  for (const role of ROLES) {
    const old = current.signed.roles[role]!;
    if (o.replace?.includes(role)) {
      const setup = o.roles?.[role] ?? { keys: old.keyIDs.length, threshold: old.threshold };
      checkSetup(role, setup);
      mkdirSync(retired, { recursive: true, mode: 0o700 });
      for (const f of readdirSync(dir)) if (new RegExp(`^${role}(-\\d+)?\\.key\\.json$`).test(f)) renameSync(join(dir, f), join(retired, `v${current.signed.version}-${f}`));
      const ks = Array.from({ length: setup.keys }, () => generateKey(role));
      ks.forEach((k, i) => {
        const f = join(dir, keyFileName(role, i));
        writeFileAtomic(f, `${JSON.stringify(k, null, 1)}\n`, 0o600);
        keyFiles.push(f);
      });
      roles.set(role, { keys: ks.map((k) => signerOf(k).key), threshold: setup.threshold });
      if (role === 'root') newRootSigners = ks.map(signerOf);
    } else {
      roles.set(role, { keys: old.keyIDs.map((id) => current.signed.keys[id]!), threshold: old.threshold });
    }
  }
  const next = buildRoot(current.signed.version + 1, tufDate(now + (o.rootExpiresDays ?? 365) * 86_400_000), roles);
  const md = new Metadata(next);
  const signers = new Map([...oldSigners, ...newRootSigners].map((k) => [k.key.keyID, k]));
  for (const k of signers.values()) md.sign((d) => k.sign(d));
  const rootFile = writeRoot(dir, md);
  return { dir, rootVersion: next.version, rootFile, keyFiles };
}
