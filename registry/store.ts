/**
 * Registry storage: metadata in SQLite (better-sqlite3, WAL), file contents as content-addressed
 * blobs on disk (`blobs/<aa>/<sha256>`). Blobs are written to `tmp/` and renamed into place, so a
 * blob path exists only with its full, verified content; rows referencing blobs are inserted in one
 * transaction after the renames, and blobs no row references are removed at startup.
 */
import { renameDurable, writeDurable } from '../runtime/node/durable.js';
import Database from 'better-sqlite3';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandInfo, CommandStatus, CommandType, ProfileSummary, TelemetryEvent } from './protocol.js';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Constant-time comparison of two hex digests of equal length. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export function newToken(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString('base64url')}`;
}

export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
}

const iso = (ms = Date.now()) => new Date(ms).toISOString();

export interface VersionRow {
  name: string;
  version: string;
  seq: number;
  manifest_sha256: string;
  manifest_json: string;
  published_at: string;
}
export interface FileRow {
  path: string;
  role: string;
  bytes: number;
  sha256: string;
}
export interface DeviceRow {
  id: string;
  name: string;
  token_hash: string;
  supernet: string | null;
  device_class: string | null;
  fingerprint: string | null;
  facts_json: string;
  enrolled_at: string;
  last_seen: string | null;
  subnet_json: string | null;
  subnet_id: string | null;
  budget_json: string | null;
  telemetry_seq: number;
}
export interface ProfileRow {
  device_id: string;
  sha256: string;
  json: string;
  summary_json: string;
  uploaded_at: string;
  device_class: string | null;
}
interface CommandRow {
  id: string;
  device_id: string;
  type: CommandType;
  payload_json: string;
  status: CommandStatus;
  created_at: string;
  sent_at: string | null;
  done_at: string | null;
  result_json: string | null;
  error_json: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL, version TEXT NOT NULL,
  manifest_sha256 TEXT NOT NULL, manifest_json TEXT NOT NULL, published_at TEXT NOT NULL,
  UNIQUE (name, version));
CREATE TABLE IF NOT EXISTS files (
  name TEXT NOT NULL, version TEXT NOT NULL, path TEXT NOT NULL, role TEXT NOT NULL,
  bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
  PRIMARY KEY (name, version, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
  supernet TEXT, device_class TEXT, fingerprint TEXT, facts_json TEXT NOT NULL,
  enrolled_at TEXT NOT NULL, last_seen TEXT,
  subnet_json TEXT, subnet_id TEXT, budget_json TEXT,
  telemetry_seq INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS profiles (
  device_id TEXT PRIMARY KEY REFERENCES devices(id), sha256 TEXT NOT NULL, json TEXT NOT NULL,
  summary_json TEXT NOT NULL, uploaded_at TEXT NOT NULL, device_class TEXT);
CREATE TABLE IF NOT EXISTS telemetry (
  device_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL,
  data_json TEXT NOT NULL, received_at TEXT NOT NULL,
  PRIMARY KEY (device_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, device_id TEXT NOT NULL,
  type TEXT NOT NULL, payload_json TEXT NOT NULL, status TEXT NOT NULL,
  created_at TEXT NOT NULL, sent_at TEXT, done_at TEXT, result_json TEXT, error_json TEXT);
CREATE INDEX IF NOT EXISTS commands_open ON commands (device_id, status);
`;

export class RegistryStore {
  readonly db: Database.Database;
  readonly blobDir: string;
  readonly tmpDir: string;
  private readonly stmts;

