/** RFC 7232/7233 for content-addressed files: strong ETag = sha256, single byte ranges. */
import type { Request, Response } from 'express';
import type { Readable } from 'node:stream';
import { ApiError } from '../errors.js';

export interface FileSource {
  size: number;
  open(range?: { start: number; end: number }): Readable;
}

/** The byte range a Range header asks for, 'all' without one, undefined when it cannot be satisfied. */
function byteRange(range: string, size: number): { start: number; end: number } | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
  let start = NaN;
  let end = NaN;
  if (m && (m[1] !== '' || m[2] !== '')) {
    if (m[1] === '') {
      const n = Number(m[2]);
      start = Math.max(0, size - n);
      end = size - 1;
      if (n === 0) start = NaN;
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    }
  }
  if (!Number.isFinite(start) || !Number.isFinite(end) || start > end || start >= size) return undefined;
  return { start, end };
}

export function sendFile(req: Request, res: Response, file: FileSource, etag: string, contentType: string): void {
  const { size } = file;
  const tag = `"${etag}"`;
  res.setHeader('ETag', tag);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Cache-Control', 'private, max-age=31536000, immutable');
  const inm = req.headers['if-none-match'];
  if (inm && inm.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === tag)) {
    res.status(304).end();
    return;
  }
  res.setHeader('Content-Type', contentType);
  const range = req.headers.range;
  const ifRange = req.headers['if-range'];
  if (typeof range === 'string' && (ifRange === undefined || String(ifRange).trim() === tag)) {
    const r = byteRange(range, size);
    if (!r) {
      res.setHeader('Content-Range', `bytes */${size}`);
      res.status(416).json(new ApiError(416, 'ERR_RANGE', `Range '${range}' cannot be satisfied for ${size} bytes.`).body());
      return;
    }
    res.status(206);
    res.setHeader('Content-Range', `bytes ${r.start}-${r.end}/${size}`);
    res.setHeader('Content-Length', String(r.end - r.start + 1));
    if (req.method === 'HEAD') return void res.end();
    file.open(r).pipe(res);
    return;
  }
  res.setHeader('Content-Length', String(size));
  if (req.method === 'HEAD') return void res.end();
  file.open().pipe(res);
}
