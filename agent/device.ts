/**
 * Device discovery: OS, CPU (with SIMD flags), memory, GPUs, battery, temperature (systeminformation),
 * onnxruntime's execution providers tried for real on a tiny model, and NPUs found through kernel
 * interfaces (`/sys/class/accel`, `/dev/accel*`, vendor device nodes, known USB accelerators).
 * Kernel paths are read under a configurable root so tests use fixture trees. Nothing is claimed
 * that was not found; what could not be read is reported as such.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { arch as osArch, platform as osPlatform } from 'node:os';
import { join } from 'node:path';
import si from 'systeminformation';
import { bundledEps, nodeBackend } from '../runtime/node/ort-node.js';
import { buildProbeGraph } from '../runtime/parts.js';
import { ModelSession, type Backend } from '../runtime/session.js';
import type { DeviceIdentity } from './profiler.js';

export interface EpStatus {
  name: string;
  /** shipped inside this onnxruntime build */
  bundled: boolean;
  /** a session was created and ran the probe model */
  usable: boolean;
  /** why not (the runtime's own error), or what was checked */
  reason: string;
}

export interface NpuEntry {
  /** e.g. 'accel', 'Coral Edge TPU', 'Hailo', 'Ascend', 'Intel VPU' */
  kind: string;
  vendor: string | null;
  /** path as seen on the device (without the discovery root) */
  path: string;
  source: 'sys-accel' | 'dev-node' | 'sys-misc' | 'usb';
  driver: string | null;
  pciId: string | null;
  readable: boolean;
  error: string | null;
  /** onnxruntime EPs that could drive it, and whether one of those is usable here */
  drivenBy: string[];
  runnable: boolean;
}

export interface DeviceInfo {
  os: { platform: string; distro: string; release: string; kernel: string; arch: string };
  cpu: { manufacturer: string; brand: string; cores: number; physicalCores: number; speedGHz: number | null; speedMaxGHz: number | null; simd: string[] };
  memory: { totalMB: number; availableMB: number };
  gpus: { vendor: string; model: string; vramMB: number | null }[];
  battery: { present: boolean; charging: boolean | null; percent: number | null };
  temperature: { cpuC: number | null; readable: boolean };
  onnxruntime: { version: string; bundledEps: string[] };
  eps: EpStatus[];
  npus: NpuEntry[];
  fingerprint: string;
  deviceClass: string;
  /** plain statements about what is absent */
  notes: string[];
}

export interface DiscoverOptions {
  /** root for kernel interfaces (/sys, /dev, /proc); default '/' */
  root?: string;
  /** execution providers to try besides the bundled ones (e.g. a requested 'qnn') */
  eps?: readonly string[];
  /** skip trying EPs (faster; `eps` is then empty) */
  skipEps?: boolean;
  backend?: Backend;
  /** list of bundled EPs (default: onnxruntime-node's) */
  bundled?: readonly string[];
}

const SIMD = [
  'sse4_1', 'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512_vnni', 'avx_vnni',
  'avx512_bf16', 'avx512_fp16', 'amx_tile', 'amx_int8', 'amx_bf16', 'neon', 'asimd', 'asimddp', 'asimdhp', 'fphp', 'sve', 'sve2', 'i8mm', 'bf16',
];

/** SIMD flags from a /proc/cpuinfo text (x86 `flags`, Arm `Features`). */
export function simdFlags(cpuinfo: string): string[] {
  const line = cpuinfo.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
  if (!line) return [];
  const have = new Set(line.split(':')[1]!.trim().split(/\s+/));
  return SIMD.filter((f) => have.has(f));
}

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/®|\(r\)|\(tm\)|™|cpu|processor|@.*$/g, ' ')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '') || 'cpu';

/** Stable facts only (no available memory, temperature, battery): the same device hashes the same. */
export function deviceIdentity(f: { platform: string; arch: string; cpuManufacturer: string; cpuBrand: string; cores: number; physicalCores: number; memTotalMB: number; ortVersion: string }): DeviceIdentity {
  const memGB = Math.round(f.memTotalMB / 1024);
  const stable = { platform: f.platform, arch: f.arch, cpu: `${f.cpuManufacturer} ${f.cpuBrand}`, cores: f.cores, physicalCores: f.physicalCores, memGB, ort: f.ortVersion };
  const fingerprint = createHash('sha256').update(JSON.stringify(stable)).digest('hex').slice(0, 16);
  const deviceClass = `${f.platform}-${f.arch}-${slug(`${f.cpuManufacturer} ${f.cpuBrand}`)}-${f.cores}c-${memGB}g`;
  return { fingerprint, deviceClass, facts: stable };
}