  constructor(readonly dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.blobDir = join(dataDir, 'blobs');
    this.tmpDir = join(dataDir, 'tmp');
    // Anything left in tmp/ is an upload that never committed.
    rmSync(this.tmpDir, { recursive: true, force: true });
    mkdirSync(this.tmpDir, { recursive: true });
    mkdirSync(this.blobDir, { recursive: true });
    this.db = new Database(join(dataDir, 'registry.sqlite'));
    this.db.pragma('journal_mode = WAL');
    // FULL: a transaction is on disk when it commits, so what the registry acknowledged survives a power cut too
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmts = {
      getSetting: db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?'),
      setSetting: db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      version: db.prepare<[string, string], VersionRow>('SELECT * FROM versions WHERE name = ? AND version = ?'),
      latest: db.prepare<[string], VersionRow>('SELECT * FROM versions WHERE name = ? ORDER BY seq DESC LIMIT 1'),
      versionsOf: db.prepare<[string], VersionRow>('SELECT * FROM versions WHERE name = ? ORDER BY seq'),
      allVersions: db.prepare<[], VersionRow>('SELECT * FROM versions ORDER BY name, seq'),
      files: db.prepare<[string, string], FileRow>('SELECT path, role, bytes, sha256 FROM files WHERE name = ? AND version = ? ORDER BY path'),
      file: db.prepare<[string, string, string], FileRow>('SELECT path, role, bytes, sha256 FROM files WHERE name = ? AND version = ? AND path = ?'),
      insertVersion: db.prepare('INSERT INTO versions (name, version, manifest_sha256, manifest_json, published_at) VALUES (?, ?, ?, ?, ?)'),
      insertFile: db.prepare('INSERT INTO files (name, version, path, role, bytes, sha256) VALUES (?, ?, ?, ?, ?, ?)'),
      referencedBlobs: db.prepare<[], { sha256: string }>('SELECT DISTINCT sha256 FROM files'),
      insertDevice: db.prepare(
        'INSERT INTO devices (id, name, token_hash, supernet, device_class, fingerprint, facts_json, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      deviceById: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE id = ?'),
      deviceByToken: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE token_hash = ?'),
      devices: db.prepare<[], DeviceRow>('SELECT * FROM devices ORDER BY enrolled_at, id'),
      touch: db.prepare('UPDATE devices SET last_seen = ? WHERE id = ?'),
      setState: db.prepare('UPDATE devices SET subnet_json = coalesce(?, subnet_json), subnet_id = coalesce(?, subnet_id), budget_json = coalesce(?, budget_json) WHERE id = ?'),
      setSeq: db.prepare('UPDATE devices SET telemetry_seq = max(telemetry_seq, ?), last_seen = ? WHERE id = ?'),
      upsertProfile: db.prepare(
        'INSERT INTO profiles (device_id, sha256, json, summary_json, uploaded_at, device_class) VALUES (?, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT (device_id) DO UPDATE SET sha256 = excluded.sha256, json = excluded.json, summary_json = excluded.summary_json, uploaded_at = excluded.uploaded_at, device_class = excluded.device_class',
      ),
      profile: db.prepare<[string], ProfileRow>('SELECT * FROM profiles WHERE device_id = ?'),
      profileSummary: db.prepare<[string], { summary_json: string }>('SELECT summary_json FROM profiles WHERE device_id = ?'),
      profileOfClass: db.prepare<[string], ProfileRow>('SELECT * FROM profiles WHERE device_class = ? ORDER BY uploaded_at DESC LIMIT 1'),
      insertTelemetry: db.prepare('INSERT OR IGNORE INTO telemetry (device_id, seq, at, kind, data_json, received_at) VALUES (?, ?, ?, ?, ?, ?)'),
      recentTelemetry: db.prepare<[string, number], { seq: number; at: number; kind: string; data_json: string; received_at: string }>(
        'SELECT seq, at, kind, data_json, received_at FROM telemetry WHERE device_id = ? ORDER BY seq DESC LIMIT ?',
      ),
      telemetryCount: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM telemetry WHERE device_id = ?'),
      insertCommand: db.prepare('INSERT INTO commands (id, device_id, type, payload_json, status, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      command: db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE id = ?'),
      openCommands: db.prepare<[string], CommandRow>("SELECT * FROM commands WHERE device_id = ? AND status IN ('pending', 'sent') ORDER BY seq"),
      markSent: db.prepare("UPDATE commands SET status = 'sent', sent_at = ? WHERE id = ? AND status IN ('pending', 'sent')"),
      finish: db.prepare("UPDATE commands SET status = ?, done_at = ?, result_json = ?, error_json = ? WHERE id = ? AND device_id = ? AND status IN ('pending', 'sent')"),
      counts: db.prepare<[], { supernets: number; versions: number; devices: number; telemetry: number }>(
        'SELECT (SELECT count(DISTINCT name) FROM versions) AS supernets, (SELECT count(*) FROM versions) AS versions, (SELECT count(*) FROM devices) AS devices, (SELECT count(*) FROM telemetry) AS telemetry',
      ),
      commandCounts: db.prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM commands GROUP BY status'),
    };
    this.collectGarbage();
  }

