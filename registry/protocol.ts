/**
 * The registry's wire protocol: zod schemas for every HTTP body and every WebSocket frame, shared
 * by the server (registry/) and the device side (agent/registry-client.ts) so both validate the
 * same contract. Documented for people in registry/openapi.yaml.
 */
import { z } from 'zod';
import { MAX_SEGMENT, SEGMENT_RE } from '../runtime/names.js';

export const API_PREFIX = '/v1';
export const WS_PATH = '/v1/ws';
export const MSGPACK_TYPE = 'application/msgpack';

/** Stable error codes of the HTTP and WebSocket API (tests and clients look at these, never messages). */
export const ERROR_CODES = [
  'ERR_AUTH_MISSING', // 401: no bearer token
  'ERR_AUTH_INVALID', // 401: unknown token
  'ERR_FORBIDDEN', // 403: a valid token without the right to this resource
  'ERR_VALIDATION', // 400: a body, query, parameter or frame does not match its schema
  'ERR_BODY_TOO_LARGE', // 413
  'ERR_UNSUPPORTED_MEDIA', // 415
  'ERR_NOT_FOUND', // 404
  'ERR_CONFLICT', // 409: e.g. the version is already published with other content
  'ERR_PACKAGE_MANIFEST', // 400: manifest invalid or files do not match it
  'ERR_FORMAT_UNSUPPORTED', // 400: the manifest's format is one this registry does not know (upgrade it)
  'ERR_PACKAGE_DIGEST', // 400: a file's sha256 differs from the manifest
  'ERR_PACKAGE_SIZE', // 400: a file's size differs from the manifest
  'ERR_RANGE', // 416
  'ERR_TUF_DISABLED', // 404: this registry runs without TUF keys (no --keys)
  'ERR_TUF_SIGNATURE', // 400: uploaded TUF metadata is not signed by the threshold of its role's keys
  'ERR_TUF_VERSION', // 409: uploaded TUF metadata is not the next version (another publisher was first: retry)
  'ERR_TUF_INVALID', // 400: uploaded TUF metadata does not parse or names targets this registry does not hold
  'ERR_NO_PROFILE', // 409: the device (class) has no usable profile yet
  'ERR_PROFILE_INVALID', // 400/409: a profile that cannot drive a search
  'ERR_NO_ACCURACY_PREDICTOR', // 409: the package has no file with role 'accuracy-predictor'
  'ERR_CLASS_PROFILE_NOT_FOUND', // 404: no device of that class has uploaded a profile
  'ERR_PREDICTOR_INVALID', // 409
  'ERR_BUDGET_INFEASIBLE', // 422: not even the smallest subnet fits
  'ERR_BUDGET_INVALID', // 400
  'ERR_CONFIG_INVALID', // 400: a subnet config outside the space
  'ERR_NAME_INVALID', // 400: a package name that is not one path segment (^[A-Za-z0-9][A-Za-z0-9._-]*$)
  'ERR_VERSION_INVALID', // 400: a version that is not one path segment
  'ERR_PATH_INVALID', // 400: a file path with '.', '..', an absolute or an invalid segment
  'ERR_NOT_READY', // 503: GET /readyz while the store cannot be reached
  'ERR_INTERNAL', // 500
] as const;
export type ApiErrorCode = (typeof ERROR_CODES)[number];

export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

const Name = z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lowercase letters, digits, . _ -').max(100);
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits');
const Facts = z.record(z.string(), z.unknown());
const Millis = z.number().int().nonnegative();

// ---------- supernets ----------

/**
 * Publish body (msgpack, Content-Type application/msgpack): every file of the package by name,
 * `manifest.json` included, as raw bytes. The registry verifies every size and sha256 against the
 * manifest before anything becomes visible.
 */
export const PublishBody = z
  .object({
    /** keys are checked as paths by the route (ERR_PATH_INVALID) */
    files: z.record(z.string(), z.instanceof(Uint8Array)),
  })
  .strict();
export type PublishBody = z.infer<typeof PublishBody>;

export const FileInfo = z.object({ path: z.string(), role: z.string(), bytes: z.number(), sha256: Sha256, url: z.string() });
export type FileInfo = z.infer<typeof FileInfo>;

export const VersionInfo = z.object({
  name: z.string(),
  version: z.string(),
  manifestSha256: Sha256,
  publishedAt: z.string(),
  manifest: z.record(z.string(), z.unknown()),
  files: z.array(FileInfo),
});
export type VersionInfo = z.infer<typeof VersionInfo>;

