/** `nestswap keys init | rotate`: the operator's TUF keys and root (docs/signing.md). */
import { parse, printJson } from '../../runtime/node/cli.js';
import { NestswapError } from '../../runtime/errors.js';
import { initKeyDir, rotateRoot, type RoleSetup } from '../tuf/keydir.js';
import { ROLES, type RoleName } from '../tuf/keys.js';
import { ADMIN_OPTIONS, adminClient } from './shared.js';
import { readFileSync } from 'node:fs';

const HELP = `Usage:
  nestswap keys init --out DIR [--threshold ROLE=K[/N]]... [--root-expires-days 365] [--json]
  nestswap keys rotate --keys DIR [--replace ROLE]... [--threshold ROLE=K[/N]]... [--registry URL --token T] [--json]

init:   ed25519 keys for root, targets, snapshot and timestamp, the first root (DIR/1.root.json =
        DIR/root.json, give it to agents as --trust-root) and an empty first targets. --threshold
        targets=2/3 makes 3 targets keys of which 2 must sign. Keep the root key(s) offline.
rotate: the next root, signed by the current root keys (and the new ones): same keys except the
        --replace'd roles, which get new keys (old ones go to DIR/retired/). With --registry it is
        uploaded; agents fetch it on their next refresh.`;

function setups(list: string[] | undefined): Partial<Record<RoleName, RoleSetup>> {
  const out: Partial<Record<RoleName, RoleSetup>> = {};
  for (const s of list ?? []) {
    const m = /^([a-z]+)=(\d+)(?:\/(\d+))?$/.exec(s);
    if (!m || !ROLES.includes(m[1] as RoleName)) throw new NestswapError('ERR_USAGE', `--threshold takes ROLE=K or ROLE=K/N with ROLE one of ${ROLES.join(', ')} (got '${s}').`);
    out[m[1] as RoleName] = { threshold: Number(m[2]), keys: Number(m[3] ?? m[2]) };
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const a = parse(rest, { ...ADMIN_OPTIONS, out: { type: 'string' }, keys: { type: 'string' }, threshold: { type: 'string', multiple: true }, replace: { type: 'string', multiple: true }, 'root-expires-days': { type: 'string' } }, HELP);
  if (!a) return 0;
  const v = a.values;
  const days = v['root-expires-days'] === undefined ? undefined : Number(v['root-expires-days']);
  if (days !== undefined && !(days > 0)) throw new NestswapError('ERR_USAGE', '--root-expires-days must be a positive number.');
  if (sub === 'init') {
    if (!v.out) throw new NestswapError('ERR_USAGE', 'keys init needs --out DIR.');
    const r = initKeyDir(v.out, { roles: setups(v.threshold), ...(days ? { rootExpiresDays: days } : {}) });
    if (v.json) printJson(r);
    else
      process.stdout.write(
        `keys and root version 1 in ${r.dir}\n  agents:    --trust-root ${r.rootFile.replace(/1\.root\.json$/, 'root.json')}\n  registry:  --keys DIR holding only 1.root.json 1.targets.json snapshot.key.json timestamp.key.json\n  publisher: --sign-targets ${r.dir}/targets.key.json\n  keep ${r.dir}/root.key.json offline\n`,
      );
    return 0;
  }
  if (sub === 'rotate') {
    if (!v.keys) throw new NestswapError('ERR_USAGE', 'keys rotate needs --keys DIR.');
    const replace = (v.replace ?? []) as RoleName[];
    for (const role of replace) if (!ROLES.includes(role)) throw new NestswapError('ERR_USAGE', `--replace takes one of ${ROLES.join(', ')} (got '${role}').`);
    const r = rotateRoot(v.keys, { replace, roles: setups(v.threshold), ...(days ? { rootExpiresDays: days } : {}) });
    const upload = v.registry || process.env.NESTSWAP_REGISTRY;
    if (upload) await adminClient(v).putTufMetadata('root', readFileSync(r.rootFile, 'utf8'));
    if (v.json) printJson({ ...r, uploaded: Boolean(upload) });
    else process.stdout.write(`root version ${r.rootVersion} in ${r.rootFile}${upload ? ', uploaded' : ' (not uploaded: give --registry URL --token T, or restart the registry with --keys)'}\n`);
    return 0;
  }
  throw new NestswapError('ERR_USAGE', `keys needs a subcommand: init or rotate (got '${sub ?? ''}').`);
}
