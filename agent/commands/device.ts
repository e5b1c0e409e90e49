import { discoverDevice } from '../device.js';
import { parse, printJson } from './common.js';

const HELP = `Usage: nestswap device [--json] [--ep NAME ...] [--root DIR]

Discovers this device: OS, CPU (SIMD flags), memory, GPUs, battery, temperature, NPUs (kernel
interfaces) and the onnxruntime execution providers that can actually run a model here (each is
tried on a tiny model; failures are reported with the runtime's error). --ep adds EPs to try.
--root reads /sys, /dev and /proc under another directory (for tests).`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { json: { type: 'boolean' }, ep: { type: 'string', multiple: true }, root: { type: 'string' } }, HELP);
  if (!a) return 0;
  const d = await discoverDevice({ ...(a.values.root ? { root: a.values.root } : {}), ...(a.values.ep ? { eps: a.values.ep } : {}) });
  if (a.values.json) {
    printJson(d);
    return 0;
  }
  const lines = [
    `device    ${d.deviceClass} (fingerprint ${d.fingerprint})`,
    `os        ${d.os.distro} ${d.os.release}, kernel ${d.os.kernel}, ${d.os.platform}/${d.os.arch}`,
    `cpu       ${d.cpu.manufacturer} ${d.cpu.brand}, ${d.cpu.cores} cores (${d.cpu.physicalCores} physical)${d.cpu.speedGHz ? `, ${d.cpu.speedGHz} GHz` : ''}`,
    `simd      ${d.cpu.simd.join(' ') || 'none reported'}`,
    `memory    ${(d.memory.totalMB / 1024).toFixed(1)} GiB total, ${(d.memory.availableMB / 1024).toFixed(1)} GiB available`,
    `gpus      ${d.gpus.map((g) => `${g.vendor} ${g.model}`).join('; ') || 'none'}`,
    `npus      ${d.npus.map((n) => `${n.kind} at ${n.path}${n.readable ? '' : ` (unreadable: ${n.error})`}`).join('; ') || 'none'}`,
    `battery   ${d.battery.present ? `${d.battery.percent ?? '?'}%${d.battery.charging ? ', charging' : ''}` : 'none'}`,
    `temp      ${d.temperature.readable ? `${d.temperature.cpuC} °C` : 'not readable'}`,
    `ort       ${d.onnxruntime.version}, bundled EPs: ${d.onnxruntime.bundledEps.join(', ')}`,
    ...d.eps.map((e) => `  ep ${e.name.padEnd(8)} ${e.usable ? 'usable' : 'NOT usable'}: ${e.reason}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