export const PublishResult = z.object({ name: z.string(), version: z.string(), manifestSha256: Sha256, created: z.boolean(), files: z.number() });
export type PublishResult = z.infer<typeof PublishResult>;

export const SupernetSummary = z.object({
  name: z.string(),
  latest: z.string(),
  versions: z.array(z.object({ version: z.string(), manifestSha256: Sha256, publishedAt: z.string() })),
});
export type SupernetSummary = z.infer<typeof SupernetSummary>;

// ---------- devices ----------

export const EnrollBody = z
  .object({
    name: z.string().min(1).max(200),
    /** the supernet this device runs; when set, the device may read only that supernet */
    supernet: Name.optional(),
    deviceClass: z.string().min(1).max(200).optional(),
    fingerprint: z.string().max(200).optional(),
    facts: Facts.optional(),
  })
  .strict();
export type EnrollBody = z.infer<typeof EnrollBody>;

export const EnrollResult = z.object({ deviceId: z.string(), token: z.string() });
export type EnrollResult = z.infer<typeof EnrollResult>;

export const BudgetSchema = z
  .object({
    latencyMs: z.number().positive().finite().optional(),
    memoryMB: z.number().positive().finite().optional(),
  })
  .strict();
export type BudgetBody = z.infer<typeof BudgetSchema>;

/** OFA's arch dict; checked against the supernet's space where the registry knows it. */
export const SubnetConfigSchema = z
  .object({
    ks: z.array(z.number().int()).max(256),
    e: z.array(z.number().int()).max(256),
    d: z.array(z.number().int()).max(64),
    image_size: z.number().int().positive(),
  })
  .strict();

export const TelemetryKind = z.enum(['swap', 'latency', 'error', 'status', 'budget', 'command']);
export const TelemetryEvent = z
  .object({
    /** per-device sequence number, 1, 2, 3, ... assigned by the agent and kept across restarts */
    seq: z.number().int().positive(),
    /** epoch milliseconds on the device */
    at: Millis,
    kind: TelemetryKind,
    data: z.record(z.string(), z.unknown()),
  })
  .strict();
export type TelemetryEvent = z.infer<typeof TelemetryEvent>;

export const StoredTelemetry = TelemetryEvent.extend({ receivedAt: z.string() });

export const ProfileSummary = z.object({
  sha256: Sha256,
  uploadedAt: z.string(),
  format: z.string().nullable(),
  deviceClass: z.string().nullable(),
  fingerprint: z.string().nullable(),
  ep: z.string().nullable(),
  threads: z.number().nullable(),
  resolutions: z.array(z.number()),
  hasLatency: z.boolean(),
  hasMemory: z.boolean(),
  bytes: z.number(),
});
export type ProfileSummary = z.infer<typeof ProfileSummary>;

export const DeviceInfo = z.object({
  id: z.string(),
  name: z.string(),
  supernet: z.string().nullable(),
  deviceClass: z.string().nullable(),
  fingerprint: z.string().nullable(),
  facts: Facts,
  enrolledAt: z.string(),
  lastSeen: z.string().nullable(),
  online: z.boolean(),
  subnet: z.unknown().nullable(),
  subnetId: z.string().nullable(),
  budget: z.unknown().nullable(),
  /** the version of its supernet's package the device last said it serves (null: not said yet, or an older agent) */
  packageVersion: z.string().nullable(),
  profile: ProfileSummary.nullable(),
  telemetrySeq: z.number(),
  recentTelemetry: z.array(StoredTelemetry).optional(),
});
export type DeviceInfo = z.infer<typeof DeviceInfo>;

// ---------- best-model query ----------

export const QueryBody = z
  .object({
    supernet: Name,
    version: z.string().min(1).max(100).default('latest'),
    device: z.string().min(1).max(100).optional(),
    deviceClass: z.string().min(1).max(200).optional(),
    budget: BudgetSchema,
    /** seed of the evolutionary search: same inputs and seed give the same answer */
    seed: z.number().int().nonnegative().max(2 ** 31).optional(),
    /** 'ladder': answer from the Pareto ladder cached for this profile (built on first use); default 'search' */
    from: z.enum(['search', 'ladder']).optional(),
  })
  .strict()
  .refine((q) => (q.device === undefined) !== (q.deviceClass === undefined), { message: 'give exactly one of device or deviceClass', path: ['device'] })
  .refine((q) => q.budget.latencyMs !== undefined || q.budget.memoryMB !== undefined, { message: 'give a latency and/or memory budget', path: ['budget'] });
