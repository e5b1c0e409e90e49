/**
 * The package in the browser: every file downloaded once, checked (size and sha256 against the
 * registry's file list, manifest.json against its digest, then every file again against the manifest
 * by SupernetPackage.load), and kept in the Cache API under its digest, so a reload reads the cache
 * and downloads nothing. When the registry is away, the last verified version is served from the cache.
 *
 * Trust hook: `verify` gets the registry's version document before any file is fetched; a TUF client
 * (targets signed by the registry's keys) plugs in there and throws to refuse the version.
 */
import { NestswapError } from '../runtime/errors.js';
import { sha256Hex, SupernetPackage } from '../runtime/package.js';
import type { VersionInfo } from '../registry/protocol.js';

export interface PackageLoad {
  pkg: SupernetPackage;
  version: string;
  manifestSha256: string;
  /** files fetched from the registry this time (0 when everything came from the cache) */
  downloadedFiles: number;
  downloadedBytes: number;
  /** 'registry' (version checked with the registry) or 'cache' (registry unreachable) */
  source: 'registry' | 'cache';
}

export interface PackageStoreOptions {
  registry: string;
  token: string;
  supernet: string;
  version?: string;
  /** refuses a version the page must not run (TUF targets check); throw to refuse */
  verify?: (info: VersionInfo) => Promise<void>;
  cacheName?: string;
}

const CACHE = 'nestswap-packages-v1';

function cacheKey(registry: string, sha256: string): string {
  return `${registry}/__nestswap/blob/${sha256}`;
}

async function openCache(name: string): Promise<Cache | undefined> {
  try {
    return await globalThis.caches?.open(name);
  } catch {
    return undefined; // no Cache API (not a secure context): files stay in memory for this page only
  }
}

async function cachedBytes(cache: Cache | undefined, key: string, sha256: string): Promise<Uint8Array | undefined> {
  const hit = await cache?.match(key);
  if (!hit) return undefined;
  const bytes = new Uint8Array(await hit.arrayBuffer());
  if ((await sha256Hex(bytes)) === sha256) return bytes;
  await cache?.delete(key); // damaged: never served, fetched again
  return undefined;
}

async function fetchVerified(url: string, token: string, f: { path: string; bytes: number; sha256: string }): Promise<Uint8Array> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new NestswapError('ERR_PACKAGE_MISSING', `Download of ${f.path}: HTTP ${res.status}.`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.length !== f.bytes) throw new NestswapError('ERR_PACKAGE_SIZE', `Downloaded ${f.path}: ${bytes.length} bytes; expected ${f.bytes}.`);
  const digest = await sha256Hex(bytes);
  if (digest !== f.sha256) throw new NestswapError('ERR_PACKAGE_DIGEST', `Downloaded ${f.path}: sha256 ${digest}; expected ${f.sha256}.`);
  return bytes;
}

const lastKey = (o: PackageStoreOptions) => `nestswap:package:${o.registry}:${o.supernet}`;

async function versionInfo(o: PackageStoreOptions): Promise<VersionInfo> {
  const res = await fetch(`${o.registry}/v1/supernets/${encodeURIComponent(o.supernet)}/versions/${encodeURIComponent(o.version ?? 'latest')}`, { headers: { authorization: `Bearer ${o.token}` } });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    throw Object.assign(new NestswapError('ERR_PACKAGE_MISSING', `Supernet ${o.supernet}: ${body.error?.message ?? `HTTP ${res.status}`}`), { status: res.status });
  }
  return (await res.json()) as VersionInfo;
}

/** The package, from the cache where its files are there and verify, else downloaded. */
export async function loadPackage(o: PackageStoreOptions): Promise<PackageLoad> {
  const cache = await openCache(o.cacheName ?? CACHE);
  let info: VersionInfo;
  let source: PackageLoad['source'] = 'registry';
  try {
    info = await versionInfo(o);
  } catch (err) {
    const saved = globalThis.localStorage?.getItem(lastKey(o));
    if ((err as { status?: number }).status !== undefined || !saved) throw err;
    info = JSON.parse(saved) as VersionInfo; // registry away: the last verified version, from the cache
    source = 'cache';
  }
  await o.verify?.(info);
  const files = new Map<string, Uint8Array>();
  let downloadedFiles = 0;
  let downloadedBytes = 0;
  for (const f of info.files) {
    const key = cacheKey(o.registry, f.sha256);
    let bytes = await cachedBytes(cache, key, f.sha256);
    if (!bytes) {
      if (source === 'cache') throw new NestswapError('ERR_PACKAGE_MISSING', `The registry is unreachable and ${f.path} is not in this browser's cache.`);
      bytes = await fetchVerified(new URL(f.url, o.registry).href, o.token, f);
      downloadedFiles++;
      downloadedBytes += bytes.length;
      await cache?.put(key, new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { 'content-type': 'application/octet-stream' } }));
    }
    files.set(f.path, bytes);
  }
  const manifest = files.get('manifest.json');
  if (!manifest || (await sha256Hex(manifest)) !== info.manifestSha256)
    throw new NestswapError('ERR_PACKAGE_DIGEST', `manifest.json of ${o.supernet}@${info.version} does not match the digest the registry announced.`);
  const pkg = await SupernetPackage.load({
    location: `${o.registry}:${o.supernet}@${info.version}`,
    read: async (path) => {
      const b = files.get(path);
      if (!b) throw new Error(`no file '${path}'`);
      return b;
    },
  });
  globalThis.localStorage?.setItem(lastKey(o), JSON.stringify(info));
  return { pkg, version: info.version, manifestSha256: info.manifestSha256, downloadedFiles, downloadedBytes, source };
}
