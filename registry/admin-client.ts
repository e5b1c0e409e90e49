/**
 * HTTP client for the registry's admin side (publish, devices, query, commands), used by the CLI
 * commands, tests and benchmarks. Errors come back as RegistryApiError with the server's code.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { readCappedJson } from '../runtime/bounded.js';
import { parseManifest } from '../runtime/package.js';
import { registryTimeoutMs, withDeadline } from '../runtime/net.js';
import {
  MSGPACK_TYPE,
  type CommandBody,
  type CommandInfo,
  type DeviceInfo,
  type PublishResult,
  type QueryBody,
  type QueryResult,
  type StatsResult,
  type SupernetSummary,
  type VersionInfo,
} from './protocol.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

export class RegistryApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** the error body's `details`, when it has them (e.g. the smallest achievable value of an infeasible budget) */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'RegistryApiError';
  }
}

/** Throws RegistryApiError for a non-2xx answer (the body's `{error:{code,message}}` when present). */
export async function checkResponse(res: Response, what: string): Promise<Response> {
  if (res.ok || res.status === 304) return res;
  let code = `HTTP_${res.status}`;
  let message = `${what}: HTTP ${res.status}`;
  let details: Record<string, unknown> | undefined;
  try {
    // error bodies are small: read at most 64 KiB of them
    const body = (await readCappedJson(res, 64 * 1024, what)) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = `${what}: ${body.error.message}`;
    const d = body.error?.details;
    if (d && typeof d === 'object' && !Array.isArray(d)) details = d as Record<string, unknown>;
  } catch {
    // not JSON: keep the status
  }
  throw new RegistryApiError(res.status, code, message, details);
}

/** Every file of a package directory (as its manifest lists them, plus manifest.json) as one msgpack publish body. */
export async function packPackageDir(dir: string): Promise<Uint8Array> {
  const manifestBytes = await readFile(join(dir, 'manifest.json'));
  const manifest = parseManifest(JSON.parse(manifestBytes.toString('utf8')), dir);
  const files: Record<string, Uint8Array> = { 'manifest.json': manifestBytes };
  for (const f of manifest.files) files[f.path] = await readFile(join(dir, f.path));
  return packr.pack({ files });
}

/** `bytes` as a stream of 256 KiB chunks, reporting how many were handed to the connection. */
function countedStream(bytes: Uint8Array, onProgress: (sent: number, total: number) => void): ReadableStream<Uint8Array> {
  const CHUNK = 256 * 1024;
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) {
        controller.close();
        return;
      }
      const end = Math.min(bytes.length, at + CHUNK);
      controller.enqueue(bytes.subarray(at, end));
      at = end;
      onProgress(at, bytes.length);
    },
  });
}

export interface AdminClientOptions {
  /** deadline of one request in ms (default: NESTSWAP_REGISTRY_TIMEOUT_MS or 30 s); a publish gets ten times it */
  timeoutMs?: number | undefined;
}

export class AdminClient {
  readonly url: string;
  private readonly timeoutMs: number | undefined;
  constructor(
    url: string,
    private readonly token: string,
    opts: AdminClientOptions = {},
  ) {
    this.url = url.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs;
  }

