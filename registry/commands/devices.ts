/** `nestswap devices`: the devices enrolled in a registry. */
import { parse, printJson } from '../../runtime/node/cli.js';
import { ADMIN_OPTIONS, adminClient } from './shared.js';

const HELP = `Usage: nestswap devices --registry URL --token T [--timeout-ms MS] [--json]`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { ...ADMIN_OPTIONS }, HELP);
  if (!a) return 0;
  const client = adminClient(a.values);
  const { devices } = await client.devices();
  if (a.values.json) {
    printJson(devices);
    return 0;
  }
  const rows = devices.map((d) => [d.id, d.name, d.online ? 'online' : 'offline', d.deviceClass ?? '-', d.subnetId ?? '-', d.budget ? JSON.stringify(d.budget) : '-', d.lastSeen ?? '-', d.profile ? 'yes' : 'no']);
  const head = ['ID', 'NAME', 'STATE', 'CLASS', 'SUBNET', 'BUDGET', 'LAST SEEN', 'PROFILE'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(w[i]!)).join('  ')}\n`);
  return 0;
}
