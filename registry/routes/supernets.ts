/**
 * /v1/supernets: publish (admin, msgpack, verified in full before anything is written), list,
 * versions, content-addressed file downloads and materialized subnet ONNX files.
 */
import { crashPoint } from '../../runtime/crash.js';
import { createReadStream, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { assertRelativePath } from '../../runtime/names.js';
import { SupernetPackage, parseManifest, sha256Hex } from '../../runtime/package.js';
import type { BlobStore } from '../blobs.js';
import { ApiError } from '../errors.js';
import { packr } from '../hub.js';
import { API_PREFIX, MSGPACK_TYPE, PublishBody, type FileInfo, type PublishResult, type SupernetSummary, type VersionInfo } from '../protocol.js';
import type { RegistryStore, VersionRow } from '../store.js';
import { authFirst, param, parse, versionOr404, type RouteModule } from './context.js';
import { sendFile } from './send-file.js';

const fileUrl = (name: string, v: string, path: string) =>
  `${API_PREFIX}/supernets/${encodeURIComponent(name)}/versions/${encodeURIComponent(v)}/files/${encodeURIComponent(path)}`;

const summary = (name: string, vs: VersionRow[]): SupernetSummary => ({
  name,
  latest: vs[vs.length - 1]!.version,
  versions: vs.map((v) => ({ version: v.version, manifestSha256: v.manifest_sha256, publishedAt: v.published_at })),
});

/** Decodes and verifies a publish body; throws ApiErrors with the package codes. */
async function verifiedUpload(raw: unknown) {
  if (!Buffer.isBuffer(raw)) throw new ApiError(415, 'ERR_UNSUPPORTED_MEDIA', `Publish bodies are msgpack: Content-Type ${MSGPACK_TYPE}.`);
  let decoded: unknown;
  try {
    decoded = packr.unpack(raw);
  } catch {
    throw new ApiError(400, 'ERR_VALIDATION', 'Publish body is not valid msgpack.');
  }
  const body = parse(PublishBody, decoded, 'publish body');
  for (const key of Object.keys(body.files)) assertRelativePath(key, 'the publish body');
  const manifestBytes = body.files['manifest.json'];
  if (!manifestBytes) throw new ApiError(400, 'ERR_PACKAGE_MANIFEST', "The publish body has no 'manifest.json'.");
  let manifestValue: unknown;
  try {
    manifestValue = JSON.parse(Buffer.from(manifestBytes).toString('utf8'));
  } catch {
    throw new ApiError(400, 'ERR_PACKAGE_MANIFEST', 'manifest.json is not valid JSON.');
  }
  const manifest = parseManifest(manifestValue, 'uploaded package');
  const listed = new Set(manifest.files.map((f) => f.path));
  const extra = Object.keys(body.files).filter((f) => f !== 'manifest.json' && !listed.has(f));
  if (extra.length) throw new ApiError(400, 'ERR_PACKAGE_MANIFEST', `Files not named in the manifest: ${extra.join(', ')}.`);
  // Full verification (sizes, digests, tensor index, calibration) before anything is written.
  await SupernetPackage.load({
    location: `upload ${manifest.name}@${manifest.version}`,
    read: async (path) => {
      const b = body.files[path];
      if (!b) throw new Error('missing');
      return b;
    },
  });
  return { files: body.files, manifestBytes, manifestValue, manifest, manifestSha256: await sha256Hex(manifestBytes) };
}

async function publish(store: RegistryStore, blobs: BlobStore, log: Logger, raw: unknown): Promise<{ status: number; result: PublishResult }> {
  const u = await verifiedUpload(raw);
  const { manifest, manifestSha256 } = u;
  const existing = await store.version(manifest.name, manifest.version);
  if (existing) {
    if (existing.manifest_sha256 !== manifestSha256)
      throw new ApiError(409, 'ERR_CONFLICT', `${manifest.name}@${manifest.version} is already published with different content; publish a new version.`);
    return { status: 200, result: { name: manifest.name, version: manifest.version, manifestSha256, created: false, files: manifest.files.length + 1 } };
  }
  const list = [{ sha256: manifestSha256, bytes: u.manifestBytes }, ...manifest.files.map((f) => ({ sha256: f.sha256, bytes: u.files[f.path]! }))];
  const created = await blobs.write(list);
  crashPoint('registry-publish-blobs');
  try {
    await store.insertVersion({
      name: manifest.name,
      version: manifest.version,
      manifestSha256,
      manifestJson: JSON.stringify(u.manifestValue),
      files: [{ path: 'manifest.json', role: 'manifest', bytes: u.manifestBytes.length, sha256: manifestSha256 }, ...manifest.files.map((f) => ({ path: f.path, role: f.role, bytes: f.bytes, sha256: f.sha256 }))],
    });
  } catch (err) {
    await blobs.remove(created, await store.referencedBlobs());
    if (await store.version(manifest.name, manifest.version)) throw new ApiError(409, 'ERR_CONFLICT', `${manifest.name}@${manifest.version} was published concurrently.`);
    throw err;
  }
  crashPoint('registry-publish-stored');
  log.info({ supernet: manifest.name, version: manifest.version, files: list.length }, 'published');
  return { status: 201, result: { name: manifest.name, version: manifest.version, manifestSha256, created: true, files: list.length } };
}

export const supernetRoutes: RouteModule = ({ store, blobs, queries, auth, parsers, log, onPublished }, { api }) => {
  api.post('/supernets', authFirst(auth.requireAdmin, parsers.msgpack), async (req, res) => {
    const { status, result } = await publish(store, blobs, log, req.body);
    for (const hook of onPublished) await hook({ name: result.name, version: result.version });
    res.status(status).json(result);
  });

  api.get('/supernets', async (req, res) => {
    const who = await auth.principal(req);
    const byName = new Map<string, VersionRow[]>();
    for (const v of await store.allVersions()) {
      if (who.kind === 'device' && who.device.supernet !== null && who.device.supernet !== v.name) continue;
      byName.set(v.name, [...(byName.get(v.name) ?? []), v]);
    }
    res.json({ supernets: [...byName].map(([name, vs]) => summary(name, vs)) });
  });

  api.get('/supernets/:name', async (req, res) => {
    const name = param(req, 'name');
    auth.canRead(await auth.principal(req), name);
    const vs = await store.versionsOf(name);
    if (!vs.length) throw new ApiError(404, 'ERR_NOT_FOUND', `No supernet '${name}'.`);
    res.json(summary(name, vs));
  });

  api.get('/supernets/:name/versions/:version', async (req, res) => {
    const name = param(req, 'name');
    auth.canRead(await auth.principal(req), name);
    const v = await versionOr404(store, name, param(req, 'version'));
    const files: FileInfo[] = (await store.files(v.name, v.version)).map((f) => ({ ...f, url: fileUrl(v.name, v.version, f.path) }));
    const info: VersionInfo = { name: v.name, version: v.version, manifestSha256: v.manifest_sha256, publishedAt: v.published_at, manifest: JSON.parse(v.manifest_json) as Record<string, unknown>, files };
    res.json(info);
  });

  api.get('/supernets/:name/versions/:version/files/:path', async (req, res) => {
    const name = param(req, 'name');
    auth.canRead(await auth.principal(req), name);
    const v = await versionOr404(store, name, param(req, 'version'));
    const f = await store.file(v.name, v.version, param(req, 'path'));
    if (!f) throw new ApiError(404, 'ERR_NOT_FOUND', `${v.name}@${v.version} has no file '${param(req, 'path')}'.`);
    const size = await blobs.size(f.sha256);
    if (size === undefined) throw new ApiError(500, 'ERR_INTERNAL', `The blob of ${v.name}@${v.version}/${f.path} is missing from the blob store.`);
    sendFile(req, res, { size, open: (r) => blobs.stream(f.sha256, r) }, f.sha256, f.path.endsWith('.json') ? 'application/json' : 'application/octet-stream');
  });

  api.get('/supernets/:name/versions/:version/subnets/:file', async (req, res) => {
    const name = param(req, 'name');
    auth.canRead(await auth.principal(req), name);
    const v = await versionOr404(store, name, param(req, 'version'));
    const file = param(req, 'file');
    if (!file.endsWith('.onnx')) throw new ApiError(404, 'ERR_NOT_FOUND', 'Subnet files are named <subnet id>.onnx.');
    const { path } = await queries.onnxPath(v, file.slice(0, -'.onnx'.length));
    const size = statSync(path).size;
    // the ETag names the exact bytes, which depend on the package and the subnet
    const etag = (await sha256Hex(new TextEncoder().encode(`${v.manifest_sha256}/${file}/${size}`))).slice(0, 40);
    sendFile(req, res, { size, open: (r) => createReadStream(path, r ?? {}) }, etag, 'application/octet-stream');
  });
};
