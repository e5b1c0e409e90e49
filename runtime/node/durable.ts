/**
 * Crash-safe file writes. `writeDurable` is temp file + fsync + rename + fsync of the directory: after
 * it returns the new content survives a power cut, and at no moment can a reader see a half-written
 * file (it sees the old content or the new). `fsyncDir` makes a rename or unlink in a directory durable.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { crashPoint } from '../crash.js';

let counter = 0;

/** fsync a directory so renames and creations in it are durable (a no-op where directories cannot be opened). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // some platforms (Windows) cannot fsync a directory; the rename is still atomic there
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface DurableOptions {
  mode?: number;
  /** a crash point (runtime/crash.ts) reached with half the temp file written */
  crashPoint?: string;
}

/** Writes `data` to `path` atomically and durably: temp + fsync + rename + fsync(dir). */
export function writeDurable(path: string, data: string | Uint8Array, opts: DurableOptions = {}): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${counter++}`);
  const fd = openSync(tmp, 'w', opts.mode ?? 0o644);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    const half = opts.crashPoint ? buf.length >> 1 : buf.length;
    while (off < half) off += writeSync(fd, buf, off, half - off);
    if (opts.crashPoint) crashPoint(opts.crashPoint);
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dir);
}

/** Async `writeDurable` for large files (the write itself does not block the event loop). */
export async function writeDurableAsync(path: string, data: string | Uint8Array, opts: DurableOptions = {}): Promise<void> {
  const { open, rename, rm } = await import('node:fs/promises');
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${counter++}`);
  const fh = await open(tmp, 'w', opts.mode ?? 0o644);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const half = opts.crashPoint ? buf.length >> 1 : buf.length;
    await fh.write(buf.subarray(0, half));
    if (opts.crashPoint) crashPoint(opts.crashPoint);
    await fh.write(buf.subarray(half));
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  fsyncDir(dir);
}

/** Renames durably (the rename is fsynced in both directories). */
export function renameDurable(from: string, to: string): void {
  renameSync(from, to);
  fsyncDir(dirname(to));
  if (dirname(from) !== dirname(to)) fsyncDir(dirname(from));
}