/** Tries each EP on a 1×1 Conv: create a session and run it once. Failures carry the runtime's error. */
export async function probeExecutionProviders(names: readonly string[], bundled: readonly string[], backend: Backend = nodeBackend): Promise<EpStatus[]> {
  const probe = buildProbeGraph();
  const out: EpStatus[] = [];
  for (const name of [...new Set(names)]) {
    const isBundled = bundled.includes(name);
    try {
      const s = await ModelSession.create(backend, probe, { ep: name, threads: 1 });
      try {
        const r = await s.runFirst(new Float32Array(3 * 64).fill(1), [1, 3, 8, 8]);
        const ok = r.data.length === 4 * 64 && Math.abs(r.data[0]! - 1.5) < 1e-4;
        out.push({ name, bundled: isBundled, usable: ok, reason: ok ? 'created a session and ran a 1x1 Conv' : 'ran, but the probe output is wrong' });
      } finally {
        await s.release();
      }
    } catch (e) {
      const msg = (e as Error).message.replace(/^onnxruntime-\w+ could not create a session with execution provider '[^']*': /, '');
      out.push({ name, bundled: isBundled, usable: false, reason: msg.split('\n')[0]!.slice(0, 400) });
    }
  }
  return out;
}

const errText = (e: unknown) => {
  const err = e as NodeJS.ErrnoException;
  return err.code ? `${err.code}: ${err.message}` : String(e);
};

async function list(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return []; // an absent directory means no such device
  }
}

