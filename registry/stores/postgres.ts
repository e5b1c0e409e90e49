/**
 * The PostgreSQL engine of the registry store (`pg`), shared by any number of registry replicas.
 * Same tables as SQLite (registry/stores/migrations.ts, applied under an advisory lock so replicas
 * starting together migrate once). Batches are single statements over unnest() arrays: one round
 * trip per telemetry batch, heartbeat batch or sent-mark batch, whatever its size.
 */
import pg from 'pg';
import { NestswapError } from '../../runtime/errors.js';
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

// BIGINT (int8, oid 20) as a number: sequence numbers and counts stay far below 2^53
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format ?? 'text'))) as typeof pg.types.getTypeParser,
};

const MIGRATION_LOCK = 0x6e657374; // 'nest'
const RETRYABLE = new Set(['40P01', '40001']); // deadlock, serialization failure

interface PresenceRow {
  device_id: string;
  replica_id: string;
  epoch: number;
  seen_at: string;
}

export class PostgresStore implements RegistryStore {
  readonly engine = 'postgres' as const;
  private constructor(readonly pool: pg.Pool) {}

  /** Connects, checks the server answers, and applies pending migrations. */
  static async open(url: string, opts: { max?: number } = {}): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 16, types, connectionTimeoutMillis: 10_000 });
    pool.on('error', () => undefined); // an idle client's error surfaces on its next query
    const store = new PostgresStore(pool);
    try {
      await store.migrate();
    } catch (cause) {
      await pool.end().catch(() => undefined);
      const where = url.replace(/\/\/[^@/]*@/, '//');
      throw new NestswapError('ERR_DATABASE', `Cannot open the PostgreSQL database ${where}: ${(cause as Error).message}`, { cause });
    }
    return store;
  }

  private async migrate(): Promise<void> {
    await this.tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
      const done = (await c.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations')).rows[0]?.v ?? 0;
      for (const m of MIGRATIONS) {
        if (m.version <= done) continue;
        await c.query(m.postgres);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, iso()]);
      }
    });
  }

  /** A transaction on one client, retried on deadlock or serialization failure. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const c = await this.pool.connect();
      try {
        await c.query('BEGIN');
        const out = await fn(c);
        await c.query('COMMIT');
        return out;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        if (attempt < 4 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw err;
      } finally {
        c.release();
      }
    }
  }

  /** One statement (its own transaction), retried on deadlock. */
  private async q<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.pool.query<R>(text, values)).rows;
      } catch (err) {
        if (attempt < 4 && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw err;
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  async setting(key: string) {
    return (await this.q<{ value: string }>('SELECT value FROM settings WHERE key = $1', [key]))[0]?.value;
  }
  async setSetting(key: string, value: string) {
    await this.q('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }
  async settingOnce(key: string, value: string) {
    await this.q('INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [key, value]);
    return (await this.setting(key))!;
  }

  async version(name: string, version: string) {
    const rows =
      version === 'latest'
        ? await this.q<VersionRow>('SELECT * FROM versions WHERE name = $1 ORDER BY seq DESC LIMIT 1', [name])
        : await this.q<VersionRow>('SELECT * FROM versions WHERE name = $1 AND version = $2', [name, version]);
    return rows[0];
  }
  async versionsOf(name: string) {
    return this.q<VersionRow>('SELECT * FROM versions WHERE name = $1 ORDER BY seq', [name]);
  }
  async allVersions() {
    return this.q<VersionRow>('SELECT * FROM versions ORDER BY name, seq');
  }
  async files(name: string, version: string) {
    return this.q<FileRow>('SELECT path, role, bytes, sha256 FROM files WHERE name = $1 AND version = $2 ORDER BY path', [name, version]);
  }
  async file(name: string, version: string, path: string) {
    return (await this.q<FileRow>('SELECT path, role, bytes, sha256 FROM files WHERE name = $1 AND version = $2 AND path = $3', [name, version, path]))[0];
  }
  async insertVersion(v: NewVersion) {
    await this.tx(async (c) => {
      await c.query('INSERT INTO versions (name, version, manifest_sha256, manifest_json, published_at) VALUES ($1, $2, $3, $4, $5)', [v.name, v.version, v.manifestSha256, v.manifestJson, iso()]);
      await c.query('INSERT INTO files (name, version, path, role, bytes, sha256) SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[])', [
        v.name,
        v.version,
        v.files.map((f) => f.path),
        v.files.map((f) => f.role),
        v.files.map((f) => f.bytes),
        v.files.map((f) => f.sha256),
      ]);
    });
  }
  async referencedBlobs() {
    const rows = await this.q<{ sha256: string }>('SELECT DISTINCT sha256 FROM files UNION SELECT manifest_sha256 FROM versions');
    return new Set(rows.map((r) => r.sha256));
  }

  async insertDevice(d: NewDevice) {
    await this.q('INSERT INTO devices (id, name, token_hash, supernet, device_class, fingerprint, facts_json, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', [
      d.id,
      d.name,
      d.tokenHash,
      d.supernet ?? null,
      d.deviceClass ?? null,
      d.fingerprint ?? null,
      JSON.stringify(d.facts ?? {}),
      iso(),
    ]);
  }
  async device(id: string) {
    return (await this.q<DeviceRow>('SELECT * FROM devices WHERE id = $1', [id]))[0];
  }
  async deviceByTokenHash(hash: string) {
    return (await this.q<DeviceRow>('SELECT * FROM devices WHERE token_hash = $1', [hash]))[0];
  }
  async devices(page: { after?: { enrolledAt: string; id: string }; limit?: number } = {}) {
    const limit = page.limit ?? null;
    return page.after
      ? this.q<DeviceRow>('SELECT * FROM devices WHERE (enrolled_at, id) > ($1, $2) ORDER BY enrolled_at, id LIMIT $3', [page.after.enrolledAt, page.after.id, limit])
      : this.q<DeviceRow>('SELECT * FROM devices ORDER BY enrolled_at, id LIMIT $1', [limit]);
  }
  async touch(deviceIds: string[], replicaId: string) {
    const ids = [...new Set(deviceIds)].sort();
    await this.q(
      'WITH d AS (UPDATE devices SET last_seen = $1 WHERE id = ANY($2::text[]) RETURNING id) ' +
        'UPDATE presence SET seen_at = $1 WHERE device_id = ANY($2::text[]) AND replica_id = $3',
      [iso(), ids, replicaId],
    );
  }
  async setDeviceState(id: string, s: DeviceState) {
    await this.q(
      'UPDATE devices SET subnet_json = coalesce($1, subnet_json), subnet_id = coalesce($2, subnet_id), budget_json = coalesce($3, budget_json), package_version = coalesce($4, package_version) WHERE id = $5',
      [jsonOrNull(s.subnet), s.subnetId ?? null, jsonOrNull(s.budget), s.packageVersion ?? null, id],
    );
  }

  async putProfile(deviceId: string, sha256: string, json: string, summary: ProfileSummary) {
    await this.q(
      'INSERT INTO profiles (device_id, sha256, json, summary_json, uploaded_at, device_class) VALUES ($1, $2, $3, $4, $5, $6) ' +
        'ON CONFLICT (device_id) DO UPDATE SET sha256 = excluded.sha256, json = excluded.json, summary_json = excluded.summary_json, uploaded_at = excluded.uploaded_at, device_class = excluded.device_class',
      [deviceId, sha256, json, JSON.stringify(summary), summary.uploadedAt, summary.deviceClass],
    );
  }
  async profile(deviceId: string) {
    return (await this.q<ProfileRow>('SELECT * FROM profiles WHERE device_id = $1', [deviceId]))[0];
  }
  async profileSummaries(deviceIds: string[]) {
    const out = new Map<string, ProfileSummary>();
    if (!deviceIds.length) return out;
    for (const r of await this.q<{ device_id: string; summary_json: string }>('SELECT device_id, summary_json FROM profiles WHERE device_id = ANY($1::text[])', [deviceIds]))
      out.set(r.device_id, JSON.parse(r.summary_json) as ProfileSummary);
    return out;
  }
  async profileOfClass(deviceClass: string) {
    return (await this.q<ProfileRow>('SELECT * FROM profiles WHERE device_class = $1 ORDER BY uploaded_at DESC LIMIT 1', [deviceClass]))[0];
  }
  async profilesOfClass(deviceClass: string) {
    return this.q<ProfileRow>('SELECT * FROM profiles WHERE device_class = $1 ORDER BY uploaded_at DESC', [deviceClass]);
  }
  async putClassProfile(r: ClassProfileRow) {
    await this.q(
      'INSERT INTO class_profiles (device_class, sha256, json, devices, updated_at) VALUES ($1, $2, $3, $4, $5) ' +
        'ON CONFLICT (device_class) DO UPDATE SET sha256 = excluded.sha256, json = excluded.json, devices = excluded.devices, updated_at = excluded.updated_at',
      [r.device_class, r.sha256, r.json, r.devices, r.updated_at],
    );
  }
  async classProfile(deviceClass: string) {
    const r = (await this.q<ClassProfileRow>('SELECT * FROM class_profiles WHERE device_class = $1', [deviceClass]))[0];
    return r ? { ...r, devices: Number(r.devices) } : undefined;
  }

  async ingestTelemetry(batches: TelemetryBatch[]) {
    const out = new Map<string, IngestResult>();
    if (!batches.length) return out;
    const dev: string[] = [];
    const seq: number[] = [];
    const at: number[] = [];
    const kind: string[] = [];
    const data: string[] = [];
    const bySeq = new Map<string, TelemetryEvent>();
    const maxSeq = new Map<string, number>();
    for (const b of batches)
      for (const e of b.events) {
        const k = `${b.deviceId}\u0000${e.seq}`;
        if (bySeq.has(k)) continue; // the same event twice in one batch (a resend racing its original)
        bySeq.set(k, e);
        dev.push(b.deviceId);
        seq.push(e.seq);
        at.push(e.at);
        kind.push(e.kind);
        data.push(JSON.stringify(e.data));
        maxSeq.set(b.deviceId, Math.max(maxSeq.get(b.deviceId) ?? 0, e.seq));
      }
    const ids = [...maxSeq.keys()].sort();
    const rows = await this.q<{ k: string; id: string; seq: number }>(
      'WITH ins AS (INSERT INTO telemetry (device_id, seq, at, kind, data_json, received_at) ' +
        'SELECT d, s, a, k, j, $6 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[]) AS t(d, s, a, k, j) ' +
        'ON CONFLICT DO NOTHING RETURNING device_id, seq), ' +
        'upd AS (UPDATE devices SET telemetry_seq = greatest(devices.telemetry_seq, v.s), last_seen = $6 ' +
        'FROM unnest($7::text[], $8::bigint[]) AS v(id, s) WHERE devices.id = v.id RETURNING devices.id, devices.telemetry_seq) ' +
        "SELECT 'i' AS k, device_id AS id, seq FROM ins UNION ALL SELECT 'u' AS k, id, telemetry_seq AS seq FROM upd",
      [dev, seq, at, kind, data, iso(), ids, ids.map((id) => maxSeq.get(id)!)],
    );
    for (const b of batches) out.set(b.deviceId, { seq: 0, added: [] });
    const added = new Set<string>();
    for (const r of rows) {
      if (r.k === 'u') out.get(r.id)!.seq = r.seq;
      else added.add(`${r.id}\u0000${r.seq}`);
    }
    // new events in the order they came
    for (const [k, e] of bySeq) if (added.has(k)) out.get(k.slice(0, k.indexOf('\u0000')))!.added.push(e);
    return out;
  }
  async recentTelemetry(deviceId: string, limit = 20): Promise<StoredTelemetryRow[]> {
    const rows = await this.q<{ seq: number; at: number; kind: string; data_json: string; received_at: string }>(
      'SELECT seq, at, kind, data_json, received_at FROM telemetry WHERE device_id = $1 ORDER BY seq DESC LIMIT $2',
      [deviceId, limit],
    );
    return rows.map((r) => ({ seq: r.seq, at: r.at, kind: r.kind, data: JSON.parse(r.data_json) as Record<string, unknown>, receivedAt: r.received_at }));
  }
  async telemetryCount(deviceId: string) {
    return (await this.q<{ n: number }>('SELECT count(*) AS n FROM telemetry WHERE device_id = $1', [deviceId]))[0]!.n;
  }

  async insertCommand(c: { id: string; deviceId: string; type: CommandType; payload: Record<string, unknown> }): Promise<CommandInfo> {
    const rows = await this.q<CommandRow>('INSERT INTO commands (id, device_id, type, payload_json, status, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *', [
      c.id,
      c.deviceId,
      c.type,
      JSON.stringify(c.payload),
      'pending',
      iso(),
    ]);
    return commandInfo(rows[0]!);
  }
  async command(id: string) {
    const r = (await this.q<CommandRow>('SELECT * FROM commands WHERE id = $1', [id]))[0];
    return r ? commandInfo(r) : undefined;
  }
  async openCommands(deviceId: string) {
    return (await this.q<CommandRow>("SELECT * FROM commands WHERE device_id = $1 AND status IN ('pending', 'sent') ORDER BY seq", [deviceId])).map(commandInfo);
  }
  async markSent(ids: string[]) {
    if (!ids.length) return;
    await this.q("UPDATE commands SET status = 'sent', sent_at = $1 WHERE id = ANY($2::text[]) AND status IN ('pending', 'sent')", [iso(), [...ids].sort()]);
  }
  async finishCommand(deviceId: string, id: string, ok: boolean, result: unknown, error: unknown) {
    const r = (
      await this.q<CommandRow>(
        "UPDATE commands SET status = $1, done_at = $2, result_json = $3, error_json = $4 WHERE id = $5 AND device_id = $6 AND status IN ('pending', 'sent') RETURNING *",
        [ok ? 'acked' : 'failed', iso(), jsonOrNull(result), jsonOrNull(error), id, deviceId],
      )
    )[0];
    return r ? commandInfo(r) : undefined;
  }
  async counts(): Promise<StoreCounts> {
    const c = (
      await this.q<{ supernets: number; versions: number; devices: number; telemetry: number }>(
        'SELECT (SELECT count(DISTINCT name) FROM versions) AS supernets, (SELECT count(*) FROM versions) AS versions, (SELECT count(*) FROM devices) AS devices, (SELECT count(*) FROM telemetry) AS telemetry',
      )
    )[0]!;
    const commands: Record<string, number> = {};
    for (const r of await this.q<{ status: string; n: number }>('SELECT status, count(*) AS n FROM commands GROUP BY status')) commands[r.status] = r.n;
    return { ...c, commands };
  }

  async claimPresence(deviceId: string, replicaId: string): Promise<Presence> {
    const seenAt = iso();
    const rows = await this.q<{ epoch: number }>(
      'INSERT INTO presence (device_id, replica_id, epoch, seen_at) VALUES ($1, $2, 1, $3) ' +
        'ON CONFLICT (device_id) DO UPDATE SET replica_id = excluded.replica_id, epoch = presence.epoch + 1, seen_at = excluded.seen_at RETURNING epoch',
      [deviceId, replicaId, seenAt],
    );
    return { deviceId, replicaId, epoch: rows[0]!.epoch, seenAt };
  }
  async releasePresence(p: Presence) {
    return (await this.q("UPDATE presence SET replica_id = '' WHERE device_id = $1 AND replica_id = $2 AND epoch = $3 RETURNING 1", [p.deviceId, p.replicaId, p.epoch])).length > 0;
  }
  async presence(deviceIds: string[]) {
    const out = new Map<string, Presence>();
    if (!deviceIds.length) return out;
    for (const r of await this.q<PresenceRow>("SELECT * FROM presence WHERE device_id = ANY($1::text[]) AND replica_id <> ''", [deviceIds]))
      out.set(r.device_id, { deviceId: r.device_id, replicaId: r.replica_id, epoch: r.epoch, seenAt: r.seen_at });
    return out;
  }
  async clearPresence(replicaId: string) {
    await this.q("UPDATE presence SET replica_id = '' WHERE replica_id = $1", [replicaId]);
  }
}