export type QueryBody = z.input<typeof QueryBody>;

export const QueryResult = z.object({
  supernet: z.string(),
  version: z.string(),
  deviceId: z.string().nullable(),
  deviceClass: z.string().nullable(),
  profileSha256: Sha256,
  budget: BudgetSchema,
  subnet: SubnetConfigSchema,
  subnetId: z.string(),
  predicted: z.object({ accuracy: z.number(), latencyMs: z.number().nullable(), memoryMB: z.number().nullable(), macs: z.number() }),
  onnx: z.string(),
  searchMs: z.number(),
  cached: z.boolean(),
  /** what answered: the search, or a rung of the profile's Pareto ladder */
  source: z.enum(['search', 'ladder']).optional(),
});
export type QueryResult = z.infer<typeof QueryResult>;

// ---------- commands ----------

export const CommandBody = z.discriminatedUnion('type', [
  z.object({ type: z.literal('switch'), subnet: SubnetConfigSchema, waitMs: z.number().int().min(0).max(60_000).optional() }).strict(),
  z.object({ type: z.literal('budget'), budget: BudgetSchema, waitMs: z.number().int().min(0).max(60_000).optional() }).strict(),
  z.object({ type: z.literal('unpin'), waitMs: z.number().int().min(0).max(60_000).optional() }).strict(),
]);
export type CommandBody = z.infer<typeof CommandBody>;
export type CommandType = CommandBody['type'];

export const CommandStatus = z.enum(['pending', 'sent', 'acked', 'failed']);
export type CommandStatus = z.infer<typeof CommandStatus>;

export const CommandInfo = z.object({
  id: z.string(),
  deviceId: z.string(),
  type: z.enum(['switch', 'budget', 'unpin']),
  payload: z.record(z.string(), z.unknown()),
  status: CommandStatus,
  createdAt: z.string(),
  sentAt: z.string().nullable(),
  doneAt: z.string().nullable(),
  result: z.unknown().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type CommandInfo = z.infer<typeof CommandInfo>;

// ---------- WebSocket frames (msgpack) ----------

/**
 * Agent → registry. `hello` drops keys it does not know instead of refusing the frame, so an agent
 * newer than its registry (one that says more in its hello) still connects; the other frames are strict.
 */
export const AgentFrame = z.discriminatedUnion('t', [
  z
    .object({
      t: z.literal('hello'),
      agent: z.string().max(100).optional(),
      subnet: SubnetConfigSchema.nullable().optional(),
      subnetId: z.string().max(500).nullable().optional(),
      budget: BudgetSchema.nullable().optional(),
      /** the version of its supernet's package the agent serves */
      packageVersion: z.string().regex(SEGMENT_RE).max(MAX_SEGMENT).optional(),
    })
    .strip(),
  z.object({ t: z.literal('telemetry'), events: z.array(TelemetryEvent).min(1).max(1000) }).strict(),
  z
    .object({
      t: z.literal('ack'),
      id: z.string().max(100),
      ok: z.boolean(),
      result: z.record(z.string(), z.unknown()).optional(),
      error: z.object({ code: z.string().max(100), message: z.string().max(2000) }).strict().optional(),
    })
    .strict(),
]);
export type AgentFrame = z.infer<typeof AgentFrame>;

/** Registry → agent. */
export const RegistryFrame = z.discriminatedUnion('t', [
  z.object({ t: z.literal('welcome'), deviceId: z.string(), telemetryAck: z.number().int().nonnegative() }),
  z.object({ t: z.literal('telemetry-ack'), seq: z.number().int().nonnegative() }),
  z.object({
    t: z.literal('command'),
    id: z.string(),
    type: z.enum(['switch', 'budget', 'unpin']),
    payload: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
  }),
  z.object({ t: z.literal('error'), code: z.string(), message: z.string() }),
]);
export type RegistryFrame = z.infer<typeof RegistryFrame>;

export const StatsResult = z.object({
  supernets: z.number(),
  versions: z.number(),
  blobs: z.number(),
  devices: z.number(),
  connected: z.number(),
  telemetryEvents: z.number(),
  commands: z.record(z.string(), z.number()),
});
export type StatsResult = z.infer<typeof StatsResult>;

/** One-line summary of zod issues for error messages. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}