  private async call<T>(method: string, path: string, what: string, body?: unknown, extraMs = 0): Promise<T> {
    return withDeadline({ url: this.url, timeoutMs: registryTimeoutMs(this.timeoutMs) + extraMs }, async (signal) => {
      const res = await fetch(`${this.url}${path}`, {
        method,
        signal,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      await checkResponse(res, what);
      return (await res.json()) as T;
    });
  }

  /**
   * Publishes one packed body. The token is checked first with a small request: the registry refuses a
   * bad token before reading an upload and closes the connection, which a client still sending sees as
   * a reset rather than as the refusal.
   */
  async publishBytes(body: Uint8Array, onProgress?: (sentBytes: number, totalBytes: number) => void): Promise<PublishResult> {
    await this.call('GET', '/v1/supernets', 'publish');
    return withDeadline({ url: this.url, timeoutMs: registryTimeoutMs(this.timeoutMs) * 10 }, async (signal) => {
      const res = await fetch(`${this.url}/v1/supernets`, {
        method: 'POST',
        signal,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': MSGPACK_TYPE },
        ...(onProgress ? { body: countedStream(body, onProgress), duplex: 'half' } : { body: body as Uint8Array<ArrayBuffer> }),
      } as RequestInit);
      await checkResponse(res, 'publish');
      return (await res.json()) as PublishResult;
    });
  }

  /** `onProgress` sees the upload's bytes (the body is then streamed in 256 KiB chunks). */
  async publishDir(dir: string, onProgress?: (sentBytes: number, totalBytes: number) => void): Promise<PublishResult> {
    return this.publishBytes(await packPackageDir(dir), onProgress);
  }

  supernets(): Promise<{ supernets: SupernetSummary[] }> {
    return this.call('GET', '/v1/supernets', 'list supernets');
  }
  version(name: string, version = 'latest'): Promise<VersionInfo> {
    return this.call('GET', `/v1/supernets/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`, 'get version');
  }
  /** One page of devices in enrollment order; `next` is the cursor of the following page (null at the end). */
  devicePage(page: { after?: string; limit?: number } = {}): Promise<{ devices: DeviceInfo[]; next: string | null }> {
    const q = new URLSearchParams({ ...(page.limit !== undefined ? { limit: String(page.limit) } : {}), ...(page.after ? { after: page.after } : {}) }).toString();
    return this.call('GET', `/v1/devices${q ? `?${q}` : ''}`, 'list devices');
  }
  /** Every device, following the pages. */
  async devices(): Promise<{ devices: DeviceInfo[] }> {
    const devices: DeviceInfo[] = [];
    let after: string | null = null;
    do {
      const page: { devices: DeviceInfo[]; next: string | null } = await this.devicePage(after ? { after } : {});
      devices.push(...page.devices);
      after = page.next;
    } while (after);
    return { devices };
  }
  device(id: string): Promise<DeviceInfo> {
    return this.call('GET', `/v1/devices/${encodeURIComponent(id)}`, 'get device');
  }
  query(q: QueryBody): Promise<QueryResult> {
    return this.call('POST', '/v1/query', 'query', q);
  }
  /** A command waits up to its `waitMs` for the device's acknowledgement: the deadline is that much longer. */
  command(deviceId: string, c: CommandBody): Promise<CommandInfo> {
    return this.call('POST', `/v1/devices/${encodeURIComponent(deviceId)}/commands`, 'command', c, c.waitMs ?? 0);
  }
  commandStatus(id: string): Promise<CommandInfo> {
    return this.call('GET', `/v1/commands/${encodeURIComponent(id)}`, 'command status');
  }
  /** A file of the registry's TUF metadata (docs/signing.md), as the exact bytes served. */
  tufMetadata(file: string): Promise<string> {
    return withDeadline({ url: this.url, timeoutMs: registryTimeoutMs(this.timeoutMs) }, async (signal) => {
      const res = await fetch(`${this.url}/v1/tuf/metadata/${encodeURIComponent(file)}`, { signal });
      await checkResponse(res, `TUF metadata ${file}`);
      return res.text();
    });
  }
  /** Uploads signed targets or a new root. */
  putTufMetadata(role: 'targets' | 'root', json: string): Promise<{ role: string; version: number }> {
    return withDeadline({ url: this.url, timeoutMs: registryTimeoutMs(this.timeoutMs) }, async (signal) => {
      const res = await fetch(`${this.url}/v1/tuf/${role}`, { method: 'PUT', headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' }, body: json, signal });
      await checkResponse(res, `upload TUF ${role}`);
      return (await res.json()) as { role: string; version: number };
    });
  }
  stats(): Promise<StatsResult> {
    return this.call('GET', '/v1/stats', 'stats');
  }
  telemetry(deviceId: string, limit = 100): Promise<{ deviceId: string; telemetrySeq: number; count: number; events: { seq: number; kind: string; data: Record<string, unknown> }[] }> {
    return this.call('GET', `/v1/devices/${encodeURIComponent(deviceId)}/telemetry?limit=${limit}`, 'telemetry');
  }
}
