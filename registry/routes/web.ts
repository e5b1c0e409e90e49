/**
 * The browser side of the registry: /v1/web/agent.js (the browser agent bundle), /v1/web/ort/*
 * (onnxruntime-web's module and wasm files), /v1/web/ (a page that loads the agent) and /dashboard.
 * Every page and script is sent cross-origin isolated (COOP same-origin + COEP require-corp), so
 * onnxruntime-web may run multi-threaded wasm; the registry only serves files (it imports no browser code).
 */
import type { Request, Response, NextFunction, Router } from 'express';
import express from 'express';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError } from '../errors.js';
import type { RouteModule } from './context.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const WEB_DIST = join(ROOT, 'dist', 'bundle');
/** A dependency's dist/ folder, wherever the installation put it. */
function distOf(pkg: string): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), 'dist');
  } catch {
    return join(ROOT, 'node_modules', pkg, 'dist');
  }
}
const ORT_DIST = distOf('onnxruntime-web');
const UPLOT_DIST = distOf('uplot');

/** onnxruntime-web files a page may load: its ESM entry points and the wasm binaries with their glue. */
const ORT_FILE = /^ort(\.[a-z]+)*\.m?js$|^ort-wasm-simd-threaded(\.[a-z]+)?\.(mjs|wasm)$/;

export function isolate(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  next();
}

function sendStatic(req: Request, res: Response, path: string, type: string, cache: string): void {
  if (!existsSync(path)) throw new ApiError(404, 'ERR_NOT_FOUND', `Not installed: ${path.slice(ROOT.length + 1)} (run npm run build).`);
  const st = statSync(path);
  // a validator for revalidation after max-age (the app turns express's own ETags off)
  const tag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  res.setHeader('Cache-Control', cache);
  res.setHeader('ETag', tag);
  if (req.headers['if-none-match']?.split(',').some((t) => t.trim() === tag)) return void res.status(304).end();
  res.type(type).sendFile(path, { lastModified: true, cacheControl: false });
}

const NO_CACHE = 'no-cache';

function page(res: Response, name: string): void {
  const path = join(WEB_DIST, name);
  if (!existsSync(path)) throw new ApiError(404, 'ERR_NOT_FOUND', `Not installed: dist/bundle/${name} (run npm run build).`);
  res.setHeader('Cache-Control', NO_CACHE);
  res.type('html').send(readFileSync(path, 'utf8'));
}
// versioned by the onnxruntime-web release in the path's package: a week, then revalidated by ETag
const ORT_CACHE = 'public, max-age=604800';

export const webRoutes: RouteModule = (_ctx, { api, app }) => {
  const web: Router = express.Router();
  web.use(isolate);
  web.get('/', (_req, res) => page(res, 'index.html'));
  web.get('/agent.js', (req, res) => sendStatic(req, res, join(WEB_DIST, 'agent.js'), 'text/javascript', NO_CACHE));
  web.get('/dashboard.js', (req, res) => sendStatic(req, res, join(WEB_DIST, 'dashboard.js'), 'text/javascript', NO_CACHE));
  web.get('/uplot.css', (req, res) => sendStatic(req, res, join(UPLOT_DIST, 'uPlot.min.css'), 'text/css', ORT_CACHE));
  web.get('/ort/:file', (req, res) => {
    const file = String(req.params.file);
    if (!ORT_FILE.test(file)) throw new ApiError(404, 'ERR_NOT_FOUND', `No onnxruntime-web file '${file}'.`);
    sendStatic(req, res, join(ORT_DIST, file), file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript', ORT_CACHE);
  });
  api.use('/web', web);
  app.get('/dashboard', isolate, (_req, res) => page(res, 'dashboard.html'));
};
