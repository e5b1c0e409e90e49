/**
 * Versioned schema migrations, one list for both engines. Each step is written once; the few words
 * where SQLite and PostgreSQL differ are placeholders that `forEngine` fills in:
 *   {serial}  an auto-incrementing primary key (INTEGER ... AUTOINCREMENT / BIGSERIAL)
 *   {int}     a 64-bit integer (INTEGER / BIGINT)
 *   {keyed}   after a table whose primary key is its only access path (WITHOUT ROWID / nothing)
 * A store applies, in order and in one transaction each, the steps with a version above the highest
 * one recorded in `schema_migrations`. Step 1 is written with IF NOT EXISTS, so data directories made
 * before migrations were recorded upgrade in place.
 */
export interface Migration {
  version: number;
  name: string;
  sqlite: string;
  postgres: string;
}

type Engine = 'sqlite' | 'postgres';

const WORDS: Record<Engine, Record<string, string>> = {
  sqlite: { serial: 'INTEGER PRIMARY KEY AUTOINCREMENT', int: 'INTEGER', keyed: ' WITHOUT ROWID' },
  postgres: { serial: 'BIGSERIAL PRIMARY KEY', int: 'BIGINT', keyed: '' },
};

/** The step's text for one engine; an unknown placeholder is a programming error. */
export function forEngine(sql: string, engine: Engine): string {
  return sql.replace(/\{(\w+)\}/g, (_, w: string) => {
    const v = WORDS[engine][w];
    if (v === undefined) throw new Error(`migration placeholder {${w}} is not defined`);
    return v;
  });
}

const step = (version: number, name: string, sql: string): Migration => ({ version, name, sqlite: forEngine(sql, 'sqlite'), postgres: forEngine(sql, 'postgres') });

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  step(
    1,
    'initial tables',
    `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  seq {serial},
  name TEXT NOT NULL, version TEXT NOT NULL,
  manifest_sha256 TEXT NOT NULL, manifest_json TEXT NOT NULL, published_at TEXT NOT NULL,
  UNIQUE (name, version));
CREATE TABLE IF NOT EXISTS files (
  name TEXT NOT NULL, version TEXT NOT NULL, path TEXT NOT NULL, role TEXT NOT NULL,
  bytes {int} NOT NULL, sha256 TEXT NOT NULL,
  PRIMARY KEY (name, version, path)){keyed};
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
  supernet TEXT, device_class TEXT, fingerprint TEXT, facts_json TEXT NOT NULL,
  enrolled_at TEXT NOT NULL, last_seen TEXT,
  subnet_json TEXT, subnet_id TEXT, budget_json TEXT,
  telemetry_seq {int} NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS profiles (
  device_id TEXT PRIMARY KEY REFERENCES devices(id), sha256 TEXT NOT NULL, json TEXT NOT NULL,
  summary_json TEXT NOT NULL, uploaded_at TEXT NOT NULL, device_class TEXT);
CREATE TABLE IF NOT EXISTS telemetry (
  device_id TEXT NOT NULL, seq {int} NOT NULL, at {int} NOT NULL, kind TEXT NOT NULL,
  data_json TEXT NOT NULL, received_at TEXT NOT NULL,
  PRIMARY KEY (device_id, seq)){keyed};
CREATE TABLE IF NOT EXISTS commands (
  seq {serial}, id TEXT NOT NULL UNIQUE, device_id TEXT NOT NULL,
  type TEXT NOT NULL, payload_json TEXT NOT NULL, status TEXT NOT NULL,
  created_at TEXT NOT NULL, sent_at TEXT, done_at TEXT, result_json TEXT, error_json TEXT);
CREATE INDEX IF NOT EXISTS commands_open ON commands (device_id, status);`,
  ),
  step(
    2,
    'device presence',
    `
CREATE TABLE presence (
  device_id TEXT PRIMARY KEY, replica_id TEXT NOT NULL, epoch {int} NOT NULL, seen_at TEXT NOT NULL);
CREATE INDEX presence_replica ON presence (replica_id);
CREATE INDEX devices_order ON devices (enrolled_at, id);`,
  ),
  step(
    3,
    'class profiles',
    `
CREATE TABLE class_profiles (
  device_class TEXT PRIMARY KEY, sha256 TEXT NOT NULL, json TEXT NOT NULL, devices {int} NOT NULL, updated_at TEXT NOT NULL);`,
  ),
  // step 1 of the PostgreSQL text carried this index and SQLite's did not; now both have it
  step(4, 'profiles by device class', `CREATE INDEX IF NOT EXISTS profiles_class ON profiles (device_class, uploaded_at);`),
  // the version of its supernet's package a device serves (hello frames, package-updated telemetry)
  step(5, 'device package version', `ALTER TABLE devices ADD COLUMN package_version TEXT;`),
]);

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
