/**
 * `nestswap search`: best subnet under a latency / memory / MACs budget, or the Pareto front.
 * A thin shell: inputs are read here, the search is runtime/search.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseArch, scaleMbv3Arch, type Arch } from '../../runtime/arch.js';
import { NestswapError } from '../../runtime/errors.js';
import { flatLatencyModel } from '../../runtime/latency-table.js';
import {
  autoSearch,
  evolutionSearch,
  exactSearch,
  islandSearch,
  sweepSearch,
  FAST_EVOLUTION,
  flatLatencyPredictor,
  flatMemoryPredictor,
  OFA_EVOLUTION,
  probeLinear,
  paretoSearch,
  staticMemoryModel,
  type Budget,
  type ParetoResult,
  type SearchResult,
} from '../../runtime/search/index.js';
import { Space } from '../../runtime/space.js';
import { progress } from '../../runtime/node/progress.js';
import { loadOnnxAccuracyPredictor, packageSearchInputs, readLatencyTableDir, type SearchInputs } from '../search-inputs.js';
import { loadSupernet } from '../packages.js';
import { readProfileFile } from '../profiler.js';

const HELP = `Usage: nestswap search --supernet <dir|name> [--profile <file>] (--latency-ms X | --memory-mb Y | --macs M | --pareto)
                       [--accuracy-predictor <file.onnx>] [--seed S] [--json]
       nestswap search --space <name|arch.json> --accuracy-predictor <file.onnx> --latency-table <dir>
                       --latency-ms X [--memory-mb Y] [--macs M] [--pareto] [--seed S] [--width-mult W]
                       [--method auto|sweep|islands|fast|ofa|exact] [--generations N] [--json]

Finds the subnet with the best predicted accuracy whose predicted latency, memory and MACs all fit
the budget (or, with --pareto, the accuracy / latency / memory Pareto front under it).

  --supernet            a package (its accuracy predictor; latency and memory from --profile, a
                        device profile made by "nestswap profile")
  --space               a family under models/ (e.g. ofa-mbv3-w1.0) or a path to an arch.json
  --width-mult          scale every width (OFA's w1.2 supernet: --width-mult 1.2)
  --accuracy-predictor  ONNX model, float32 [N, n_dim] -> [N, 1], OFA's one-hot encoding; n_dim picks
                        the resolution list (the space's, or the latency tables')
  --latency-table       directory of OFA <resolution>_lookup_table.yaml files (ms)
  --latency-ms          latency budget in ms (sum of table means)
  --memory-mb           memory budget in MB (static estimate: fp32 weights + peak activations)
  --macs                MACs budget (multiply-accumulates; 300e6 or 300M)
  --method              auto (default: exact when the predictor is linear and one additive limit is
                        set, else sweep), sweep (fast, then every resolution polished), islands (one
                        population per resolution), fast, ofa (OFA's EvolutionFinder settings),
                        exact (linear predictors only)
  --generations         override the number of generations
  --seed                random seed (default 0)
  --json                print JSON

Exit status: 0 found, 1 no subnet fits the budget (ERR_BUDGET_INFEASIBLE) or an input is invalid, 2 bad usage (ERR_USAGE).`;

export type { SearchInputs } from '../search-inputs.js';

export const SEARCH_METHODS = ['auto', 'sweep', 'islands', 'fast', 'ofa', 'exact'] as const;
export type SearchMethodFlag = (typeof SEARCH_METHODS)[number];

export interface SearchFlags {
  pareto?: boolean;
  /** --pareto: generations done of the total */
  onProgress?: (done: number, total: number) => void;
  method?: SearchMethodFlag;
  seed?: number;
  generations?: number;
}

/** The hook for every front end (this command, `--supernet --profile`, the agent, the registry). */
export async function searchWith(inputs: SearchInputs, budget: Budget, flags: SearchFlags = {}): Promise<SearchResult | ParetoResult> {
  const problem = { arch: inputs.arch, predictor: inputs.predictor, encoder: inputs.encoder, ...inputs.efficiency };
  const seed = flags.seed ?? 0;
  const gens = flags.generations === undefined ? {} : { generations: flags.generations };
  if (flags.pareto) return paretoSearch(problem, budget, { seed, ...gens, ...(flags.onProgress ? { onProgress: flags.onProgress } : {}) });
  if (flags.method === 'exact') {
    const { linear, maxError } = await probeLinear(inputs.predictor, inputs.encoder);
    if (!linear)
      throw new NestswapError('ERR_USAGE', `--method exact needs a linear accuracy predictor; this one deviates from linear by up to ${maxError.toPrecision(2)} (use auto, sweep, islands, fast or ofa).`);
    return exactSearch({ ...problem, predictor: linear }, budget);
  }
  if (flags.method === 'fast' || flags.method === 'ofa') return evolutionSearch(problem, budget, { ...(flags.method === 'ofa' ? OFA_EVOLUTION : FAST_EVOLUTION), seed, ...gens });
  if (flags.method === 'islands') return islandSearch(problem, budget, { seed, ...gens });
  if (flags.method === 'sweep') return sweepSearch(problem, budget, { seed, ...gens });
  return autoSearch(problem, budget, { seed, ...gens });
}