async function readText(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

const VENDORS: Record<string, string> = {
  '0x8086': 'Intel',
  '0x1e60': 'Hailo',
  '0x1ac1': 'Google',
  '0x19e5': 'Huawei',
  '0x1002': 'AMD',
  '0x17cb': 'Qualcomm',
  '0x10de': 'NVIDIA',
};

/** EPs that can drive an NPU of a kind/driver (none of them ships in the linux-x64 onnxruntime-node build). */
function epsFor(vendor: string | null, driver: string | null, kind: string): string[] {
  if (driver === 'intel_vpu' || kind === 'Intel VPU' || vendor === 'Intel') return ['openvino'];
  if (driver === 'amdxdna' || vendor === 'AMD') return ['vitisai'];
  if (vendor === 'Qualcomm' || driver === 'qaic') return ['qnn'];
  if (vendor === 'Huawei') return ['cann'];
  return []; // Coral, Hailo: their own runtimes (TFLite delegate, HailoRT), no ONNX Runtime EP
}

/** NPUs visible through kernel interfaces under `root`. */
export async function discoverNpus(root = '/', usableEps: readonly string[] = []): Promise<NpuEntry[]> {
  const out: NpuEntry[] = [];
  const entry = (e: Omit<NpuEntry, 'drivenBy' | 'runnable'>): NpuEntry => {
    const drivenBy = epsFor(e.vendor, e.driver, e.kind);
    return { ...e, drivenBy, runnable: e.readable && drivenBy.some((x) => usableEps.includes(x)) };
  };
  // DRM accel subsystem (Intel NPU, AMD XDNA, Qualcomm AIC, ...)
  for (const name of await list(join(root, 'sys/class/accel'))) {
    const base = join(root, 'sys/class/accel', name);
    let driver: string | null = null;
    let pciId: string | null = null;
    let vendor: string | null = null;
    let readable = true;
    let error: string | null = null;
    try {
      const uevent = await readText(join(base, 'device/uevent'));
      driver = /^DRIVER=(.*)$/m.exec(uevent)?.[1] ?? null;
      pciId = /^PCI_ID=(.*)$/m.exec(uevent)?.[1] ?? null;
      const v = await readText(join(base, 'device/vendor')).catch(() => (pciId ? `0x${pciId.split(':')[0]!.toLowerCase()}` : ''));
      vendor = VENDORS[v.toLowerCase()] ?? (v || null);
      if (!driver) driver = await readlink(join(base, 'device/driver')).then((l) => l.split('/').pop() ?? null, () => null);
    } catch (e) {
      readable = false;
      error = errText(e);
    }
    out.push(entry({ kind: 'accel', vendor, path: `/sys/class/accel/${name}`, source: 'sys-accel', driver, pciId, readable, error }));
  }
  // device nodes: /dev/accel/accelN (and /dev/accelN on older kernels), vendor nodes
  const nodes: { dir: string; re: RegExp; kind: string; vendor: string | null; source: NpuEntry['source'] }[] = [
    { dir: 'dev/accel', re: /^accel\d+$/, kind: 'accel', vendor: null, source: 'dev-node' },
    { dir: 'dev', re: /^accel\d+$/, kind: 'accel', vendor: null, source: 'dev-node' },
    { dir: 'dev', re: /^apex_\d+$/, kind: 'Coral Edge TPU', vendor: 'Google', source: 'dev-node' },
    { dir: 'dev', re: /^hailo\d+$/, kind: 'Hailo', vendor: 'Hailo', source: 'dev-node' },
    { dir: 'dev', re: /^davinci\d+$/, kind: 'Ascend', vendor: 'Huawei', source: 'dev-node' },
    { dir: 'sys/class/misc', re: /^intel_vpu$/, kind: 'Intel VPU', vendor: 'Intel', source: 'sys-misc' },
  ];
  for (const n of nodes)
    for (const name of await list(join(root, n.dir))) {
      if (!n.re.test(name)) continue;
      let readable = true;
      let error: string | null = null;
      try {
        await stat(join(root, n.dir, name)); // follows links: a dangling one is unreadable
      } catch (e) {
        readable = false;
        error = errText(e);
      }
      out.push(entry({ kind: n.kind, vendor: n.vendor, path: `/${n.dir}/${name}`, source: n.source, driver: null, pciId: null, readable, error }));
    }
  // USB accelerators (Coral USB before and after its firmware load)
  const usb: Record<string, string> = { '1a6e:089a': 'Coral Edge TPU (USB)', '18d1:9302': 'Coral Edge TPU (USB)' };
  for (const name of await list(join(root, 'sys/bus/usb/devices'))) {
    const base = join(root, 'sys/bus/usb/devices', name);
    const id = await Promise.all([readText(join(base, 'idVendor')), readText(join(base, 'idProduct'))]).then(
      ([v, p]) => `${v}:${p}`.toLowerCase(),
      () => undefined,
    );
    const kind = id ? usb[id] : undefined;
    if (kind) out.push(entry({ kind, vendor: 'Google', path: `/sys/bus/usb/devices/${name}`, source: 'usb', driver: null, pciId: id!, readable: true, error: null }));
  }
  return out;
}

const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;

/** Everything this device can tell about itself; see DeviceInfo. */
export async function discoverDevice(opts: DiscoverOptions = {}): Promise<DeviceInfo> {
  const root = opts.root ?? '/';
  const backend = opts.backend ?? nodeBackend;
  const bundled = [...(opts.bundled ?? bundledEps())];
  const [cpu, mem, osi, gfx, bat, temp] = await Promise.all([
    si.cpu(),
    si.mem(),
    si.osInfo(),
    si.graphics().catch(() => ({ controllers: [] as si.Systeminformation.GraphicsControllerData[] })),
    si.battery().catch(() => undefined),
    si.cpuTemperature().catch(() => undefined),
  ]);
  const cpuinfo = await readFile(join(root, 'proc/cpuinfo'), 'utf8').catch(() => '');
  const simd = cpuinfo ? simdFlags(cpuinfo) : simdFlags(`flags: ${cpu.flags}`);
  const eps = opts.skipEps ? [] : await probeExecutionProviders([...bundled, ...(opts.eps ?? [])], bundled, backend);
  const npus = await discoverNpus(
    root,
    eps.filter((e) => e.usable).map((e) => e.name),
  );
  const memTotalMB = mem.total / 2 ** 20;
  const id = identityOf(cpu, mem, osi, backend);
  const gpus = gfx.controllers.map((c) => ({ vendor: c.vendor, model: c.model, vramMB: c.vram ?? null }));
  const notes: string[] = [];
  if (gpus.length === 0) notes.push('no GPU found');
  if (npus.length === 0) notes.push('no NPU found through kernel interfaces');
  if (npus.some((n) => !n.readable)) notes.push('some NPU entries exist but could not be read');
  const usable = eps.filter((e) => e.usable).map((e) => e.name);
  if (!opts.skipEps) notes.push(`usable execution providers: ${usable.join(', ') || 'none'}`);
  const cpuTemp = temp && typeof temp.main === 'number' && Number.isFinite(temp.main) ? temp.main : null;
  return {
    os: { platform: osi.platform || osPlatform(), distro: osi.distro, release: osi.release, kernel: osi.kernel, arch: osi.arch || osArch() },
    cpu: {
      manufacturer: cpu.manufacturer,
      brand: cpu.brand,
      cores: cpu.cores,
      physicalCores: cpu.physicalCores,
      speedGHz: cpu.speed > 0 ? cpu.speed : null,
      speedMaxGHz: cpu.speedMax > 0 ? cpu.speedMax : null,
      simd,
    },
    memory: { totalMB: round(memTotalMB), availableMB: round(mem.available / 2 ** 20) },
    gpus,
    battery: bat?.hasBattery
      ? { present: true, charging: bat.isCharging, percent: Number.isFinite(bat.percent) ? bat.percent : null }
      : { present: false, charging: null, percent: null },
    temperature: { cpuC: cpuTemp, readable: cpuTemp !== null },
    onnxruntime: { version: backend.version, bundledEps: bundled },
    eps,
    npus,
    fingerprint: id.fingerprint,
    deviceClass: id.deviceClass,
    notes,
  };
}

/** Identity only (no EP probing): what profiles are keyed by. */
/** The stable facts that make up a device's identity (fingerprint + class). */
function identityOf(cpu: si.Systeminformation.CpuData, mem: si.Systeminformation.MemData, osi: si.Systeminformation.OsData, backend: Backend): DeviceIdentity {
  return deviceIdentity({
    platform: osi.platform || osPlatform(),
    arch: osi.arch || osArch(),
    cpuManufacturer: cpu.manufacturer,
    cpuBrand: cpu.brand,
    cores: cpu.cores,
    physicalCores: cpu.physicalCores,
    memTotalMB: mem.total / 2 ** 20,
    ortVersion: backend.version,
  });
}

export async function currentDeviceIdentity(backend: Backend = nodeBackend): Promise<DeviceIdentity> {
  const [cpu, mem, osi] = await Promise.all([si.cpu(), si.mem(), si.osInfo()]);
  return identityOf(cpu, mem, osi, backend);
}
