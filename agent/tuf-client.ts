/**
 * The agent's TUF client: tuf-js refreshes root (rotations included), timestamp, snapshot and
 * targets from the registry's `/v1/tuf/metadata/`, starting from the root given at install.
 * Targets are then downloaded by the registry client (capped at the signed length, sha256 checked).
 *
 * Layout under the fleet data directory:
 *   tuf/trusted-root.json   the newest root this agent verified (our own copy: tuf-js writes its
 *                           files in place, and a damaged local root would stop it; it is restored)
 *   tuf/metadata/           tuf-js's working copies (root, timestamp, snapshot, targets)
 */
import { Metadata, MetadataKind, type Root, type Targets } from '@tufjs/models';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Updater } from 'tuf-js';
import { NestswapError, type ErrorCode } from '../runtime/errors.js';
import { writeDurable } from '../runtime/node/durable.js';
import { registryUrls } from './registry-client.js';
import { TUF_METADATA_PATH, TUF_TARGETS_PATH, type TargetJson } from '../runtime/tuf-layout.js';

type Json = Parameters<typeof Metadata.fromJSON>[1];

export interface TufClientOptions {
  /** one registry URL, or several comma-separated (replicas): tried in order while unreachable */
  registry: string;
  /** the fleet data directory (tuf/ is made inside it) */
  dataDir: string;
  logger: Logger;
  /** deadline of one metadata request */
  fetchTimeoutMs?: number;
  /** largest targets metadata accepted when the snapshot gives no length */
  targetsMaxBytes?: number;
}

function parseRootBytes(bytes: Buffer | string, what: string): Metadata<Root> {
  let md: Metadata<Root>;
  try {
    md = Metadata.fromJSON(MetadataKind.Root, JSON.parse(bytes.toString()) as Json);
  } catch (err) {
    throw new NestswapError('ERR_TRUST_ROOT_INVALID', `${what} is not TUF root metadata: ${(err as Error).message}`, { cause: err });
  }
  try {
    md.verifyDelegate('root', md);
  } catch (err) {
    throw new NestswapError('ERR_TRUST_ROOT_INVALID', `${what} is not signed by its own root keys: ${(err as Error).message}`, { cause: err });
  }
  return md;
}

