/** `nestswap publish <dir>`: uploads a package directory; the registry verifies it before it is visible. */
import { resolveSupernetDir } from '../../runtime/node/packages.js';
import { parse, printJson } from '../../runtime/node/cli.js';
import { NestswapError } from '../../runtime/errors.js';
import { progress } from '../../runtime/node/progress.js';
import { ADMIN_OPTIONS, adminClient } from './shared.js';

const HELP = `Usage: nestswap publish <package-dir|family> --registry URL --token T [--timeout-ms MS] [--json]`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { ...ADMIN_OPTIONS }, HELP);
  if (!a) return 0;
  const dirArg = a.positionals[0];
  if (!dirArg) throw new NestswapError('ERR_USAGE', 'Give the package directory to publish.');
  const dir = resolveSupernetDir(dirArg);
  const client = adminClient(a.values);
  const bar = progress('uploading', { json: a.values.json, unit: 'bytes' });
  const r = await client.publishDir(dir, bar.active ? (sent, total) => bar.update(sent, total) : undefined).finally(() => bar.end());
  if (a.values.json) printJson(r);
  else process.stdout.write(`${r.created ? 'published' : 'already published'} ${r.name}@${r.version} (${r.files} files, manifest ${r.manifestSha256.slice(0, 12)})\n`);
  return 0;
}
