/**
 * Supernet packages (format nestswap.package/1): a directory whose manifest.json names every file
 * with its sha256 and size. Loading verifies every digest and size before anything is returned, so
 * a corrupt, truncated or mismatched package never loads halfway.
 *
 * File access is injected (`PackageSource`) so the loader runs in Node and in browsers alike.
 */
import { z } from 'zod';
import { ArchSchema, parseArch, supernetTensorShapes, type Arch } from './arch.js';
import { NestswapError } from './errors.js';
import { assertName, assertRelativePath, assertVersion, isRelativePath, isSegment } from './names.js';
import { Space } from './space.js';

export interface PackageSource {
  /** Reads a file of the package; rejects when it does not exist. */
  read(path: string): Promise<Uint8Array>;
  /** Where the package lives, for messages. */
  readonly location: string;
}

const FileEntry = z
  .object({
    path: z.string().refine(isRelativePath, 'a relative path of names matching ^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    role: z.string(),
    bytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'),
  })
  .strict();

export const ManifestSchema = z
  .object({
    format: z.literal('nestswap.package/1'),
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
    version: z.string().refine(isSegment, 'a version matching ^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    family: z.string().min(1),
    trained: z.boolean(),
    created: z.string().optional(),
    producer: z.string().optional(),
    arch: ArchSchema,
    input: z
      .object({
        shape: z.array(z.number().int().positive()),
        dtype: z.literal('float32'),
        range: z.tuple([z.number(), z.number()]),
        layout: z.literal('NCHW'),
        mean: z.array(z.number()),
        std: z.array(z.number()),
        labels: z.array(z.string()).nullable().optional(),
      })
      .strict(),
    calibration: z
      .object({
        file: z.string(),
        count: z.number().int().positive(),
        batch: z.number().int().positive(),
        dtype: z.literal('uint8'),
        scale: z.number().positive(),
        shape: z.array(z.number().int().positive()),
      })
      .strict(),
    files: z.array(FileEntry).min(1),
    dataset: z.record(z.string(), z.unknown()).optional(),
    training: z.record(z.string(), z.unknown()).optional(),
    accuracy: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export type Manifest = z.infer<typeof ManifestSchema>;
export type FileEntry = z.infer<typeof FileEntry>;

export interface TensorData {
  shape: number[];
  data: Float32Array;
}

const TensorIndex = z
  .object({
    format: z.literal('nestswap.tensors/1'),
    byteOrder: z.literal('little'),
    tensors: z.record(
      z.string(),
      z
        .object({
          dtype: z.literal('float32'),
          shape: z.array(z.number().int().nonnegative()),
          offset: z.number().int().nonnegative(),
          length: z.number().int().nonnegative(),
        })
        .strict(),
    ),
  })
  .strict();

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

function decodeJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new NestswapError('ERR_PACKAGE_MANIFEST', `${what} is not valid JSON.`, { cause });
  }
}

/** The manifest format this nestswap reads; a package in any other (e.g. a newer) format is refused. */
export const MANIFEST_FORMAT = 'nestswap.package/1';

/** Refuses a manifest whose `format` this nestswap does not know, before its shape is checked. */
export function checkManifestFormat(value: unknown, location: string): void {
  if (!value || typeof value !== 'object' || !('format' in value)) return; // the schema reports it missing
  const format = (value as { format: unknown }).format;
  if (format === MANIFEST_FORMAT) return;
  const shown = typeof format === 'string' ? `'${format.slice(0, 80)}'` : JSON.stringify(format)?.slice(0, 80);
  const newer = typeof format === 'string' && /^nestswap\.package\/\d+$/.test(format) && Number(format.split('/')[1]) > 1;
  throw new NestswapError(
    'ERR_FORMAT_UNSUPPORTED',
    `${location} is a package in manifest format ${shown}; this nestswap reads only '${MANIFEST_FORMAT}'${newer ? ' (the package is newer)' : ''}: upgrade nestswap to load it.`,
    { details: { format, supported: [MANIFEST_FORMAT] } },
  );
}

/** The names, version and paths of a manifest, each refused with its own stable code before anything else. */
function checkManifestNames(value: unknown, location: string): void {
  if (typeof value !== 'object' || value === null) return;
  const v = value as { name?: unknown; version?: unknown; files?: unknown; calibration?: { file?: unknown } };
  if (v.name !== undefined) assertName(v.name, location);
  if (v.version !== undefined) assertVersion(v.version, location);
  if (Array.isArray(v.files)) for (const f of v.files as { path?: unknown }[]) if (f && typeof f === 'object' && f.path !== undefined) assertRelativePath(f.path, location);
  if (v.calibration && typeof v.calibration === 'object' && v.calibration.file !== undefined) assertRelativePath(v.calibration.file, location);
}

export function parseManifest(value: unknown, location: string): Manifest {
  checkManifestFormat(value, location);
  checkManifestNames(value, location);
  const r = ManifestSchema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new NestswapError('ERR_PACKAGE_MANIFEST', `Invalid manifest in ${location}: ${issues}`);
  }
  parseArch(r.data.arch, `${location} manifest.arch`);
  const seen = new Set<string>();
  for (const f of r.data.files) {
    if (seen.has(f.path)) throw new NestswapError('ERR_PACKAGE_MANIFEST', `Invalid manifest in ${location}: file '${f.path}' listed twice.`);
    seen.add(f.path);
  }
  for (const role of ['weights', 'weights-index', 'calibration'])
    if (!r.data.files.some((f) => f.role === role))
      throw new NestswapError('ERR_PACKAGE_MANIFEST', `Invalid manifest in ${location}: no file with role '${role}'.`);
  return r.data;
}

export class SupernetPackage {
  readonly space: Space;
  private constructor(
    readonly manifest: Manifest,
    readonly arch: Arch,
    readonly tensors: ReadonlyMap<string, TensorData>,
    readonly calibration: Uint8Array,
    readonly files: ReadonlyMap<string, Uint8Array>,
    /** sha256 of the weights file: identifies these exact weights (cache keys). */
    readonly weightsDigest: string,
    readonly location: string,
  ) {
    this.space = Space.fromArch(arch);
  }

  get name(): string {
    return this.manifest.name;
  }

  /** Bytes of the first file with this role, if any (e.g. 'accuracy-predictor', 'golden'). */
  fileByRole(role: string): Uint8Array | undefined {
    const entry = this.manifest.files.find((f) => f.role === role);
    return entry ? this.files.get(entry.path) : undefined;
  }

  tensor(name: string): TensorData {
    const t = this.tensors.get(name);
    if (!t) throw new NestswapError('ERR_PACKAGE_TENSOR', `Package ${this.location} has no tensor '${name}'.`);
    return t;
  }

  /** Calibration images as float32 NCHW in the input contract's range. */
  calibrationImages(): { data: Float32Array; count: number } {
    const c = this.manifest.calibration;
    const data = new Float32Array(this.calibration.length);
    for (let i = 0; i < data.length; i++) data[i] = this.calibration[i]! * c.scale;
    return { data, count: c.count };
  }

  static async load(source: PackageSource): Promise<SupernetPackage> {
    let manifestBytes: Uint8Array;
    try {
      manifestBytes = await source.read('manifest.json');
    } catch (cause) {
      throw new NestswapError('ERR_PACKAGE_MISSING', `No supernet package at ${source.location}: manifest.json cannot be read.`, { cause });
    }
    const manifest = parseManifest(decodeJson(manifestBytes, `${source.location}/manifest.json`), source.location);
    const files = new Map<string, Uint8Array>();
    for (const f of manifest.files) {
      let bytes: Uint8Array;
      try {
        bytes = await source.read(f.path);
      } catch (cause) {
        throw new NestswapError('ERR_PACKAGE_MISSING', `Package ${source.location} lacks '${f.path}' named in its manifest.`, { cause });
      }
      if (bytes.length !== f.bytes)
        throw new NestswapError('ERR_PACKAGE_SIZE', `Package file ${source.location}/${f.path} has ${bytes.length} bytes; the manifest says ${f.bytes} (truncated or replaced).`, {
          details: { file: f.path, expected: f.bytes, actual: bytes.length },
        });
      const digest = await sha256Hex(bytes);
      if (digest !== f.sha256)
        throw new NestswapError('ERR_PACKAGE_DIGEST', `Package file ${source.location}/${f.path} has sha256 ${digest}; the manifest says ${f.sha256} (corrupt or mismatched).`, {
          details: { file: f.path, expected: f.sha256, actual: digest },
        });
      files.set(f.path, bytes);
    }
    return SupernetPackage.fromVerifiedFiles(manifest, files, source.location);
  }

  /**
   * Assembles a package from files whose sizes and digests were already checked against `manifest`
   * (by `load`, or in another thread that shares them): decodes the tensors and checks their shapes.
   * `withoutCalibration` is for holders that only build calibrated subnets from given statistics (a
   * session worker): the calibration set may then be absent, and the package holds none.
   */
  static fromVerifiedFiles(manifest: Manifest, files: ReadonlyMap<string, Uint8Array>, location: string, withoutCalibration = false): SupernetPackage {
    const byRole = (role: string) => files.get(manifest.files.find((f) => f.role === role)!.path)!;
    const tensors = decodeTensors(byRole('weights'), byRole('weights-index'), location);
    for (const [name, shape] of supernetTensorShapes(manifest.arch)) {
      const t = tensors.get(name);
      if (!t || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
        throw new NestswapError('ERR_PACKAGE_TENSOR', `Package ${location} does not match its architecture: tensor '${name}' should have shape ${JSON.stringify(shape)}, found ${t ? JSON.stringify(t.shape) : 'none'}.`);
    }
    const calibration = withoutCalibration ? new Uint8Array(0) : byRole('calibration');
    const c = manifest.calibration;
    const expected = c.count * c.shape.reduce((a, b) => a * b, 1);
    if (!withoutCalibration && calibration.length !== expected)
      throw new NestswapError('ERR_PACKAGE_MANIFEST', `Calibration set of ${location} has ${calibration.length} bytes; ${c.count} images of ${c.shape.join('x')} need ${expected}.`);
    const weightsDigest = manifest.files.find((f) => f.role === 'weights')!.sha256;
    return new SupernetPackage(manifest, manifest.arch, tensors, calibration, files, weightsDigest, location);
  }
}

function decodeTensors(blob: Uint8Array, indexBytes: Uint8Array, location: string): Map<string, TensorData> {
  const r = TensorIndex.safeParse(decodeJson(indexBytes, `${location} tensor index`));
  if (!r.success)
    throw new NestswapError('ERR_PACKAGE_TENSOR', `Invalid tensor index in ${location}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  // Tensors are zero-copy Float32Array views: of the file's own bytes when they are 4-byte aligned
  // (a file read into its own buffer is), else of one aligned copy.
  let aligned = blob;
  if (blob.byteOffset % 4 !== 0) {
    aligned = new Uint8Array(blob.length);
    aligned.set(blob);
  }
  const out = new Map<string, TensorData>();
  for (const [name, t] of Object.entries(r.data.tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.length !== n * 4 || t.offset % 4 !== 0 || t.offset + t.length > blob.length)
      throw new NestswapError('ERR_PACKAGE_TENSOR', `Tensor '${name}' in ${location} does not fit its shape ${JSON.stringify(t.shape)} or the weights file.`);
    out.set(name, { shape: t.shape, data: new Float32Array(aligned.buffer, aligned.byteOffset + t.offset, n) });
  }
  return out;
}
