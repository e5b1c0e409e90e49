/** The registry API as the dashboard reads it (admin token as a Bearer header). */
export interface DeviceInfo {
  id: string;
  name: string;
  supernet: string | null;
  deviceClass: string | null;
  facts: Record<string, unknown>;
  lastSeen: string | null;
  online: boolean;
  subnetId: string | null;
  budget: unknown;
  packageVersion: string | null;
  profile: { sha256: string; ep: string | null; threads: number | null } | null;
}

export interface TelemetryRow {
  seq: number;
  at: number;
  kind: string;
  data: Record<string, unknown>;
}

export interface FrontDoc {
  subnetId: string | null;
  budget: unknown;
  points: { subnetId: string; subnet: unknown; predicted: { accuracy: number; latencyMs: number | null; memoryMB: number | null } }[];
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(token: string, path: string, o: { method?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(path, {
    method: o.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  });
  const j = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!res.ok) throw new ApiFailure(res.status, j.error?.code ?? `HTTP_${res.status}`, `${j.error?.code ?? res.status}: ${j.error?.message ?? res.statusText}`);
  return j as T;
}
