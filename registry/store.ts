/**
 * The registry's state, as one interface with two engines: SQLite (registry/stores/sqlite.ts, the
 * one-process default) and PostgreSQL (registry/stores/postgres.ts, shared by replicas). Every
 * method is async so the same routes and hub run on either. Blob contents live in a BlobStore
 * (registry/blobs.ts); the store holds only their digests.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
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

export const iso = (ms = Date.now()) => new Date(ms).toISOString();

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
  /** the version of its supernet's package the device last said it serves */
  package_version: string | null;
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
/** A device class's aggregate profile (registry/class-profiles.ts), recomputed at each upload of that class. */
export interface ClassProfileRow {
  device_class: string;
  sha256: string;
  json: string;
  /** how many devices' profiles it aggregates */
  devices: number;
  updated_at: string;
}
export interface CommandRow {
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
export interface StoredTelemetryRow {
  seq: number;
  at: number;
  kind: string;
  data: Record<string, unknown>;
  receivedAt: string;
}

export interface NewDevice {
  id: string;
  name: string;
  tokenHash: string;
  supernet?: string | undefined;
  deviceClass?: string | undefined;
  fingerprint?: string | undefined;
  facts: unknown;
}
export interface NewVersion {
  name: string;
  version: string;
  manifestSha256: string;
  manifestJson: string;
  files: FileRow[];
}
export interface DeviceState {
  subnet?: unknown;
  subnetId?: string | null;
  budget?: unknown;
  packageVersion?: string | null;
}

/** Telemetry frames of one device, as received. */
export interface TelemetryBatch {
  deviceId: string;
  events: TelemetryEvent[];
}
/** Per device: the highest stored seq (what the hub acks) and the events that were new. */
export interface IngestResult {
  seq: number;
  added: TelemetryEvent[];
}

/** Which replica holds a device's WebSocket. A claim raises the epoch; only the holder of the current epoch may release it. */
export interface Presence {
  deviceId: string;
  replicaId: string;
  epoch: number;
  seenAt: string;
}

export interface StoreCounts {
  supernets: number;
  versions: number;
  devices: number;
  telemetry: number;
  commands: Record<string, number>;
}

export interface RegistryStore {
  readonly engine: 'sqlite' | 'postgres';
  close(): Promise<void>;

  setting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;
  /** Stores `value` only when the key is absent; returns what is stored (so concurrent replicas agree). */
  settingOnce(key: string, value: string): Promise<string>;

  version(name: string, version: string): Promise<VersionRow | undefined>;
  versionsOf(name: string): Promise<VersionRow[]>;
  allVersions(): Promise<VersionRow[]>;
  files(name: string, version: string): Promise<FileRow[]>;
  file(name: string, version: string, path: string): Promise<FileRow | undefined>;
  /** A version and its files in one transaction (blobs must already be in place); throws on a duplicate. */
  insertVersion(v: NewVersion): Promise<void>;
  /** Every digest a committed version references (blob garbage collection keeps these). */
  referencedBlobs(): Promise<Set<string>>;

  insertDevice(d: NewDevice): Promise<void>;
  device(id: string): Promise<DeviceRow | undefined>;
  deviceByTokenHash(hash: string): Promise<DeviceRow | undefined>;
  /** Devices in enrollment order, `limit` after the cursor (the last row's `enrolled_at` and `id`). */
  devices(page?: { after?: { enrolledAt: string; id: string }; limit?: number }): Promise<DeviceRow[]>;
  /** Batched heartbeat: last_seen for these devices, and the presence rows this replica holds. */
  touch(deviceIds: string[], replicaId: string): Promise<void>;
  setDeviceState(id: string, s: DeviceState): Promise<void>;

  putProfile(deviceId: string, sha256: string, json: string, summary: ProfileSummary): Promise<void>;
  profile(deviceId: string): Promise<ProfileRow | undefined>;
  /** Profile summaries of these devices in one round trip; a device without a profile is absent. */
  profileSummaries(deviceIds: string[]): Promise<Map<string, ProfileSummary>>;
  /** The newest profile uploaded by a device of this class. */
  profileOfClass(deviceClass: string): Promise<ProfileRow | undefined>;
  /** Every device's profile of this class, newest first. */
  profilesOfClass(deviceClass: string): Promise<ProfileRow[]>;
  putClassProfile(row: ClassProfileRow): Promise<void>;
  classProfile(deviceClass: string): Promise<ClassProfileRow | undefined>;

  /**
   * Stores several devices' telemetry in one transaction of multi-row inserts; an event already
   * stored (same device and seq, e.g. resent after a lost ack) is ignored.
   */
  ingestTelemetry(batches: TelemetryBatch[]): Promise<Map<string, IngestResult>>;
  recentTelemetry(deviceId: string, limit?: number): Promise<StoredTelemetryRow[]>;
  telemetryCount(deviceId: string): Promise<number>;

  insertCommand(c: { id: string; deviceId: string; type: CommandType; payload: Record<string, unknown> }): Promise<CommandInfo>;
  command(id: string): Promise<CommandInfo | undefined>;
  /** Pending and sent commands of a device, oldest first. */
  openCommands(deviceId: string): Promise<CommandInfo[]>;
  markSent(ids: string[]): Promise<void>;
  /** Records an agent's outcome once; undefined when the command is unknown, not this device's, or already done. */
  finishCommand(deviceId: string, id: string, ok: boolean, result: unknown, error: unknown): Promise<CommandInfo | undefined>;
  counts(): Promise<StoreCounts>;

  claimPresence(deviceId: string, replicaId: string): Promise<Presence>;
  /** Removes the row only if it is still this claim (a newer claim by another replica stays). */
  releasePresence(p: Presence): Promise<boolean>;
  presence(deviceIds: string[]): Promise<Map<string, Presence>>;
  /** At a replica's start: rows a previous run of it left behind. */
  clearPresence(replicaId: string): Promise<void>;
}

export function commandInfo(r: CommandRow): CommandInfo {
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

export function jsonOrNull(v: unknown): string | null {
  return v === undefined || v === null ? null : JSON.stringify(v);
}
