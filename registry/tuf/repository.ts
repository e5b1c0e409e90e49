/**
 * The registry's TUF repository (@tufjs/models): root (imported from the operator's key directory,
 * signed offline), targets (signed by the publisher, or here with --online-targets), snapshot and
 * timestamp (signed here with the online keys). Consistent snapshots: every version of every role
 * stays available as `<N>.<role>.json`; `timestamp.json` is the newest timestamp. The timestamp is
 * re-signed well before it expires (`refresh`, on a timer).
 */
import { MetaFile, Metadata, MetadataKind, Root, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { NestswapError } from '../../runtime/errors.js';
import { nextSeq, packageTargetEntries, tufDate, TUF_SPEC_VERSION, type PackageFileInfo, type TargetJson } from '../../runtime/tuf-layout.js';
import { ApiError } from '../errors.js';
import { parseRoot, signedBytes, verifyNextRoot, verifyRole, type AnySigned, type RoleName, type SigningKey } from './keys.js';
import type { RegistryStore } from '../store.js';
import type { TufRole, TufStore } from './store.js';

export interface TufLifetimes {
  /** seconds; the timestamp is re-signed when less than half of it is left */
  timestampS: number;
  snapshotS: number;
  /** for targets this registry signs (--online-targets) */
  targetsS: number;
}

export const DEFAULT_LIFETIMES: TufLifetimes = Object.freeze({ timestampS: 86_400, snapshotS: 7 * 86_400, targetsS: 365 * 86_400 });

export interface TufRepositoryOptions {
  store: TufStore;
  /** the operator's key directory: `<N>.root.json` (and `1.targets.json`) are imported from it */
  keyDir: string;
  /** online keys: snapshot + timestamp, and targets with onlineTargets */
  keys: Map<RoleName, SigningKey[]>;
  onlineTargets: boolean;
  lifetimes?: Partial<TufLifetimes>;
  logger: Logger;
  now?: () => number;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const serialize = (md: Metadata<AnySigned>) => JSON.stringify(md.toJSON());

function parseAs<K extends MetadataKind.Targets | MetadataKind.Snapshot | MetadataKind.Timestamp>(kind: K, json: string, what: string) {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new ApiError(400, 'ERR_TUF_INVALID', `${what} is not JSON.`);
  }
  try {
    return Metadata.fromJSON(kind as MetadataKind.Targets, value as Parameters<typeof Metadata.fromJSON>[1]) as unknown as Metadata<K extends MetadataKind.Targets ? Targets : K extends MetadataKind.Snapshot ? Snapshot : Timestamp>;
  } catch (err) {
    throw new ApiError(400, 'ERR_TUF_INVALID', `${what} is not TUF ${kind} metadata: ${(err as Error).message}`);
  }
}

export class TufRepository {
  private readonly lifetimes: TufLifetimes;
  private readonly now: () => number;
  private readonly log: Logger;
  /** serializes every change (publish, upload, re-sign) */
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly opts: TufRepositoryOptions) {
    this.lifetimes = { ...DEFAULT_LIFETIMES, ...opts.lifetimes };
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
  }

  /** Imports the key directory's roots (each verified by its predecessor), checks the online keys, signs what is missing. */
  static async open(opts: TufRepositoryOptions): Promise<TufRepository> {
    const repo = new TufRepository(opts);
    await repo.importRoots();
    const root = await repo.root();
    const need: RoleName[] = ['snapshot', 'timestamp', ...(opts.onlineTargets ? (['targets'] as const) : [])];
    for (const role of need) repo.signers(root, role);
    if (!(await opts.store.latest('targets'))) {
      const first = join(opts.keyDir, '1.targets.json');
      try {
        if (existsSync(first)) await repo.acceptTargets(readFileSync(first, 'utf8'), { checkFiles: () => true });
        else if (opts.onlineTargets) await repo.signTargets(new Targets({ version: 1, specVersion: TUF_SPEC_VERSION, expires: tufDate(repo.now() + repo.lifetimes.targetsS * 1000) }));
        else throw new NestswapError('ERR_TUF_KEY', `${opts.keyDir} has no 1.targets.json (made by 'nestswap keys init') and the targets key is offline.`);
      } catch (err) {
        // replicas starting together on one database: another stored the first targets meanwhile
        if (!(await opts.store.latest('targets'))) throw err;
        await repo.refresh();
      }
    } else await repo.refresh();
    return repo;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async importRoots(): Promise<void> {
    const { store, keyDir } = this.opts;
    let latest = await store.latest('root');
    if (!latest) {
      const f = join(keyDir, '1.root.json');
      if (!existsSync(f)) throw new NestswapError('ERR_TUF_KEY', `${keyDir} has no 1.root.json: make the keys with 'nestswap keys init --out ${keyDir}'.`);
      const json = readFileSync(f, 'utf8');
      const md = parseRoot(json, f);
      if (md.signed.version !== 1) throw new NestswapError('ERR_TRUST_ROOT_INVALID', `${f} has version ${md.signed.version}.`);
      verifyRole(md, 'root', md, f);
      await store.put('root', 1, JSON.stringify(md.toJSON()));
      latest = { version: 1, json };
    }
    for (let v = latest.version + 1; existsSync(join(keyDir, `${v}.root.json`)); v++) await this.acceptRoot(readFileSync(join(keyDir, `${v}.root.json`), 'utf8'));
  }

  async root(): Promise<Metadata<Root>> {
    const r = await this.opts.store.latest('root');
    if (!r) throw new NestswapError('ERR_TUF_KEY', 'The TUF store has no root.');
    return parseRoot(r.json, 'stored root');
  }

  /** The signing keys this registry holds for `role`, enough for the root's threshold. */
  private signers(root: Metadata<Root>, role: RoleName): SigningKey[] {
    const r = root.signed.roles[role]!;
    const held = (this.opts.keys.get(role) ?? []).filter((k) => r.keyIDs.includes(k.key.keyID));
    if (held.length < r.threshold)
      throw new NestswapError('ERR_TUF_KEY', `The root (version ${root.signed.version}) needs ${r.threshold} ${role} key(s) of ${r.keyIDs.map((k) => k.slice(0, 8)).join(', ')}; this registry holds ${held.length} of them.`);
    return held;
  }

  private sign<T extends AnySigned>(root: Metadata<Root>, role: RoleName, signed: T): Metadata<T> {
    const md = new Metadata<T>(signed);
    for (const k of this.signers(root, role)) md.sign((data) => k.sign(data));
    return md;
  }

  /** Raw bytes for a metadata file name of the standard layout, or undefined. */
  async file(name: string): Promise<string | undefined> {
    if (name === 'timestamp.json') return (await this.opts.store.latest('timestamp'))?.json;
    const m = /^([1-9]\d{0,15})\.(root|targets|snapshot)\.json$/.exec(name);
    if (!m) return undefined;
    return this.opts.store.get(m[2] as TufRole, Number(m[1]));
  }

  async targets(): Promise<Metadata<Targets>> {
    const t = await this.opts.store.latest('targets');
    if (!t) throw new NestswapError('ERR_TUF_KEY', 'The TUF store has no targets.');
    return parseAs(MetadataKind.Targets, t.json, 'stored targets');
  }

  /** New snapshot (over the newest targets) and timestamp (over it). */
  private async snapshotAndTimestamp(root: Metadata<Root>): Promise<void> {
    const { store } = this.opts;
    const t = (await store.latest('targets'))!;
    const snapVersion = ((await store.latest('snapshot'))?.version ?? 0) + 1;
    const snap = this.sign(root, 'snapshot', new Snapshot({
      version: snapVersion,
      specVersion: TUF_SPEC_VERSION,
      expires: tufDate(this.now() + this.lifetimes.snapshotS * 1000),
      meta: { 'targets.json': new MetaFile({ version: t.version, length: Buffer.byteLength(t.json), hashes: { sha256: sha256(t.json) } }) },
    }));
    const snapJson = serialize(snap);
    if (!(await store.put('snapshot', snapVersion, snapJson))) throw new ApiError(409, 'ERR_TUF_VERSION', `Snapshot version ${snapVersion} exists already.`);
    await this.timestamp(root, snapVersion, snapJson);
  }

  private async timestamp(root: Metadata<Root>, snapVersion: number, snapJson: string): Promise<void> {
    const { store } = this.opts;
    const version = ((await store.latest('timestamp'))?.version ?? 0) + 1;
    const ts = this.sign(root, 'timestamp', new Timestamp({
      version,
      specVersion: TUF_SPEC_VERSION,
      expires: tufDate(this.now() + this.lifetimes.timestampS * 1000),
      snapshotMeta: new MetaFile({ version: snapVersion, length: Buffer.byteLength(snapJson), hashes: { sha256: sha256(snapJson) } }),
    }));
    if (!(await store.put('timestamp', version, serialize(ts)))) throw new ApiError(409, 'ERR_TUF_VERSION', `Timestamp version ${version} exists already.`);
  }

  private async signTargets(targets: Targets): Promise<number> {
    const root = await this.root();
    const md = this.sign(root, 'targets', targets);
    if (!(await this.opts.store.put('targets', targets.version, serialize(md)))) throw new ApiError(409, 'ERR_TUF_VERSION', `Targets version ${targets.version} exists already.`);
    await this.snapshotAndTimestamp(root);
    return targets.version;
  }

  /**
   * Publisher-signed targets (PUT /v1/tuf/targets): the next version, signed by the threshold of
   * the root's targets keys, unexpired, and naming only files this registry holds with that length and hash.
   */
  acceptTargets(json: string, opts: { checkFiles: (path: string, t: TargetJson) => boolean | Promise<boolean> }): Promise<number> {
    return this.serial(async () => {
      const md = parseAs(MetadataKind.Targets, json, 'targets metadata');
      const root = await this.root();
      try {
        verifyRole(root, 'targets', md, 'targets metadata');
      } catch (err) {
        throw new ApiError(400, 'ERR_TUF_SIGNATURE', (err as Error).message);
      }
      const current = (await this.opts.store.latest('targets'))?.version ?? 0;
      if (md.signed.version !== current + 1) throw new ApiError(409, 'ERR_TUF_VERSION', `Targets version ${md.signed.version} given; the next is ${current + 1} (fetch the current targets and sign again).`);
      if (md.signed.isExpired(new Date(this.now()))) throw new ApiError(400, 'ERR_TUF_INVALID', `The targets metadata expired at ${md.signed.expires}.`);
      for (const [path, t] of Object.entries(md.signed.targets)) {
        const info = t.toJSON() as unknown as TargetJson;
        if (!(await opts.checkFiles(path, info))) throw new ApiError(400, 'ERR_TUF_INVALID', `Target '${path}' (${info.length} bytes, sha256 ${String(info.hashes.sha256)}) is not a file this registry holds.`);
      }
      if (!(await this.opts.store.put('targets', md.signed.version, serialize(md)))) throw new ApiError(409, 'ERR_TUF_VERSION', `Targets version ${md.signed.version} was stored concurrently.`);
      await this.snapshotAndTimestamp(root);
      this.log.info({ version: md.signed.version, targets: Object.keys(md.signed.targets).length }, 'TUF targets accepted');
      return md.signed.version;
    });
  }

  /** --online-targets: adds a published package's targets and signs them here. */
  addPackage(name: string, version: string, manifest: PackageFileInfo, files: readonly PackageFileInfo[]): Promise<number> {
    return this.serial(async () => {
      const cur = await this.targets();
      const entries = Object.fromEntries(Object.entries(cur.signed.targets).map(([p, t]) => [p, t.toJSON() as unknown as TargetJson]));
      if (entries[`${name}/${version}/manifest.json`]?.hashes.sha256 === manifest.sha256) return cur.signed.version;
      const added = packageTargetEntries(name, version, nextSeq(entries, name), manifest, files);
      const next = new Targets({
        version: cur.signed.version + 1,
        specVersion: TUF_SPEC_VERSION,
        expires: tufDate(this.now() + this.lifetimes.targetsS * 1000),
        targets: Object.fromEntries(Object.entries({ ...entries, ...added }).map(([p, t]) => [p, TargetFile.fromJSON(p, t as unknown as Parameters<typeof TargetFile.fromJSON>[1])])),
      });
      const v = await this.signTargets(next);
      this.log.info({ supernet: name, version, targets: v }, 'TUF targets signed (online targets key)');
      return v;
    });
  }

  /** --online-targets: the targets of a version the store holds (after a publish). */
  async addPublished(store: RegistryStore, name: string, version: string): Promise<number> {
    const files = await store.files(name, version);
    const manifest = files.find((f) => f.path === 'manifest.json');
    if (!manifest) throw new NestswapError('ERR_PACKAGE_MANIFEST', `${name}@${version} has no manifest.json row.`);
    return this.addPackage(name, version, manifest, files.filter((f) => f !== manifest));
  }

  /** A new root (PUT /v1/tuf/root or the key directory): signed by the old root threshold and its own. */
  acceptRoot(json: string): Promise<number> {
    return this.serial(async () => {
      const next = parseRoot(json, 'new root');
      const trusted = await this.root();
      try {
        verifyNextRoot(trusted, next, `root version ${next.signed.version}`);
      } catch (err) {
        const code = (err as NestswapError).code;
        throw new ApiError(code === 'ERR_METADATA_ROLLBACK' ? 409 : 400, code === 'ERR_METADATA_ROLLBACK' ? 'ERR_TUF_VERSION' : 'ERR_TUF_SIGNATURE', (err as Error).message);
      }
      await this.opts.store.put('root', next.signed.version, JSON.stringify(next.toJSON()));
      this.log.info({ version: next.signed.version }, 'TUF root rotated');
      // New online keys may be needed now: say so rather than serve metadata the new root rejects.
      try {
        if (await this.opts.store.latest('targets')) await this.snapshotAndTimestamp(next);
      } catch (err) {
        this.log.error({ code: (err as NestswapError).code, err: (err as Error).message }, 'cannot sign with the new root: restart the registry with the new online keys');
      }
      return next.signed.version;
    });
  }

  private verifies(root: Metadata<Root>, role: 'snapshot' | 'timestamp', json: string): boolean {
    try {
      verifyRole(root, role, parseAs(role === 'snapshot' ? MetadataKind.Snapshot : MetadataKind.Timestamp, json, role), role);
      return true;
    } catch {
      return false;
    }
  }

  /** Re-signs what expires within half its lifetime (timestamp; snapshot; targets when online). Returns what it re-signed. */
  refresh(): Promise<string[]> {
    return this.serial(async () => {
      const { store } = this.opts;
      const root = await this.root();
      const done: string[] = [];
      const soon = (json: string, lifetimeS: number) => Date.parse((JSON.parse(json) as { signed: { expires: string } }).signed.expires) - this.now() < (lifetimeS * 1000) / 2;
      const targets = await store.latest('targets');
      if (!targets) return done;
      if (soon(targets.json, this.lifetimes.targetsS)) {
        if (this.opts.onlineTargets) {
          const cur = parseAs(MetadataKind.Targets, targets.json, 'stored targets').signed;
          await this.signTargets(new Targets({ version: cur.version + 1, specVersion: TUF_SPEC_VERSION, expires: tufDate(this.now() + this.lifetimes.targetsS * 1000), targets: cur.targets }));
          return ['targets', 'snapshot', 'timestamp'];
        }
        this.log.warn({ expires: JSON.parse(targets.json).signed.expires }, 'TUF targets expire soon: publish (with --sign-targets) to re-sign them');
      }
      const snap = await store.latest('snapshot');
      // after a root rotation the newest snapshot/timestamp may be signed by keys the root no longer names
      const stale = (json: string | undefined, role: 'snapshot' | 'timestamp') => json === undefined || !this.verifies(root, role, json);
      if (!snap || stale(snap.json, 'snapshot') || soon(snap.json, this.lifetimes.snapshotS) || JSON.parse(snap.json).signed.meta['targets.json'].version !== targets.version) {
        await this.snapshotAndTimestamp(root);
        return ['snapshot', 'timestamp'];
      }
      const ts = await store.latest('timestamp');
      if (!ts || stale(ts.json, 'timestamp') || soon(ts.json, this.lifetimes.timestampS)) {
        await this.timestamp(root, snap.version, snap.json);
        done.push('timestamp');
      }
      return done;
    });
  }
}

export { signedBytes };
