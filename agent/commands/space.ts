import { mulberry32 } from '../../runtime/random.js';
import { loadSupernet } from '../packages.js';
import { numberOpt, parse, printJson, required } from './common.js';

const HELP = `Usage: nestswap space --supernet <dir|name> [--sample N] [--seed S] [--json]

Prints the search space: choices, number of subnets, the smallest and largest configs, and N seeded samples.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { supernet: { type: 'string' }, sample: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' } }, HELP);
  if (!a) return 0;
  const pkg = await loadSupernet(required(a.values.supernet, '--supernet'));
  const n = numberOpt(a.values.sample, '--sample') ?? 0;
  const rng = mulberry32(numberOpt(a.values.seed, '--seed') ?? 0);
  const space = pkg.space;
  const out = {
    ...space.toJSON(),
    size: space.size(),
    min: space.min(),
    max: space.max(),
    samples: Array.from({ length: Math.max(0, Math.floor(n)) }, () => space.sample(rng)),
  };
  if (a.values.json) printJson(out);
  else {
    process.stdout.write(
      `${pkg.name} ${pkg.manifest.version} (${pkg.manifest.trained ? 'trained' : 'untrained'})\n` +
        `  kernel sizes  ${out.ks_list.join(', ')}\n  expand ratios ${out.expand_list.join(', ')}\n  depths        ${out.depth_list.join(', ')}\n` +
        `  resolutions   ${out.image_size_list.join(', ')}\n  stages        ${out.n_stage}\n  subnets       ${out.size.toExponential(3)}\n` +
        `  smallest      ${space.id(out.min)}\n  largest       ${space.id(out.max)}\n` +
        out.samples.map((s) => `  sample        ${space.id(s)}\n`).join(''),
    );
  }
  return 0;
}
