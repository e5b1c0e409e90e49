/**
 * Versioned schema migrations, one list for both engines: each step has its SQLite and its
 * PostgreSQL text. A store applies, in order and in one transaction each, the steps with a
 * version above the highest one recorded in `schema_migrations`. Step 1 is written with IF NOT
 * EXISTS, so data directories made before migrations were recorded upgrade in place.
 */
export interface Migration {
  version: number;
  name: string;
  sqlite: string;
  postgres: string;
}

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'initial tables',
    sqlite: `
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
CREATE INDEX IF NOT EXISTS commands_open ON commands (device_id, status);`,
    postgres: `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  seq BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL, version TEXT NOT NULL,
  manifest_sha256 TEXT NOT NULL, manifest_json TEXT NOT NULL, published_at TEXT NOT NULL,
  UNIQUE (name, version));
CREATE TABLE IF NOT EXISTS files (
  name TEXT NOT NULL, version TEXT NOT NULL, path TEXT NOT NULL, role TEXT NOT NULL,
  bytes BIGINT NOT NULL, sha256 TEXT NOT NULL,
  PRIMARY KEY (name, version, path));
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
  supernet TEXT, device_class TEXT, fingerprint TEXT, facts_json TEXT NOT NULL,
  enrolled_at TEXT NOT NULL, last_seen TEXT,
  subnet_json TEXT, subnet_id TEXT, budget_json TEXT,
  telemetry_seq BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS profiles (
  device_id TEXT PRIMARY KEY REFERENCES devices(id), sha256 TEXT NOT NULL, json TEXT NOT NULL,
  summary_json TEXT NOT NULL, uploaded_at TEXT NOT NULL, device_class TEXT);
CREATE INDEX IF NOT EXISTS profiles_class ON profiles (device_class, uploaded_at);
CREATE TABLE IF NOT EXISTS telemetry (
  device_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, kind TEXT NOT NULL,
  data_json TEXT NOT NULL, received_at TEXT NOT NULL,
  PRIMARY KEY (device_id, seq));
CREATE TABLE IF NOT EXISTS commands (
  seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, device_id TEXT NOT NULL,
  type TEXT NOT NULL, payload_json TEXT NOT NULL, status TEXT NOT NULL,
  created_at TEXT NOT NULL, sent_at TEXT, done_at TEXT, result_json TEXT, error_json TEXT);
CREATE INDEX IF NOT EXISTS commands_open ON commands (device_id, status);`,
  },
  {
    version: 2,
    name: 'device presence',
    sqlite: `
CREATE TABLE presence (
  device_id TEXT PRIMARY KEY, replica_id TEXT NOT NULL, epoch INTEGER NOT NULL, seen_at TEXT NOT NULL);
CREATE INDEX presence_replica ON presence (replica_id);
CREATE INDEX devices_order ON devices (enrolled_at, id);`,
    postgres: `
CREATE TABLE presence (
  device_id TEXT PRIMARY KEY, replica_id TEXT NOT NULL, epoch BIGINT NOT NULL, seen_at TEXT NOT NULL);
CREATE INDEX presence_replica ON presence (replica_id);
CREATE INDEX devices_order ON devices (enrolled_at, id);`,
  },
  {
    version: 3,
    name: 'class profiles',
    sqlite: `
CREATE TABLE class_profiles (
  device_class TEXT PRIMARY KEY, sha256 TEXT NOT NULL, json TEXT NOT NULL, devices INTEGER NOT NULL, updated_at TEXT NOT NULL);`,
    postgres: `
CREATE TABLE class_profiles (
  device_class TEXT PRIMARY KEY, sha256 TEXT NOT NULL, json TEXT NOT NULL, devices BIGINT NOT NULL, updated_at TEXT NOT NULL);`,
  },
]);

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