  close(): void {
    this.db.close();
  }

  // ---------- settings ----------
  setting(key: string): string | undefined {
    return this.stmts.getSetting.get(key)?.value;
  }
  setSetting(key: string, value: string): void {
    this.stmts.setSetting.run(key, value);
  }

  // ---------- blobs ----------
  blobPath(sha256: string): string {
    return join(this.blobDir, sha256.slice(0, 2), sha256);
  }

  /**
   * Writes verified bytes as blobs (temp file + rename). Returns the digests that did not exist
   * before, so a caller whose transaction fails can remove exactly those.
   */
  writeBlobs(blobs: Iterable<{ sha256: string; bytes: Uint8Array }>): string[] {
    const created: string[] = [];
    try {
      for (const b of blobs) {
        const dest = this.blobPath(b.sha256);
        if (existsSync(dest) && statSync(dest).size === b.bytes.length) continue;
        const tmp = join(this.tmpDir, `${b.sha256}.${process.pid}.${randomBytes(4).toString('hex')}`);
        writeDurable(tmp, b.bytes); // fsynced: the version row that will name it commits after
        mkdirSync(join(this.blobDir, b.sha256.slice(0, 2)), { recursive: true });
        renameDurable(tmp, dest);
        created.push(b.sha256);
      }
    } catch (err) {
      this.removeBlobs(created);
      throw err;
    }
    return created;
  }

  removeBlobs(digests: string[]): void {
    const referenced = new Set(this.stmts.referencedBlobs.all().map((r) => r.sha256));
    for (const d of digests) if (!referenced.has(d)) rmSync(this.blobPath(d), { force: true });
  }

  /** Removes blobs no version references (e.g. after a crash between renames and commit). */
  collectGarbage(): number {
    const referenced = new Set(this.stmts.referencedBlobs.all().map((r) => r.sha256));
    let removed = 0;
    for (const sub of readdirSync(this.blobDir))
      for (const f of readdirSync(join(this.blobDir, sub)))
        if (!referenced.has(f)) {
          rmSync(join(this.blobDir, sub, f), { force: true });
          removed++;
        }
    return removed;
  }

  blobCount(): number {
    let n = 0;
    for (const sub of readdirSync(this.blobDir)) n += readdirSync(join(this.blobDir, sub)).length;
    return n;
  }

  // ---------- supernets ----------
  version(name: string, version: string): VersionRow | undefined {
    return version === 'latest' ? this.stmts.latest.get(name) : this.stmts.version.get(name, version);
  }
  versionsOf(name: string): VersionRow[] {
    return this.stmts.versionsOf.all(name);
  }
  allVersions(): VersionRow[] {
    return this.stmts.allVersions.all();
  }
  files(name: string, version: string): FileRow[] {
    return this.stmts.files.all(name, version);
  }
  file(name: string, version: string, path: string): FileRow | undefined {
    return this.stmts.file.get(name, version, path);
  }

  /** Inserts a version and its files in one transaction (blobs must already be in place). */
  insertVersion(v: { name: string; version: string; manifestSha256: string; manifestJson: string; files: FileRow[] }): void {
    this.db.transaction(() => {
      this.stmts.insertVersion.run(v.name, v.version, v.manifestSha256, v.manifestJson, iso());
      for (const f of v.files) this.stmts.insertFile.run(v.name, v.version, f.path, f.role, f.bytes, f.sha256);
    })();
  }

  // ---------- devices ----------
  insertDevice(d: { id: string; name: string; tokenHash: string; supernet?: string | undefined; deviceClass?: string | undefined; fingerprint?: string | undefined; facts: unknown }): void {
    this.stmts.insertDevice.run(d.id, d.name, d.tokenHash, d.supernet ?? null, d.deviceClass ?? null, d.fingerprint ?? null, JSON.stringify(d.facts ?? {}), iso());
  }
  device(id: string): DeviceRow | undefined {
    return this.stmts.deviceById.get(id);
  }
  deviceByTokenHash(hash: string): DeviceRow | undefined {
    return this.stmts.deviceByToken.get(hash);
  }
  devices(): DeviceRow[] {
    return this.stmts.devices.all();
  }
  touch(id: string): void {
    this.stmts.touch.run(iso(), id);
  }
  setDeviceState(id: string, s: { subnet?: unknown; subnetId?: string | null; budget?: unknown }): void {
    this.stmts.setState.run(
      s.subnet === undefined || s.subnet === null ? null : JSON.stringify(s.subnet),
      s.subnetId ?? null,
      s.budget === undefined || s.budget === null ? null : JSON.stringify(s.budget),
      id,
    );
  }