const modelsDir = fileURLToPath(new URL('../../../models/', import.meta.url));

function readArch(spaceArg: string, widthMult: number | undefined): Arch {
  const candidates = [spaceArg, join(spaceArg, 'arch.json'), join(modelsDir, spaceArg, 'arch.json')];
  const path = candidates.find((p) => existsSync(p) && statSync(p).isFile());
  if (!path) throw new NestswapError('ERR_FAMILY_UNKNOWN', `--space '${spaceArg}' is neither an arch.json nor a family under ${modelsDir}.`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new NestswapError('ERR_ARCH_INVALID', `${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const arch = parseArch(json, path);
  if (widthMult === undefined || widthMult === 1) return arch;
  return scaleMbv3Arch(arch, widthMult, `${arch.family.replace(/-w[\d.]+$/, '')}-w${widthMult}`);
}

function num(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*([-+]?[\d.]+(?:e[-+]?\d+)?|NaN|[-+]?Infinity)\s*([kKMG]?)\s*$/.exec(value);
  const scale = { '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9 }[m?.[2] ?? ''] ?? 1;
  const n = m ? Number(m[1]) * scale : NaN;
  if (!m || (Number.isNaN(n) && m[1] !== 'NaN')) throw new NestswapError('ERR_USAGE', `Option ${flag} must be a number (got '${value}').`);
  return n;
}

const fmt = (v: number | null, d: number) => (v === null ? '-' : v.toFixed(d));

function printHuman(space: Space, r: SearchResult | ParetoResult, budget: Budget): void {
  const lines: string[] = [];
  if ('front' in r) {
    lines.push(`Pareto front: ${r.front.length} subnets (${r.evaluations} predictor evaluations, ${r.searchMs.toFixed(0)} ms)`);
    lines.push(`${'accuracy'.padStart(9)} ${'latency ms'.padStart(11)} ${'memory MB'.padStart(10)} ${'MMACs'.padStart(8)}  subnet`);
    for (const p of r.front)
      lines.push(
        `${fmt(p.predicted.accuracy, 4).padStart(9)} ${fmt(p.predicted.latencyMs, 2).padStart(11)} ${fmt(p.predicted.memoryMB, 1).padStart(10)} ${fmt(p.predicted.macs / 1e6, 1).padStart(8)}  ${space.id(p.subnet)}`,
      );
  } else {
    const b = (k: keyof Budget, unit: string, scale = 1) => (budget[k] === undefined ? '' : `  (budget ${(budget[k]! / scale).toString()} ${unit})`);
    lines.push(`subnet      ${space.id(r.subnet)}`);
    lines.push(`accuracy    ${fmt(r.predicted.accuracy, 4)} (predicted)`);
    lines.push(`latency     ${fmt(r.predicted.latencyMs, 2)} ms${b('latencyMs', 'ms')}`);
    lines.push(`memory      ${fmt(r.predicted.memoryMB, 1)} MB${b('memoryMB', 'MB')}`);
    lines.push(`MACs        ${fmt(r.predicted.macs / 1e6, 1)} M${b('macs', 'M', 1e6)}`);
    lines.push(`search      ${r.searchMs.toFixed(0)} ms, ${r.evaluations} predictor evaluations`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      space: { type: 'string' },
      'width-mult': { type: 'string' },
      'accuracy-predictor': { type: 'string' },
      'latency-table': { type: 'string' },
      'latency-ms': { type: 'string' },
      'memory-mb': { type: 'string' },
      macs: { type: 'string' },
      pareto: { type: 'boolean' },
      method: { type: 'string' },
      generations: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      // reserved for the package + device-profile form (another command path)
      supernet: { type: 'string' },
      profile: { type: 'string' },
    },
  });
  if (v.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (v.supernet !== undefined && v.space !== undefined) throw new NestswapError('ERR_USAGE', 'Give either --supernet (with --profile) or --space (with --accuracy-predictor and --latency-table), not both.');
  if (v.profile !== undefined && v.supernet === undefined) throw new NestswapError('ERR_USAGE', '--profile needs --supernet.');
  if (!v.space && !v.supernet) throw new NestswapError('ERR_USAGE', 'Missing required option --supernet (or --space).');
  if (!v.supernet && !v['accuracy-predictor']) throw new NestswapError('ERR_USAGE', 'Missing required option --accuracy-predictor.');
  const method = (v.method ?? 'auto') as SearchMethodFlag;
  if (!SEARCH_METHODS.includes(method)) throw new NestswapError('ERR_USAGE', `--method is '${method}'; should be one of: ${SEARCH_METHODS.join(', ')}.`);
  const widthMult = num(v['width-mult'], '--width-mult');
  if (widthMult !== undefined && !(widthMult > 0 && Number.isFinite(widthMult))) throw new NestswapError('ERR_USAGE', '--width-mult must be a positive number.');
  const generations = num(v.generations, '--generations');
  if (generations !== undefined && !(Number.isInteger(generations) && generations >= 1)) throw new NestswapError('ERR_USAGE', '--generations must be a positive integer.');
  const seed = num(v.seed, '--seed') ?? 0;
  if (!Number.isInteger(seed)) throw new NestswapError('ERR_USAGE', '--seed must be an integer.');
  const budget: Budget = {};
  const lat = num(v['latency-ms'], '--latency-ms');
  const mem = num(v['memory-mb'], '--memory-mb');
  const macs = num(v.macs, '--macs');
  if (lat !== undefined) budget.latencyMs = lat;
  if (mem !== undefined) budget.memoryMB = mem;
  if (macs !== undefined) budget.macs = macs;
  if (!v.pareto && Object.keys(budget).length === 0) throw new NestswapError('ERR_USAGE', 'Give a budget: --latency-ms, --memory-mb and/or --macs (or --pareto).');
  if (lat !== undefined && !v['latency-table'] && !v.profile) throw new NestswapError('ERR_USAGE', v.supernet ? '--latency-ms needs --profile <file> (make one with nestswap profile).' : '--latency-ms needs --latency-table <dir>.');
  const bar = progress('searching (Pareto)', { json: v.json });
  const flags: SearchFlags = {
    seed,
    method,
    ...(v.pareto ? { pareto: true, ...(bar.active ? { onProgress: (d: number, t: number) => bar.update(d, t) } : {}) } : {}),
    ...(generations === undefined ? {} : { generations }),
  };

  if (v.supernet) {
    const pkg = await loadSupernet(v.supernet);
    const profile = v.profile ? await readProfileFile(v.profile) : undefined;
    const inputs = await packageSearchInputs(pkg, profile, v['accuracy-predictor']);
    const result = await searchWith(inputs, budget, flags).finally(() => bar.end());
    if (v.json) process.stdout.write(`${JSON.stringify({ supernet: pkg.name, budget, ...result, ...('subnet' in result ? { id: pkg.space.id(result.subnet) } : {}) }, null, 2)}\n`);
    else printHuman(pkg.space, result, budget);
    return 0;
  }
  if (!v.space) throw new NestswapError('ERR_USAGE', 'Missing required option --space.');
  if (!v['accuracy-predictor']) throw new NestswapError('ERR_USAGE', 'Missing required option --accuracy-predictor.');

  const arch = readArch(v.space, widthMult);
  const space = Space.fromArch(arch);
  const tables = v['latency-table'] ? await readLatencyTableDir(v['latency-table']) : undefined;
  const tableRes = tables ? [...tables.keys()].sort((a, b) => a - b).filter((r) => space.image_size_list.includes(r)) : [];
  const { predictor, encoder } = await loadOnnxAccuracyPredictor(v['accuracy-predictor'], space, tableRes.length ? [tableRes] : []);
  const resolutions = (tables ? tableRes : [...space.image_size_list]).filter((r) => encoder.imageSizeList.includes(r));
  if (resolutions.length === 0)
    throw new NestswapError('ERR_CONFIG_INVALID', `The accuracy predictor (${encoder.imageSizeList.join(', ')}) and the latency tables (${tableRes.join(', ')}) share no resolution.`);
  const efficiency: SearchInputs['efficiency'] = {};
  if (tables) efficiency.latency = flatLatencyPredictor(flatLatencyModel(tables, arch, resolutions));
  if (mem !== undefined || v.pareto) efficiency.memory = flatMemoryPredictor(staticMemoryModel(arch, resolutions));
  const result = await searchWith({ arch, predictor, encoder, efficiency }, budget, flags).finally(() => bar.end());
  if (v.json) process.stdout.write(`${JSON.stringify({ space: arch.family, budget, resolutions, ...result, ...('subnet' in result ? { id: space.id(result.subnet) } : {}) }, null, 2)}\n`);
  else printHuman(space, result, budget);
  return 0;
}
