/**
 * TUF routes (standard layout, so any TUF client reads them):
 *   GET /v1/tuf/metadata/<N>.root.json | timestamp.json | <N>.snapshot.json | <N>.targets.json   (no token:
 *       names, lengths and hashes only)
 *   GET /v1/tuf/targets/<name>/<version>/<sha256>.<file>      (Range supported; the package's own files, so
 *       the tokens that read the package: admin, or a device enrolled for that supernet)
 *   PUT /v1/tuf/targets   publisher-signed targets metadata (admin token)
 *   PUT /v1/tuf/root      a new root signed by the old root's threshold (admin token)
 */
import express, { type Request } from 'express';
import { ApiError } from '../errors.js';
import { authFirst, type RouteModule } from '../routes/context.js';
import { sendFile } from '../routes/send-file.js';
import type { RegistryStore } from '../store.js';
import type { TargetJson } from '../../runtime/tuf-layout.js';
import type { TufRepository } from './repository.js';

/** Whether a target path names a stored file with that length and sha256. */
export async function storedTarget(store: RegistryStore, path: string, t: Pick<TargetJson, 'length' | 'hashes'>): Promise<boolean> {
  const parts = path.split('/');
  if (parts.length < 3) return false;
  const f = await store.file(parts[0]!, parts[1]!, parts.slice(2).join('/'));
  return f !== undefined && f.bytes === t.length && f.sha256 === t.hashes.sha256;
}

export function tufRoutes(repo: TufRepository | undefined, maxMetadataBytes = 64 * 1024 * 1024): RouteModule {
  return ({ store, blobs, auth }, { api }) => {
    const need = (): TufRepository => {
      if (!repo) throw new ApiError(404, 'ERR_TUF_DISABLED', 'This registry runs without TUF keys: start it with --keys DIR.');
      return repo;
    };
    const text = express.text({ type: ['application/json', 'text/plain'], limit: maxMetadataBytes });

    api.get('/tuf/metadata/:file', async (req, res) => {
      const name = String(req.params.file);
      const body = await need().file(name);
      if (body === undefined) throw new ApiError(404, 'ERR_NOT_FOUND', `No TUF metadata '${name}'.`);
      // versioned files never change; timestamp.json does
      res.setHeader('Cache-Control', name === 'timestamp.json' ? 'no-cache' : 'public, max-age=31536000, immutable');
      res.type('application/json').send(body);
    });

    api.get('/tuf/targets/*path', async (req, res) => {
      need();
      const who = await auth.principal(req);
      const segs = (req.params as { path: string[] }).path;
      if (segs[0]) auth.canRead(who, segs[0]);
      const m = /^([0-9a-f]{64})\.(.+)$/.exec(segs[segs.length - 1] ?? '');
      if (!m || segs.length < 3) throw new ApiError(404, 'ERR_NOT_FOUND', 'Targets are named <supernet>/<version>/<sha256>.<file>.');
      const hash = m[1]!;
      const f = await store.file(segs[0]!, segs[1]!, [...segs.slice(2, -1), m[2]!].join('/'));
      if (!f || f.sha256 !== hash) throw new ApiError(404, 'ERR_NOT_FOUND', `No target ${segs.join('/')}.`);
      const size = await blobs.size(f.sha256);
      if (size === undefined) throw new ApiError(500, 'ERR_INTERNAL', `The blob of target ${segs.join('/')} is missing from the blob store.`);
      sendFile(req, res, { size, open: (r) => blobs.stream(f.sha256, r) }, f.sha256, 'application/octet-stream');
    });

    const upload = (req: Request): string => {
      if (typeof req.body !== 'string') throw new ApiError(415, 'ERR_UNSUPPORTED_MEDIA', 'TUF metadata uploads are JSON: Content-Type application/json.');
      return req.body;
    };
    const admin = async (req: Request) => {
      await auth.requireAdmin(req);
      need();
    };

    api.put('/tuf/targets', authFirst(admin, text), async (req, res) => {
      const version = await need().acceptTargets(upload(req), { checkFiles: (path, t) => storedTarget(store, path, t) });
      res.status(201).json({ role: 'targets', version });
    });

    api.put('/tuf/root', authFirst(admin, text), async (req, res) => {
      const version = await need().acceptRoot(upload(req));
      res.status(201).json({ role: 'root', version });
    });
  };
}