  // ---------- profiles ----------
  putProfile(deviceId: string, sha256: string, json: string, summary: ProfileSummary): void {
    this.stmts.upsertProfile.run(deviceId, sha256, json, JSON.stringify(summary), summary.uploadedAt, summary.deviceClass);
  }
  profile(deviceId: string): ProfileRow | undefined {
    return this.stmts.profile.get(deviceId);
  }
  profileSummary(deviceId: string): ProfileSummary | null {
    const r = this.stmts.profileSummary.get(deviceId);
    return r ? (JSON.parse(r.summary_json) as ProfileSummary) : null;
  }
  /** The newest profile uploaded by a device of this class. */
  profileOfClass(deviceClass: string): ProfileRow | undefined {
    return this.stmts.profileOfClass.get(deviceClass);
  }

  // ---------- telemetry ----------
  /**
   * Stores a batch in one transaction; duplicates (same device and seq, e.g. resent after a lost
   * ack) are ignored. Returns the device's highest stored seq and the number of new events.
   */
  ingestTelemetry(deviceId: string, events: TelemetryEvent[], onEvent?: (e: TelemetryEvent) => void): { seq: number; added: number } {
    return this.db.transaction(() => {
      const now = iso();
      let added = 0;
      let max = 0;
      for (const e of events) {
        const r = this.stmts.insertTelemetry.run(deviceId, e.seq, e.at, e.kind, JSON.stringify(e.data), now);
        if (r.changes > 0) {
          added++;
          onEvent?.(e);
        }
        if (e.seq > max) max = e.seq;
      }
      this.stmts.setSeq.run(max, now, deviceId);
      return { seq: this.device(deviceId)!.telemetry_seq, added };
    })();
  }
  recentTelemetry(deviceId: string, limit = 20) {
    return this.stmts.recentTelemetry.all(deviceId, limit).map((r) => ({ seq: r.seq, at: r.at, kind: r.kind, data: JSON.parse(r.data_json) as Record<string, unknown>, receivedAt: r.received_at }));
  }
  telemetryCount(deviceId: string): number {
    return this.stmts.telemetryCount.get(deviceId)!.n;
  }

  // ---------- commands ----------
  insertCommand(c: { id: string; deviceId: string; type: CommandType; payload: Record<string, unknown> }): CommandInfo {
    this.stmts.insertCommand.run(c.id, c.deviceId, c.type, JSON.stringify(c.payload), 'pending', iso());
    return this.command(c.id)!;
  }
  command(id: string): CommandInfo | undefined {
    const r = this.stmts.command.get(id);
    return r ? commandInfo(r) : undefined;
  }
  openCommands(deviceId: string): CommandInfo[] {
    return this.stmts.openCommands.all(deviceId).map(commandInfo);
  }
  markSent(id: string): void {
    this.stmts.markSent.run(iso(), id);
  }
  /** Records an agent's outcome; false when the command is unknown, not this device's, or already done. */
  finishCommand(deviceId: string, id: string, ok: boolean, result: unknown, error: unknown): boolean {
    const r = this.stmts.finish.run(ok ? 'acked' : 'failed', iso(), result === undefined ? null : JSON.stringify(result), error === undefined ? null : JSON.stringify(error), id, deviceId);
    return r.changes > 0;
  }

  counts() {
    const c = this.stmts.counts.get()!;
    const commands: Record<string, number> = {};
    for (const r of this.stmts.commandCounts.all()) commands[r.status] = r.n;
    return { ...c, commands };
  }
}

function commandInfo(r: CommandRow): CommandInfo {
  return {
    id: r.id,
    deviceId: r.device_id,
    type: r.type,
    payload: JSON.parse(r.payload_json) as Record<string, unknown>,
    status: r.status,
    createdAt: r.created_at,
    sentAt: r.sent_at,
    doneAt: r.done_at,
    result: r.result_json === null ? null : (JSON.parse(r.result_json) as unknown),
    error: r.error_json === null ? null : (JSON.parse(r.error_json) as { code: string; message: string }),
  };
}
