import { NestswapError } from '../../runtime/errors.js';
import { profileToLatencyTables } from '../../runtime/profile.js';
import { currentDeviceIdentity } from '../device.js';
import { loadSupernet } from '../packages.js';
import { defaultDataDir, loadOrProfile, writeProfileFile } from '../profiler.js';
import { progress } from '../../runtime/node/progress.js';
import { writeLatencyTableDir } from '../search-inputs.js';
import { numberOpt, parse, printJson, required } from './common.js';

const HELP = `Usage: nestswap profile --supernet <dir|name> [--ep cpu] [--threads N] [--out FILE] [--lut DIR]
                        [--data DIR] [--resolutions 160,192,224] [--runs N] [--force] [--json]

Measures every distinct part of the space on this device (same ORT, EP, threads, optimisation 'all'),
calibrates against whole subnets and validates on held-out random subnets. The profile is cached in
the data directory (default ~/.nestswap) and reused while device, ORT version, EP, threads and
weights match. --out writes the profile JSON, --lut OFA <r>_lookup_table.yaml files.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(
    argv,
    {
      supernet: { type: 'string' },
      ep: { type: 'string' },
      threads: { type: 'string' },
      out: { type: 'string' },
      lut: { type: 'string' },
      data: { type: 'string' },
      resolutions: { type: 'string' },
      runs: { type: 'string' },
      'subnet-runs': { type: 'string' },
      force: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    HELP,
  );
  if (!a) return 0;
  const t0 = performance.now();
  const pkg = await loadSupernet(required(a.values.supernet, '--supernet'));
  const threads = numberOpt(a.values.threads, '--threads') ?? 1;
  if (!Number.isInteger(threads) || threads < 0) throw new NestswapError('ERR_USAGE', `--threads must be a non-negative integer (got ${threads}).`);
  const resolutions = a.values.resolutions?.split(',').map((s) => {
    const r = Number(s);
    if (!Number.isInteger(r)) throw new NestswapError('ERR_USAGE', `--resolutions must be comma-separated integers (got '${s}').`);
    return r;
  });
  const runs = numberOpt(a.values.runs, '--runs');
  const subnetRuns = numberOpt(a.values['subnet-runs'], '--subnet-runs');
  const bar = progress('profiling', { json: a.values.json });
  const r = await loadOrProfile(pkg, {
    device: await currentDeviceIdentity(),
    ep: a.values.ep ?? 'cpu',
    threads,
    dataDir: a.values.data ?? defaultDataDir(),
    ...(a.values.force ? { force: true } : {}),
    ...(resolutions ? { resolutions } : {}),
    ...(runs ? { runs } : {}),
    ...(subnetRuns ? { subnetRuns } : {}),
    onProgress: (p) => bar.update(p.done, p.total, p.phase),
  }).finally(() => bar.end());
  const p = r.profile;
  if (a.values.out) await writeProfileFile(a.values.out, p);
  if (a.values.lut) await writeLatencyTableDir(a.values.lut, profileToLatencyTables(p, pkg.arch));
  const v = p.validation;
  const result = {
    device: p.deviceClass,
    fingerprint: p.fingerprint,
    ep: p.ep,
    threads: p.threads,
    entries: p.parts.length,
    wallMs: Math.round(performance.now() - t0),
    profileWallMs: Math.round(p.method.wallMs),
    cached: r.cached,
    path: r.path,
    ...(r.cached ? {} : { reprofiledBecause: r.reasons }),
    calibration: p.latency.model.calibration,
    validation: { subnets: v.subnets, mape: v.mape, within10: v.within10, kendallTau: v.kendallTau, passes: p.method.subnetPasses ?? 1 },
    ...(p.memory ? { memory: { coef: p.memory.coef, fitSamples: p.memory.fitSamples.length } } : {}),
  };
  if (a.values.json) printJson(result);
  else
    process.stdout.write(
      `${r.cached ? 'reused' : 'measured'} profile ${r.path}: ${p.deviceClass}, ${p.ep} × ${p.threads} thread(s), ${p.parts.length} parts; ` +
        `validation on ${v.subnets} subnets: MAPE ${(v.mape * 100).toFixed(1)}%, within ±10% ${(v.within10 * 100).toFixed(0)}%, Kendall τ ${v.kendallTau?.toFixed(2) ?? 'n/a'}` +
        `${(p.method.subnetPasses ?? 1) > 1 ? ` (${p.method.subnetPasses} whole-subnet passes: the first missed the validation gate)` : ''}\n`,
    );
  return 0;
}
