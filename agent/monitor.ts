/**
 * The constraint monitor: every `intervalMs` it closes a window of observed inference latency
 * (median and p99 of single-sample runs on the serving subnet), compares it with the prediction
 * (the live slowdown factor), and reads the device's conditions: CPU used by other processes,
 * available memory, battery and temperature.
 *
 * Sensors read /proc and /sys under configurable roots, so tests can point them at a fixture
 * directory that stands in for /sys (a real battery or thermal zone, just not this machine's).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { cpus, freemem } from 'node:os';
import { join } from 'node:path';
import { Monitor as CoreMonitor, type BatteryState, type MonitorOptions, type SensorReading, type Sensors } from './core/monitor.js';

export type { BatteryState, LatencyWindow, MonitorOptions, SensorReading, Sensors } from './core/monitor.js';

export interface SystemSensorOptions {
  procRoot?: string;
  sysRoot?: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

/** CPU ticks from /proc/stat's aggregate line: [busy, total]. */
function procStatTicks(procRoot: string): [number, number] | undefined {
  const line = readText(join(procRoot, 'stat'))?.split('\n')[0];
  if (!line?.startsWith('cpu ')) return undefined;
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return undefined;
  const total = v.reduce((a, b) => a + b, 0);
  const idle = v[3]! + (v[4] ?? 0); // idle + iowait
  return [total - idle, total];
}

/** Battery from /sys/class/power_supply: any 'Battery' supply; on battery unless it is charging/full or mains is online. */
export function readBattery(sysRoot: string): BatteryState | null {
  const base = join(sysRoot, 'class', 'power_supply');
  let battery: BatteryState | null = null;
  let mainsOnline = false;
  for (const name of listDir(base)) {
    const dir = join(base, name);
    const type = readText(join(dir, 'type'));
    if (type === 'Mains' || type === 'USB') {
      if (readText(join(dir, 'online')) === '1') mainsOnline = true;
    } else if (type === 'Battery' && !battery) {
      const percent = Number(readText(join(dir, 'capacity')));
      if (!Number.isFinite(percent)) continue;
      const status = readText(join(dir, 'status')) ?? 'Unknown';
      battery = { onBattery: status === 'Discharging', percent };
    }
  }
  if (battery && mainsOnline) battery.onBattery = false;
  return battery;
}

/** Hottest thermal zone from /sys/class/thermal (millidegrees Celsius). */
export function readTemperature(sysRoot: string): number | null {
  const base = join(sysRoot, 'class', 'thermal');
  let max: number | null = null;
  for (const name of listDir(base)) {
    if (!name.startsWith('thermal_zone')) continue;
    const t = Number(readText(join(base, name, 'temp')));
    if (Number.isFinite(t) && t > -50_000) max = Math.max(max ?? -Infinity, t / 1000);
  }
  return max;
}

/** MemAvailable from /proc/meminfo (MB), else os.freemem(). */
export function readAvailableMB(procRoot: string): number | null {
  const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(readText(join(procRoot, 'meminfo')) ?? '');
  if (m) return Number(m[1]) / 1024;
  const free = freemem();
  return free > 0 ? free / (1024 * 1024) : null;
}

/**
 * Sensors of this machine. CPU used by others = the whole machine's busy share (/proc/stat) minus
 * this process's own share (process.cpuUsage, which includes onnxruntime's threads).
 */
export function systemSensors(opts: SystemSensorOptions = {}): Sensors {
  const procRoot = opts.procRoot ?? '/proc';
  const sysRoot = opts.sysRoot ?? '/sys';
  const nCpu = Math.max(1, cpus().length);
  let last: { ticks: [number, number] | undefined; own: NodeJS.CpuUsage; wall: number } | undefined;
  return {
    read(): SensorReading {
      const ticks = procStatTicks(procRoot);
      const own = process.cpuUsage();
      const wall = performance.now();
      let othersCpu: number | null = null;
      if (last?.ticks && ticks && ticks[1] > last.ticks[1]) {
        const busy = (ticks[0] - last.ticks[0]) / (ticks[1] - last.ticks[1]);
        const ownUs = own.user - last.own.user + (own.system - last.own.system);
        const ownShare = ownUs / 1000 / Math.max(1, wall - last.wall) / nCpu;
        othersCpu = Math.min(1, Math.max(0, busy - ownShare));
      }
      last = { ticks, own, wall };
      return { othersCpu, availableMB: readAvailableMB(procRoot), battery: readBattery(sysRoot), temperatureC: readTemperature(sysRoot) };
    },
  };
}

/** The monitor with this machine's sensors when none are given. */
export class Monitor extends CoreMonitor {
  constructor(opts: Omit<MonitorOptions, 'sensors'> & { sensors?: Sensors }) {
    super({ ...opts, sensors: opts.sensors ?? systemSensors() });
  }
}
