/**
 * The SQLite engine of the registry store (better-sqlite3, WAL): the one-process default, a file
 * `registry.sqlite` in the data directory. Calls are synchronous underneath and return settled
 * promises, so the same routes run on this and on PostgreSQL.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandInfo, CommandType, ProfileSummary, TelemetryEvent } from '../protocol.js';
import {
  commandInfo,
  iso,
  jsonOrNull,
  type CommandRow,
  type DeviceRow,
  type DeviceState,
  type FileRow,
  type IngestResult,
  type NewDevice,
  type NewVersion,
  type Presence,
  type ProfileRow,
  type RegistryStore,
  type ClassProfileRow,
  type StoreCounts,
  type StoredTelemetryRow,
  type TelemetryBatch,
  type VersionRow,
} from '../store.js';
import { MIGRATIONS } from './migrations.js';

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const done = db.prepare<[], { v: number | null }>('SELECT max(version) AS v FROM schema_migrations').get()?.v ?? 0;
  for (const m of MIGRATIONS) {
    if (m.version <= done) continue;
    db.transaction(() => {
      db.exec(m.sqlite);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, iso());
    })();
  }
}

function prepare(db: Database.Database) {
  return {
    getSetting: db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?'),
    setSetting: db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    settingOnce: db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING'),
    version: db.prepare<[string, string], VersionRow>('SELECT * FROM versions WHERE name = ? AND version = ?'),
    latest: db.prepare<[string], VersionRow>('SELECT * FROM versions WHERE name = ? ORDER BY seq DESC LIMIT 1'),
    versionsOf: db.prepare<[string], VersionRow>('SELECT * FROM versions WHERE name = ? ORDER BY seq'),
    allVersions: db.prepare<[], VersionRow>('SELECT * FROM versions ORDER BY name, seq'),
    files: db.prepare<[string, string], FileRow>('SELECT path, role, bytes, sha256 FROM files WHERE name = ? AND version = ? ORDER BY path'),
    file: db.prepare<[string, string, string], FileRow>('SELECT path, role, bytes, sha256 FROM files WHERE name = ? AND version = ? AND path = ?'),
    insertVersion: db.prepare('INSERT INTO versions (name, version, manifest_sha256, manifest_json, published_at) VALUES (?, ?, ?, ?, ?)'),
    insertFile: db.prepare('INSERT INTO files (name, version, path, role, bytes, sha256) VALUES (?, ?, ?, ?, ?, ?)'),
    referencedBlobs: db.prepare<[], { sha256: string }>('SELECT DISTINCT sha256 FROM files UNION SELECT manifest_sha256 FROM versions'),
    insertDevice: db.prepare('INSERT INTO devices (id, name, token_hash, supernet, device_class, fingerprint, facts_json, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
    deviceById: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE id = ?'),
    deviceByToken: db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE token_hash = ?'),
    devices: db.prepare<[number], DeviceRow>('SELECT * FROM devices ORDER BY enrolled_at, id LIMIT ?'),
    devicesAfter: db.prepare<[string, string, number], DeviceRow>('SELECT * FROM devices WHERE (enrolled_at, id) > (?, ?) ORDER BY enrolled_at, id LIMIT ?'),
    touch: db.prepare('UPDATE devices SET last_seen = ? WHERE id = ?'),
    touchPresence: db.prepare('UPDATE presence SET seen_at = ? WHERE device_id = ? AND replica_id = ?'),
    setState: db.prepare('UPDATE devices SET subnet_json = coalesce(?, subnet_json), subnet_id = coalesce(?, subnet_id), budget_json = coalesce(?, budget_json), package_version = coalesce(?, package_version) WHERE id = ?'),
    setSeq: db.prepare('UPDATE devices SET telemetry_seq = max(telemetry_seq, ?), last_seen = ? WHERE id = ? RETURNING telemetry_seq'),
    upsertProfile: db.prepare(
      'INSERT INTO profiles (device_id, sha256, json, summary_json, uploaded_at, device_class) VALUES (?, ?, ?, ?, ?, ?) ' +
        'ON CONFLICT (device_id) DO UPDATE SET sha256 = excluded.sha256, json = excluded.json, summary_json = excluded.summary_json, uploaded_at = excluded.uploaded_at, device_class = excluded.device_class',
    ),
    profile: db.prepare<[string], ProfileRow>('SELECT * FROM profiles WHERE device_id = ?'),
    profileSummary: db.prepare<[string], { summary_json: string }>('SELECT summary_json FROM profiles WHERE device_id = ?'),
    profileOfClass: db.prepare<[string], ProfileRow>('SELECT * FROM profiles WHERE device_class = ? ORDER BY uploaded_at DESC LIMIT 1'),
    profilesOfClass: db.prepare<[string], ProfileRow>('SELECT * FROM profiles WHERE device_class = ? ORDER BY uploaded_at DESC'),
    upsertClassProfile: db.prepare(
      'INSERT INTO class_profiles (device_class, sha256, json, devices, updated_at) VALUES (?, ?, ?, ?, ?) ' +
        'ON CONFLICT (device_class) DO UPDATE SET sha256 = excluded.sha256, json = excluded.json, devices = excluded.devices, updated_at = excluded.updated_at',
    ),
    classProfile: db.prepare<[string], ClassProfileRow>('SELECT * FROM class_profiles WHERE device_class = ?'),
    insertTelemetry: db.prepare('INSERT OR IGNORE INTO telemetry (device_id, seq, at, kind, data_json, received_at) VALUES (?, ?, ?, ?, ?, ?)'),
    recentTelemetry: db.prepare<[string, number], { seq: number; at: number; kind: string; data_json: string; received_at: string }>(
      'SELECT seq, at, kind, data_json, received_at FROM telemetry WHERE device_id = ? ORDER BY seq DESC LIMIT ?',
    ),
    telemetryCount: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM telemetry WHERE device_id = ?'),
    insertCommand: db.prepare('INSERT INTO commands (id, device_id, type, payload_json, status, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
    command: db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE id = ?'),
    openCommands: db.prepare<[string], CommandRow>("SELECT * FROM commands WHERE device_id = ? AND status IN ('pending', 'sent') ORDER BY seq"),
    markSent: db.prepare("UPDATE commands SET status = 'sent', sent_at = ? WHERE id = ? AND status IN ('pending', 'sent')"),
    finish: db.prepare<[string, string, string | null, string | null, string, string], CommandRow>(
      "UPDATE commands SET status = ?, done_at = ?, result_json = ?, error_json = ? WHERE id = ? AND device_id = ? AND status IN ('pending', 'sent') RETURNING *",
    ),
    counts: db.prepare<[], { supernets: number; versions: number; devices: number; telemetry: number }>(
      'SELECT (SELECT count(DISTINCT name) FROM versions) AS supernets, (SELECT count(*) FROM versions) AS versions, (SELECT count(*) FROM devices) AS devices, (SELECT count(*) FROM telemetry) AS telemetry',
    ),
    commandCounts: db.prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM commands GROUP BY status'),
    claim: db.prepare<[string, string, string], { epoch: number }>(
      'INSERT INTO presence (device_id, replica_id, epoch, seen_at) VALUES (?, ?, 1, ?) ' +
        'ON CONFLICT (device_id) DO UPDATE SET replica_id = excluded.replica_id, epoch = presence.epoch + 1, seen_at = excluded.seen_at RETURNING epoch',
    ),
    release: db.prepare("UPDATE presence SET replica_id = '' WHERE device_id = ? AND replica_id = ? AND epoch = ?"),
    presence: db.prepare<[string], { device_id: string; replica_id: string; epoch: number; seen_at: string }>("SELECT * FROM presence WHERE device_id = ? AND replica_id <> ''"),
    clearPresence: db.prepare("UPDATE presence SET replica_id = '' WHERE replica_id = ?"),
  };
}

export class SqliteStore implements RegistryStore {
  readonly engine = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly q: ReturnType<typeof prepare>;

  constructor(readonly dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(join(dataDir, 'registry.sqlite'));
    this.db.pragma('journal_mode = WAL');
    // FULL: a transaction is on disk when it commits, so what the registry acknowledged survives a power cut too
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    migrate(this.db);
    this.q = prepare(this.db);
  }

  async close(): Promise<void> {
    this.db.close();
  }

  async setting(key: string) {
    return this.q.getSetting.get(key)?.value;
  }
  async setSetting(key: string, value: string) {
    this.q.setSetting.run(key, value);
  }
  async settingOnce(key: string, value: string) {
    this.q.settingOnce.run(key, value);
    return this.q.getSetting.get(key)!.value;
  }

  async version(name: string, version: string) {
    return version === 'latest' ? this.q.latest.get(name) : this.q.version.get(name, version);
  }
  async versionsOf(name: string) {
    return this.q.versionsOf.all(name);
  }
  async allVersions() {
    return this.q.allVersions.all();
  }
  async files(name: string, version: string) {
    return this.q.files.all(name, version);
  }
  async file(name: string, version: string, path: string) {
    return this.q.file.get(name, version, path);
  }
  async insertVersion(v: NewVersion) {
    this.db.transaction(() => {
      this.q.insertVersion.run(v.name, v.version, v.manifestSha256, v.manifestJson, iso());
      for (const f of v.files) this.q.insertFile.run(v.name, v.version, f.path, f.role, f.bytes, f.sha256);
    })();
  }
  async referencedBlobs() {
    return new Set(this.q.referencedBlobs.all().map((r) => r.sha256));
  }

  async insertDevice(d: NewDevice) {
    this.q.insertDevice.run(d.id, d.name, d.tokenHash, d.supernet ?? null, d.deviceClass ?? null, d.fingerprint ?? null, JSON.stringify(d.facts ?? {}), iso());
  }
  async device(id: string) {
    return this.q.deviceById.get(id);
  }
  async deviceByTokenHash(hash: string) {
    return this.q.deviceByToken.get(hash);
  }
  async devices(page: { after?: { enrolledAt: string; id: string }; limit?: number } = {}) {
    const limit = page.limit ?? -1;
    return page.after ? this.q.devicesAfter.all(page.after.enrolledAt, page.after.id, limit) : this.q.devices.all(limit);
  }
  async touch(deviceIds: string[], replicaId: string) {
    const now = iso();
    this.db.transaction(() => {
      for (const id of deviceIds) {
        this.q.touch.run(now, id);
        this.q.touchPresence.run(now, id, replicaId);
      }
    })();
  }
  async setDeviceState(id: string, s: DeviceState) {
    this.q.setState.run(jsonOrNull(s.subnet), s.subnetId ?? null, jsonOrNull(s.budget), s.packageVersion ?? null, id);
  }

  async putProfile(deviceId: string, sha256: string, json: string, summary: ProfileSummary) {
    this.q.upsertProfile.run(deviceId, sha256, json, JSON.stringify(summary), summary.uploadedAt, summary.deviceClass);
  }
  async profile(deviceId: string) {
    return this.q.profile.get(deviceId);
  }
  async profileSummaries(deviceIds: string[]) {
    // one synchronous statement per id: in-process SQLite has no round trip to save
    const out = new Map<string, ProfileSummary>();
    for (const id of deviceIds) {
      const r = this.q.profileSummary.get(id);
      if (r) out.set(id, JSON.parse(r.summary_json) as ProfileSummary);
    }
    return out;
  }
  async profileOfClass(deviceClass: string) {
    return this.q.profileOfClass.get(deviceClass);
  }
  async profilesOfClass(deviceClass: string) {
    return this.q.profilesOfClass.all(deviceClass);
  }
  async putClassProfile(r: ClassProfileRow) {
    this.q.upsertClassProfile.run(r.device_class, r.sha256, r.json, r.devices, r.updated_at);
  }
  async classProfile(deviceClass: string) {
    return this.q.classProfile.get(deviceClass);
  }

  async ingestTelemetry(batches: TelemetryBatch[]) {
    return this.db.transaction(() => {
      const now = iso();
      const out = new Map<string, IngestResult>();
      for (const b of batches) {
        const r = out.get(b.deviceId) ?? { seq: 0, added: [] as TelemetryEvent[] };
        let max = 0;
        for (const e of b.events) {
          if (this.q.insertTelemetry.run(b.deviceId, e.seq, e.at, e.kind, JSON.stringify(e.data), now).changes > 0) r.added.push(e);
          if (e.seq > max) max = e.seq;
        }
        const row = this.q.setSeq.get(max, now, b.deviceId) as { telemetry_seq: number } | undefined;
        r.seq = row?.telemetry_seq ?? 0;
        out.set(b.deviceId, r);
      }
      return out;
    })();
  }
  async recentTelemetry(deviceId: string, limit = 20): Promise<StoredTelemetryRow[]> {
    return this.q.recentTelemetry.all(deviceId, limit).map((r) => ({ seq: r.seq, at: r.at, kind: r.kind, data: JSON.parse(r.data_json) as Record<string, unknown>, receivedAt: r.received_at }));
  }
  async telemetryCount(deviceId: string) {
    return this.q.telemetryCount.get(deviceId)!.n;
  }

  async insertCommand(c: { id: string; deviceId: string; type: CommandType; payload: Record<string, unknown> }): Promise<CommandInfo> {
    this.q.insertCommand.run(c.id, c.deviceId, c.type, JSON.stringify(c.payload), 'pending', iso());
    return commandInfo(this.q.command.get(c.id)!);
  }
  async command(id: string) {
    const r = this.q.command.get(id);
    return r ? commandInfo(r) : undefined;
  }
  async openCommands(deviceId: string) {
    return this.q.openCommands.all(deviceId).map(commandInfo);
  }
  async markSent(ids: string[]) {
    const now = iso();
    this.db.transaction(() => {
      for (const id of ids) this.q.markSent.run(now, id);
    })();
  }
  async finishCommand(deviceId: string, id: string, ok: boolean, result: unknown, error: unknown) {
    const r = this.q.finish.get(ok ? 'acked' : 'failed', iso(), jsonOrNull(result), jsonOrNull(error), id, deviceId);
    return r ? commandInfo(r) : undefined;
  }
  async counts(): Promise<StoreCounts> {
    const c = this.q.counts.get()!;
    const commands: Record<string, number> = {};
    for (const r of this.q.commandCounts.all()) commands[r.status] = r.n;
    return { ...c, commands };
  }

  async claimPresence(deviceId: string, replicaId: string): Promise<Presence> {
    const seenAt = iso();
    const { epoch } = this.q.claim.get(deviceId, replicaId, seenAt)!;
    return { deviceId, replicaId, epoch, seenAt };
  }
  async releasePresence(p: Presence) {
    return this.q.release.run(p.deviceId, p.replicaId, p.epoch).changes > 0;
  }
  async presence(deviceIds: string[]) {
    const out = new Map<string, Presence>();
    for (const id of deviceIds) {
      const r = this.q.presence.get(id);
      if (r) out.set(id, { deviceId: r.device_id, replicaId: r.replica_id, epoch: r.epoch, seenAt: r.seen_at });
    }
    return out;
  }
  async clearPresence(replicaId: string) {
    this.q.clearPresence.run(replicaId);
  }
}
