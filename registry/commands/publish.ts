/**
 * `nestswap publish <dir>`: uploads a package directory; the registry verifies it before it is visible.
 * With --sign-targets the publisher signs the package's TUF targets here (docs/signing.md).
 */
import { resolveSupernetDir } from '../../runtime/node/packages.js';
import { numberOpt, parse, printJson } from '../../runtime/node/cli.js';
import { NestswapError } from '../../runtime/errors.js';
import { progress } from '../../runtime/node/progress.js';
import { signPackageTargets } from '../tuf/publisher.js';
import { ADMIN_OPTIONS, adminClient } from './shared.js';

const HELP = `Usage: nestswap publish <package-dir|family> --registry URL --token T [--sign-targets KEYFILE]... [--targets-expires-days 365] [--timeout-ms MS] [--json]

--sign-targets KEYFILE  sign the package's TUF targets with this targets key (repeat for a threshold
                        above 1); without it the registry signs them only if it runs --online-targets.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { ...ADMIN_OPTIONS, 'sign-targets': { type: 'string', multiple: true }, 'targets-expires-days': { type: 'string' } }, HELP);
  if (!a) return 0;
  const dirArg = a.positionals[0];
  if (!dirArg) throw new NestswapError('ERR_USAGE', 'Give the package directory to publish.');
  const dir = resolveSupernetDir(dirArg);
  const client = adminClient(a.values);
  const keyFiles = a.values['sign-targets'] ?? [];
  const expiresDays = numberOpt(a.values['targets-expires-days'], '--targets-expires-days');
  const bar = progress('uploading', { json: a.values.json, unit: 'bytes' });
  const r = await client.publishDir(dir, bar.active ? (sent, total) => bar.update(sent, total) : undefined).finally(() => bar.end());
  const signed = keyFiles.length ? await signPackageTargets(client, dir, keyFiles, expiresDays === undefined ? {} : { expiresDays }) : undefined;
  if (a.values.json) printJson(signed ? { ...r, targets: signed } : r);
  else {
    process.stdout.write(`${r.created ? 'published' : 'already published'} ${r.name}@${r.version} (${r.files} files, manifest ${r.manifestSha256.slice(0, 12)})\n`);
    if (signed) process.stdout.write(`${signed.signed ? 'signed' : 'already signed'}: targets version ${signed.targetsVersion}, ${r.name} seq ${signed.seq}\n`);
  }
  return 0;
}
