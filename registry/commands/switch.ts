/** `nestswap switch`: pushes a subnet (pinned) or a budget to a device and waits for its acknowledgement. */
import { numberOpt, parse, printJson, readConfigArg, required } from '../../runtime/node/cli.js';
import { NestswapError } from '../../runtime/errors.js';
import type { CommandBody } from '../protocol.js';
import { ADMIN_OPTIONS, adminClient } from './shared.js';

const HELP = `Usage: nestswap switch --registry URL --token T [--timeout-ms MS] --device ID (--subnet <json|file> | --latency-ms X [--memory-mb Y] | --unpin)
                       [--wait-ms 15000] [--json]

The command is stored and pushed over the device's WebSocket (or delivered when it reconnects).
Exit code 0 when acknowledged, 1 when the device reported a failure, 3 when not acknowledged in time.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(
    argv,
    { ...ADMIN_OPTIONS, device: { type: 'string' }, subnet: { type: 'string' }, 'latency-ms': { type: 'string' }, 'memory-mb': { type: 'string' }, unpin: { type: 'boolean' }, 'wait-ms': { type: 'string' } },
    HELP,
  );
  if (!a) return 0;
  const v = a.values;
  const latencyMs = numberOpt(v['latency-ms'], '--latency-ms');
  const memoryMB = numberOpt(v['memory-mb'], '--memory-mb');
  const waitMs = numberOpt(v['wait-ms'], '--wait-ms') ?? 15_000;
  const kinds = [v.subnet !== undefined, latencyMs !== undefined || memoryMB !== undefined, Boolean(v.unpin)].filter(Boolean).length;
  if (kinds !== 1) throw new NestswapError('ERR_USAGE', 'Give exactly one of --subnet, --latency-ms/--memory-mb, or --unpin.');
  const body: CommandBody =
    v.subnet !== undefined
      ? { type: 'switch', subnet: readConfigArg(v.subnet) as never, waitMs }
      : v.unpin
        ? { type: 'unpin', waitMs }
        : { type: 'budget', budget: { ...(latencyMs !== undefined ? { latencyMs } : {}), ...(memoryMB !== undefined ? { memoryMB } : {}) }, waitMs };
  const client = adminClient(v);
  const device = required(v.device, '--device');
  const c = await client.command(device, body);
  if (v.json) printJson(c);
  else process.stdout.write(`${c.id} ${c.type} → ${device}: ${c.status}${c.result ? ` ${JSON.stringify(c.result)}` : ''}${c.error ? ` ${c.error.code}: ${c.error.message}` : ''}\n`);
  return c.status === 'acked' ? 0 : c.status === 'failed' ? 1 : 3;
}
