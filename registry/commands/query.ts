/** `nestswap query`: the best subnet for a device (or device class) and budget, from the registry. */
import { numberOpt, parse, printJson, required } from '../../runtime/node/cli.js';
import { NestswapError } from '../../runtime/errors.js';
import { ADMIN_OPTIONS, adminClient } from './shared.js';

const HELP = `Usage: nestswap query --registry URL --token T [--timeout-ms MS] --supernet NAME (--device ID | --device-class C)
                      --latency-ms X [--memory-mb Y] [--version V] [--json]`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(
    argv,
    { ...ADMIN_OPTIONS, supernet: { type: 'string' }, device: { type: 'string' }, 'device-class': { type: 'string' }, 'latency-ms': { type: 'string' }, 'memory-mb': { type: 'string' }, version: { type: 'string' } },
    HELP,
  );
  if (!a) return 0;
  const v = a.values;
  if ((v.device === undefined) === (v['device-class'] === undefined)) throw new NestswapError('ERR_USAGE', 'Give exactly one of --device or --device-class.');
  const latencyMs = numberOpt(v['latency-ms'], '--latency-ms');
  const memoryMB = numberOpt(v['memory-mb'], '--memory-mb');
  if (latencyMs === undefined && memoryMB === undefined) throw new NestswapError('ERR_USAGE', 'Give --latency-ms and/or --memory-mb.');
  const client = adminClient(v);
  const r = await client.query({
    supernet: required(v.supernet, '--supernet'),
    ...(v.version ? { version: v.version } : {}),
    ...(v.device ? { device: v.device } : { deviceClass: v['device-class']! }),
    budget: { ...(latencyMs !== undefined ? { latencyMs } : {}), ...(memoryMB !== undefined ? { memoryMB } : {}) },
  });
  if (v.json) printJson(r);
  else {
    const p = r.predicted;
    process.stdout.write(
      `${r.subnetId}\n  accuracy ${(p.accuracy * 100).toFixed(2)}%  latency ${p.latencyMs?.toFixed(2) ?? '-'} ms  memory ${p.memoryMB?.toFixed(1) ?? '-'} MB  ${(p.macs / 1e6).toFixed(2)} M MACs\n  config ${JSON.stringify(r.subnet)}\n  onnx ${r.onnx}\n`,
    );
  }
  return 0;
}
