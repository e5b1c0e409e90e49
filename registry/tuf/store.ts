/**
 * Where the TUF repository keeps its metadata: every version of every role's signed JSON, exactly
 * as served. A small interface so that another database can hold it; SQLite (the registry's own
 * database) implements it here.
 */
import type Database from 'better-sqlite3';

export type TufRole = 'root' | 'targets' | 'snapshot' | 'timestamp';

export interface TufStore {
  /** the signed JSON of `role` at `version` */
  get(role: TufRole, version: number): Promise<string | undefined>;
  /** the highest version of `role` */
  latest(role: TufRole): Promise<{ version: number; json: string } | undefined>;
  /** stores a new version; false when that version exists already (someone else was first) */
  put(role: TufRole, version: number, json: string): Promise<boolean>;
}

export class SqliteTufStore implements TufStore {
  private readonly stmts;

  constructor(db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS tuf_metadata (
      role TEXT NOT NULL, version INTEGER NOT NULL, json TEXT NOT NULL, stored_at TEXT NOT NULL,
      PRIMARY KEY (role, version)) WITHOUT ROWID`);
    this.stmts = {
      get: db.prepare<[string, number], { json: string }>('SELECT json FROM tuf_metadata WHERE role = ? AND version = ?'),
      latest: db.prepare<[string], { version: number; json: string }>('SELECT version, json FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT 1'),
      put: db.prepare('INSERT OR IGNORE INTO tuf_metadata (role, version, json, stored_at) VALUES (?, ?, ?, ?)'),
    };
  }

  get(role: TufRole, version: number): Promise<string | undefined> {
    return Promise.resolve(this.stmts.get.get(role, version)?.json);
  }

  latest(role: TufRole): Promise<{ version: number; json: string } | undefined> {
    return Promise.resolve(this.stmts.latest.get(role));
  }

  put(role: TufRole, version: number, json: string): Promise<boolean> {
    return Promise.resolve(this.stmts.put.run(role, version, json, new Date().toISOString()).changes === 1);
  }
}
