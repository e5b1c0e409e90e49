import { readFileSync } from 'node:fs';
import { NestswapError } from '../../runtime/errors.js';
import { importOfaCheckpoint, parseSizeList } from '../../runtime/node/import-ofa.js';
import { numberOpt, parse, printJson, required } from './common.js';
import { progress } from '../../runtime/node/progress.js';

const HELP = `Usage: nestswap import ofa --checkpoint <file> --net <ofa net id> --calibration <dir|file.u8> --out <dir>
         [--labels <file>] [--accuracy-predictor <file.onnx>] [--predictor-image-size-list L]
         [--image-size-list 128..224:4] [--calibration-images N] [--name NAME] [--version V] [--json]

Imports a Once-for-All supernet checkpoint (torch.save's zip format with {'state_dict': ...} or a bare
state_dict, or safetensors) as a nestswap.package/1 directory. --net names OFA's net, e.g.
ofa_mbv3_d234_e346_k357_w1.0, ofa_mbv3_d234_e346_k357_w1.2, ofa_proxyless_d234_e346_k357_w1.3; every tensor
is checked against it. --calibration is a directory of JPEG/PNG images (resized and centre-cropped as OFA
evaluates ImageNet) or a raw uint8 NCHW file at the native size (the largest image size, 224 by default).
--labels: one class name a line (default for 1,000 classes: ImageNet's). --accuracy-predictor adds an ONNX
predictor in OFA's encoding; --predictor-image-size-list gives its resolutions when it encodes fewer than the
space (OFA's w1.2 predictor: 160..224:16).`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(
    argv,
    {
      checkpoint: { type: 'string' },
      net: { type: 'string' },
      calibration: { type: 'string' },
      out: { type: 'string' },
      labels: { type: 'string' },
      'accuracy-predictor': { type: 'string' },
      'predictor-image-size-list': { type: 'string' },
      'image-size-list': { type: 'string' },
      'calibration-images': { type: 'string' },
      name: { type: 'string' },
      version: { type: 'string' },
      json: { type: 'boolean' },
    },
    HELP,
  );
  if (!a) return 0;
  const kind = a.positionals[0];
  if (kind !== 'ofa') throw new NestswapError('ERR_USAGE', `import needs a source kind; should be one of: ofa (got ${kind === undefined ? 'none' : `'${kind}'`}).`);
  const imageSizeList = a.values['image-size-list'] ? parseSizeList(a.values['image-size-list']) : undefined;
  const predictorPath = a.values['accuracy-predictor'];
  let predictor: { bytes: Uint8Array; imageSizeList?: number[] } | undefined;
  if (predictorPath) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(predictorPath));
    } catch (cause) {
      throw new NestswapError('ERR_USAGE', `Cannot read --accuracy-predictor ${predictorPath}: ${(cause as Error).message}`, { cause });
    }
    const list = a.values['predictor-image-size-list'];
    predictor = { bytes, ...(list ? { imageSizeList: parseSizeList(list, '--predictor-image-size-list') } : {}) };
  }
  const n = numberOpt(a.values['calibration-images'], '--calibration-images');
  if (n !== undefined && !(Number.isInteger(n) && n > 0)) throw new NestswapError('ERR_USAGE', `--calibration-images must be a positive integer (got ${n}).`);
  const bar = progress('importing', { json: a.values.json });
  const r = await importOfaCheckpoint({
    ...(bar.active ? { onProgress: (done: number, total: number, step: string) => bar.update(done, total, step) } : {}),
    checkpoint: required(a.values.checkpoint, '--checkpoint'),
    net: required(a.values.net, '--net'),
    calibration: required(a.values.calibration, '--calibration'),
    out: required(a.values.out, '--out'),
    ...(a.values.labels ? { labels: a.values.labels } : {}),
    ...(imageSizeList ? { imageSizeList } : {}),
    ...(predictor ? { predictor } : {}),
    ...(a.values.name ? { name: a.values.name } : {}),
    ...(a.values.version ? { version: a.values.version } : {}),
    ...(n !== undefined ? { calibrationImages: n } : {}),
  }).finally(() => bar.end());
  const summary = {
    out: r.out,
    name: r.manifest.name,
    version: r.manifest.version,
    net: r.manifest.arch.origin,
    classes: r.manifest.arch.classes,
    blockSlots: r.manifest.arch.stages.reduce((s, st) => s + (st.blocks ?? Math.max(...r.manifest.arch.space.depth_list)), 0),
    tensors: r.tensors,
    unusedTensors: r.unusedTensors,
    calibrationImages: r.calibrationImages,
    accuracyPredictor: r.manifest.files.some((f) => f.role === 'accuracy-predictor'),
    timings: Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, Math.round(v)])),
  };
  if (a.values.json) printJson(summary);
  else {
    process.stdout.write(`imported ${summary.net} as ${summary.name}@${summary.version} into ${summary.out}\n`);
    process.stdout.write(`  ${summary.tensors} tensors, ${summary.classes} classes, ${summary.blockSlots} block slots, ${summary.calibrationImages} calibration images` + `${summary.accuracyPredictor ? ', accuracy predictor' : ''} (${summary.timings.totalMs} ms)\n`);
    if (summary.unusedTensors.length) process.stdout.write(`  not used by the net: ${summary.unusedTensors.slice(0, 5).join(', ')}${summary.unusedTensors.length > 5 ? ', …' : ''}\n`);
  }
  return 0;
}
