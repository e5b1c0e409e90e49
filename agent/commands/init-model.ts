import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { NestswapError } from '../../runtime/errors.js';
import { parseArch } from '../../runtime/arch.js';
import { generatePackage, GENERATED_FAMILIES, MODELS_DIR } from '../../models/generate.js';
import { numberOpt, parse, printJson } from './common.js';

const HELP = `Usage: nestswap init-model <family> [--seed S] [--out DIR] [--json]

Generates the seeded, untrained package of a generated family (${GENERATED_FAMILIES.join(', ')}) into
models/<family>/package (or --out). Commands that need it generate it on first use; this does it ahead.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { seed: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } }, HELP);
  if (!a) return 0;
  const family = a.positionals[0];
  if (!family) throw new NestswapError('ERR_USAGE', `init-model needs a generated family: one of ${GENERATED_FAMILIES.join(', ')}.`);
  if (!GENERATED_FAMILIES.includes(family))
    throw new NestswapError('ERR_FAMILY_UNKNOWN', `Unknown generated family '${family}'; should be one of: ${GENERATED_FAMILIES.join(', ')}.`);
  const archPath = join(MODELS_DIR, family, 'arch.json');
  const arch = parseArch(JSON.parse(readFileSync(archPath, 'utf8')), archPath);
  const t0 = performance.now();
  const out = generatePackage(arch, a.values.out ?? join(MODELS_DIR, family, 'package'), { seed: numberOpt(a.values.seed, '--seed') ?? 1 });
  const result = { family, out, trained: false, wallMs: Math.round(performance.now() - t0) };
  if (a.values.json) printJson(result);
  else process.stdout.write(`generated ${family} (untrained, seeded) in ${out}\n`);
  return 0;
}