/** tuf-js errors (some wrapped in a RuntimeError with the cause only in the message) as stable codes. */
export function tufErrorCode(err: unknown): ErrorCode {
  const name = (err as { constructor?: { name?: string } })?.constructor?.name ?? '';
  const msg = String((err as Error)?.message ?? err);
  if (name === 'ExpiredMetadataError' || /is expired/.test(msg)) return 'ERR_METADATA_EXPIRED';
  if (name === 'DownloadLengthMismatchError' || /Max length reached/.test(msg)) return 'ERR_METADATA_TOO_LARGE';
  if (name === 'UnsignedMetadataError' || /signed by \d+\/\d+ keys|failed to verify|no signature for key/.test(msg)) return 'ERR_METADATA_SIGNATURE';
  if (/less than current version/.test(msg)) return 'ERR_METADATA_ROLLBACK';
  if (name === 'LengthOrHashMismatchError' || /does not match snapshot version|doesn't match timestamp|Expected (hash|length)|Missing file/.test(msg)) return 'ERR_METADATA_MISMATCH';
  if (name === 'BadVersionError' || /Expected version/.test(msg)) return 'ERR_METADATA_ROLLBACK';
  if (name === 'DownloadHTTPError' || /Failed to download|fetch failed|ECONNREFUSED|aborted|timeout/i.test(msg)) return 'ERR_METADATA_UNAVAILABLE';
  return 'ERR_METADATA_INVALID';
}

export class TufClient {
  private readonly dir: string;
  private readonly metaDir: string;
  private readonly log: Logger;

  private constructor(private readonly opts: TufClientOptions) {
    this.dir = join(opts.dataDir, 'tuf');
    this.metaDir = join(this.dir, 'metadata');
    this.log = opts.logger;
  }

  static installed(dataDir: string): boolean {
    return existsSync(join(dataDir, 'tuf', 'trusted-root.json'));
  }

  /**
   * Opens the client. `trustRoot` (a root.json file) is copied in at install; later starts use the
   * installed (possibly rotated) root, and a given root older than it is ignored.
   */
  static open(opts: TufClientOptions & { trustRoot?: string | undefined }): TufClient {
    const c = new TufClient(opts);
    mkdirSync(c.metaDir, { recursive: true });
    const trusted = join(c.dir, 'trusted-root.json');
    if (opts.trustRoot !== undefined) {
      if (!existsSync(opts.trustRoot)) throw new NestswapError('ERR_TRUST_ROOT_INVALID', `--trust-root ${opts.trustRoot} does not exist.`);
      const given = readFileSync(opts.trustRoot);
      const md = parseRootBytes(given, opts.trustRoot);
      const have = existsSync(trusted) ? parseRootBytes(readFileSync(trusted), trusted).signed.version : 0;
      if (md.signed.version > have) {
        writeDurable(trusted, given);
        writeDurable(join(c.metaDir, 'root.json'), given);
        c.log.info({ version: md.signed.version }, 'trusted root installed');
      } else if (md.signed.version < have) c.log.info({ given: md.signed.version, installed: have }, 'keeping the newer installed root');
    }
    if (!existsSync(trusted)) throw new NestswapError('ERR_TRUST_ROOT_MISSING', 'No trusted root installed: give --trust-root root.json (from nestswap keys init), or --insecure-no-signatures.');
    return c;
  }

  /** The version of the newest root this agent trusts. */
  rootVersion(): number {
    return parseRootBytes(readFileSync(join(this.dir, 'trusted-root.json')), 'trusted root').signed.version;
  }

  /** tuf-js's root copy, restored from ours when missing or damaged. */
  private restoreRoot(): void {
    const local = join(this.metaDir, 'root.json');
    const ours = join(this.dir, 'trusted-root.json');
    try {
      if (parseRootBytes(readFileSync(local), local).signed.version >= this.rootVersion()) return;
    } catch {
      // missing or damaged: restored below
    }
    copyFileSync(ours, local);
  }

  /**
   * Refreshes all metadata; returns the verified top-level targets. Throws a NestswapError with a
   * stable code (ERR_METADATA_*) and leaves the last verified metadata in place.
   */
  async refresh(): Promise<Record<string, TargetJson>> {
    this.restoreRoot();
    const before = this.rootVersion();
    const urls = registryUrls(this.opts.registry);
    for (let i = 0; ; i++) {
      const url = urls[i]!;
      const updater = new Updater({
        metadataDir: this.metaDir,
        metadataBaseUrl: `${url}${TUF_METADATA_PATH}`,
        targetBaseUrl: `${url}${TUF_TARGETS_PATH}`,
        config: { fetchTimeout: this.opts.fetchTimeoutMs ?? 30_000, fetchRetry: 0, targetsMaxLength: this.opts.targetsMaxBytes ?? 64 * 1024 * 1024, userAgent: 'nestswap-agent' },
      });
      try {
        await updater.refresh();
        break;
      } catch (err) {
        const code = tufErrorCode(err);
        // another replica serves the same signed metadata; a refusal is not retried elsewhere
        if (code === 'ERR_METADATA_UNAVAILABLE' && i + 1 < urls.length) continue;
        throw new NestswapError(code, `TUF refresh from ${url}: ${(err as Error).message}`, { cause: err });
      }
    }
    // tuf-js verified and persisted the chain: keep our copy of the newest root
    const local = join(this.metaDir, 'root.json');
    const rootBytes = readFileSync(local);
    const root = parseRootBytes(rootBytes, local);
    if (root.signed.version > before) {
      writeDurable(join(this.dir, 'trusted-root.json'), rootBytes);
      this.log.info({ from: before, to: root.signed.version }, 'trusted root rotated');
    }
    // what tuf-js trusted in this refresh (it verified and persisted exactly these bytes)
    const targets = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(readFileSync(join(this.metaDir, 'targets.json'), 'utf8')) as Json) as Metadata<Targets>;
    return Object.fromEntries(Object.entries(targets.signed.targets).map(([p, t]) => [p, t.toJSON() as unknown as TargetJson]));
  }
}
