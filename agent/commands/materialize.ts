import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Materializer } from '../../runtime/materializer.js';
import { NestswapError } from '../../runtime/errors.js';
import { nchwcCalibration, nchwcSupport, verifyNchwc } from '../../runtime/node/nchwc.js';
import { nodeBackend } from '../../runtime/node/ort-node.js';
import { diskStatsStore } from '../stats-store.js';
import { loadSupernet } from '../packages.js';
import { parse, printJson, readConfigArg, required } from './common.js';
import { progress } from '../../runtime/node/progress.js';

const HELP = `Usage: nestswap materialize --supernet <dir|name> --subnet <json-or-file> --out <file.onnx> [--no-calibrate] [--unfolded] [--nchwc] [--cache DIR] [--json]

Writes a standalone ONNX model of the subnet. BatchNorm statistics are recalibrated on the package's
calibration set (OFA's way) and folded into the convolutions unless --no-calibrate / --unfolded.

--nchwc writes the graph in onnxruntime's NCHWc layout for this machine's x86 CPU (the form onnxruntime's
'all' optimisation gives it for the CPU provider, checked against that once): load it with graph
optimisation 'disabled' on a CPU with the same block size. The default graph is portable.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(
    argv,
    {
      supernet: { type: 'string' },
      subnet: { type: 'string' },
      out: { type: 'string' },
      'no-calibrate': { type: 'boolean' },
      unfolded: { type: 'boolean' },
      nchwc: { type: 'boolean' },
      cache: { type: 'string' },
      json: { type: 'boolean' },
    },
    HELP,
  );
  if (!a) return 0;
  const t0 = performance.now();
  const pkg = await loadSupernet(required(a.values.supernet, '--supernet'));
  const cfg = pkg.space.parse(readConfigArg(required(a.values.subnet, '--subnet')), '--subnet');
  const outPath = required(a.values.out, '--out');
  const m = new Materializer(pkg, nodeBackend, a.values.cache ? diskStatsStore(a.values.cache) : undefined, nchwcCalibration);
  let nchwcBlock = 0;
  if (a.values.nchwc) {
    if (a.values.unfolded) throw new NestswapError('ERR_USAGE', '--nchwc writes folded BatchNorm; it cannot be combined with --unfolded.');
    const support = await nchwcSupport();
    if (!support.block) throw new NestswapError('ERR_SESSION', `--nchwc: ${'reason' in support ? support.reason : 'no NCHWc kernels'}`);
    const reason = await verifyNchwc(m.weights, support.block);
    if (reason) throw new NestswapError('ERR_SESSION', `--nchwc: this package's NCHWc graphs do not match onnxruntime's optimisation (${reason})`);
    nchwcBlock = support.block;
  }
  const bar = progress('calibrating BN', { json: a.values.json });
  const calibration = bar.active ? { calibration: { onProgress: (done: number, total: number) => bar.update(done, total) } } : {};
  const r = await m.materialize(cfg, { calibrate: !a.values['no-calibrate'], bn: a.values.unfolded ? 'unfold' : 'fold', ...(nchwcBlock ? { nchwcBlock } : {}), ...calibration }).finally(() => bar.end());
  mkdirSync(dirname(outPath), { recursive: true });
  // Written to a temp file and renamed: a failure never leaves a partial model behind.
  const tmp = `${outPath}.tmp-${process.pid}`;
  writeFileSync(tmp, r.bytes);
  renameSync(tmp, outPath);
  const result = {
    out: outPath,
    subnetId: r.subnetId,
    bytes: r.bytes.length,
    params: r.params,
    macs: r.macs,
    calibrated: r.calibrated,
    layout: nchwcBlock ? `nchwc${nchwcBlock}` : 'plain',
    wallMs: Math.round((performance.now() - t0) * 10) / 10,
  };
  if (a.values.json) printJson(result);
  else process.stdout.write(`wrote ${outPath}: ${r.subnetId}, ${(r.bytes.length / 1e6).toFixed(2)} MB, ${(r.macs / 1e6).toFixed(2)} M MACs, ${r.params} params${r.calibrated ? ', BN recalibrated' : ''}\n`);
  return 0;
}
