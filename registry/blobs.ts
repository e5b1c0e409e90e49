/**
 * Content-addressed blob storage behind an interface: `DirBlobStore` keeps `blobs/<aa>/<sha256>`
 * under a root directory, which several replicas may share (a network mount). Safe with replicas:
 *   - uploads are written to `tmp/` under a name carrying the writer's replica id and renamed into
 *     place, so a blob path exists only with its full content; a starting replica removes only its
 *     own leftovers and files older than a day, never another replica's upload in flight;
 *   - garbage collection removes a blob only when no committed version references it AND it was
 *     not written or reused in the last `graceMs` (a publish that has written its blobs but not yet
 *     committed its rows keeps them: writing, or finding a blob already present, refreshes its mtime).
 * An S3-compatible store would implement the same interface (see docs/scale-out.md).
 */
import { renameDurable, writeDurable } from '../runtime/node/durable.js';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

export interface BlobStore {
  /** Size in bytes, undefined when absent. */
  size(sha256: string): Promise<number | undefined>;
  read(sha256: string): Promise<Uint8Array>;
  /** Bytes start..end inclusive (or the whole blob). */
  stream(sha256: string, range?: { start: number; end: number }): Readable;
  /** Writes verified bytes; returns the digests that did not exist before (to remove if the commit fails). */
  write(blobs: Iterable<{ sha256: string; bytes: Uint8Array }>): Promise<string[]>;
  /** Removes these digests unless `referenced` has them. */
  remove(digests: string[], referenced: Set<string>): Promise<void>;
  /** Removes unreferenced blobs older than the grace period; returns how many. */
  collectGarbage(referenced: Set<string>, graceMs?: number): Promise<number>;
  count(): Promise<number>;
}

const DAY_MS = 24 * 3600_000;
export const DEFAULT_GC_GRACE_MS = 3600_000;

export class DirBlobStore implements BlobStore {
  readonly blobDir: string;
  readonly tmpDir: string;

  constructor(
    readonly root: string,
    private readonly replicaId: string,
  ) {
    this.blobDir = join(root, 'blobs');
    this.tmpDir = join(root, 'tmp');
    mkdirSync(this.blobDir, { recursive: true });
    mkdirSync(this.tmpDir, { recursive: true });
    this.removeLeftovers();
  }

  private tag(): string {
    return `.${this.replicaId.replace(/[^A-Za-z0-9-]/g, '_')}.`;
  }

  /** Our own uploads that never committed (we crashed), and anyone's abandoned for a day. */
  private removeLeftovers(): void {
    const now = Date.now();
    for (const f of readdirSync(this.tmpDir)) {
      const p = join(this.tmpDir, f);
      let old = false;
      try {
        old = now - statSync(p).mtimeMs > DAY_MS;
      } catch {
        continue;
      }
      if (f.includes(this.tag()) || old) rmSync(p, { force: true, recursive: true });
    }
  }

  path(sha256: string): string {
    return join(this.blobDir, sha256.slice(0, 2), sha256);
  }

  async size(sha256: string) {
    try {
      return statSync(this.path(sha256)).size;
    } catch {
      return undefined;
    }
  }

  async read(sha256: string) {
    return new Uint8Array(await readFile(this.path(sha256)));
  }

  stream(sha256: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.path(sha256), range ?? {});
  }

  async write(blobs: Iterable<{ sha256: string; bytes: Uint8Array }>) {
    const created: string[] = [];
    try {
      for (const b of blobs) {
        const dest = this.path(b.sha256);
        if (existsSync(dest) && statSync(dest).size === b.bytes.length) {
          // reused: a fresh mtime keeps a concurrent GC off it until our rows commit
          const now = new Date();
          utimesSync(dest, now, now);
          continue;
        }
        const tmp = join(this.tmpDir, `${b.sha256}${this.tag()}${process.pid}.${randomBytes(4).toString('hex')}`);
        writeDurable(tmp, b.bytes); // fsynced: the version row that names it commits after
        mkdirSync(join(this.blobDir, b.sha256.slice(0, 2)), { recursive: true });
        renameDurable(tmp, dest);
        created.push(b.sha256);
      }
    } catch (err) {
      for (const d of created) rmSync(this.path(d), { force: true });
      throw err;
    }
    return created;
  }

  async remove(digests: string[], referenced: Set<string>) {
    for (const d of digests) if (!referenced.has(d)) rmSync(this.path(d), { force: true });
  }

  async collectGarbage(referenced: Set<string>, graceMs = DEFAULT_GC_GRACE_MS) {
    const cutoff = Date.now() - graceMs;
    let removed = 0;
    for (const sub of readdirSync(this.blobDir))
      for (const f of readdirSync(join(this.blobDir, sub))) {
        if (referenced.has(f)) continue;
        const p = join(this.blobDir, sub, f);
        try {
          if (statSync(p).mtimeMs > cutoff) continue;
        } catch {
          continue;
        }
        rmSync(p, { force: true });
        removed++;
      }
    return removed;
  }

  async count() {
    let n = 0;
    for (const sub of readdirSync(this.blobDir)) n += readdirSync(join(this.blobDir, sub)).length;
    return n;
  }
}
