/**
 * systemd units for the long-running commands (`nestswap agent`, `nestswap registry`), printed by
 * `--print-systemd-unit`. The unit runs the installed package's own bin (an absolute path, found from
 * this file, not from PATH or the cwd) as an unprivileged user with a dedicated state directory:
 *
 *   - DynamicUser (or a given dedicated user), never root, NoNewPrivileges, no capabilities;
 *   - StateDirectory=<name> (/var/lib/<name>, mode 0700) passed as --data, ProtectSystem=strict with
 *     only that directory writable (ReadWritePaths), ProtectHome=read-only, PrivateTmp;
 *   - Restart=on-failure with a back-off, SIGTERM for a clean stop (both commands drain on it);
 *   - the agent runs through bin/nestswap-agent (its malloc and V8 settings; the same values are
 *     set in the unit so they can be read and changed there) and keeps /dev (GPUs, NPUs);
 *   - tokens never go into the unit (it is world-readable): they are read from an EnvironmentFile.
 */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NestswapError } from '../errors.js';
import { VERSION } from './version.js';

export type ServiceKind = 'agent' | 'registry';

export interface ServiceUnitOptions {
  kind: ServiceKind;
  /** the command's own arguments (without --print-systemd-unit and the service options) */
  args: string[];
  /** run as this existing system user instead of a DynamicUser */
  user?: string;
  /** the node binary (default: the one running now) */
  node?: string;
  /** the package root holding bin/ (default: this installed package) */
  root?: string;
}

export interface ServiceUnit {
  text: string;
  /** the unit's file name, e.g. nestswap-agent.service */
  name: string;
  /** options that were taken out of ExecStart (secrets), for a note to the user */
  moved: string[];
}

/** Options whose values are secrets: they go to the EnvironmentFile, never into the unit. */
const SECRET_FLAGS: Readonly<Record<string, string>> = Object.freeze({
  '--enroll-token': 'NESTSWAP_ENROLL_TOKEN',
  '--admin-token': 'NESTSWAP_ADMIN_TOKEN',
  '--token': 'NESTSWAP_ADMIN_TOKEN',
});

/** The package root of this installation (the directory holding package.json and bin/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'nestswap.js'))) return dir;
    dir = dirname(dir);
  }
  throw new NestswapError('ERR_USAGE', 'Cannot find the nestswap package root (bin/nestswap.js) above this installation.');
}

/** systemd's command-line quoting: double quotes when needed; `%` and `$` escaped as specifiers/variables. */
export function quoteArg(a: string): string {
  if (/[\x00-\x1f\x7f]/.test(a)) throw new NestswapError('ERR_USAGE', `A service argument holds a control character: ${JSON.stringify(a)}.`);
  const escaped = a.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (escaped !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Splits secrets out of the arguments and finds (or adds) --data under the state directory. */
function prepareArgs(args: string[], stateDir: string): { args: string[]; moved: string[] } {
  const out: string[] = [];
  const moved: string[] = [];
  let data: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = inline ?? args[i + 1];
    if (flag in SECRET_FLAGS || flag === '--data') {
      if (value === undefined) throw new NestswapError('ERR_USAGE', `Option ${flag} needs a value.`);
      if (inline === undefined) i++;
      if (flag === '--data') data = value;
      else moved.push(flag);
      continue;
    }
    out.push(a);
  }
  if (data !== undefined && data.replace(/\/+$/, '') !== stateDir)
    throw new NestswapError('ERR_USAGE', `A service keeps its data in its state directory ${stateDir} (systemd StateDirectory); leave out --data '${data}' or give --data ${stateDir}.`);
  return { args: [...out, '--data', stateDir], moved };
}

const SYSTEM_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

export function systemdUnit(opts: ServiceUnitOptions): ServiceUnit {
  const name = `nestswap-${opts.kind}`;
  const stateDir = `/var/lib/${name}`;
  if (opts.user !== undefined && (!SYSTEM_USER.test(opts.user) || opts.user === 'root'))
    throw new NestswapError('ERR_USAGE', `--service-user must be an unprivileged system user name (got '${opts.user}').`);
  const root = realpathSync(opts.root ?? packageRoot());
  const node = opts.node ?? process.execPath;
  const { args, moved } = prepareArgs(opts.args, stateDir);
  const exec =
    opts.kind === 'agent'
      ? [join(root, 'bin', 'nestswap-agent'), ...args]
      : [node, join(root, 'bin', 'nestswap.js'), 'registry', ...args];
  const envFile = `/etc/nestswap/${opts.kind}.env`;
  const lines = [
    '# Generated by `nestswap ' + opts.kind + ' --print-systemd-unit` (nestswap ' + VERSION + ').',
    `# Install: save as /etc/systemd/system/${name}.service, then systemctl daemon-reload && systemctl enable --now ${name}`,
    `# Secrets (${opts.kind === 'agent' ? 'NESTSWAP_ENROLL_TOKEN' : 'NESTSWAP_ADMIN_TOKEN, NESTSWAP_ENROLL_TOKEN'}) go in ${envFile} (mode 0600), never in this file.`,
    '[Unit]',
    `Description=nestswap ${opts.kind === 'agent' ? 'device agent' : 'registry'}`,
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec.map(quoteArg).join(' ')}`,
    `EnvironmentFile=-${envFile}`,
    `Environment=NODE=${quoteArg(node)}`,
    ...(opts.kind === 'agent'
      ? ['# memory settings (bin/nestswap-agent sets the same defaults; see docs/cli.md#nestswap-agent)', 'Environment=MALLOC_ARENA_MAX=2', 'Environment=MALLOC_MMAP_THRESHOLD_=131072']
      : ['Environment=MALLOC_ARENA_MAX=2']),
    ...(opts.user ? [`User=${opts.user}`, `Group=${opts.user}`] : ['DynamicUser=yes']),
    `StateDirectory=${name}`,
    'StateDirectoryMode=0700',
    `WorkingDirectory=${stateDir}`,
    `Environment=HOME=${stateDir}`,
    'Restart=on-failure',
    'RestartSec=5s',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=30s',
    '# hardening',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ReadWritePaths=${stateDir}`,
    'ProtectHome=read-only',
    'PrivateTmp=yes',
    ...(opts.kind === 'registry' ? ['PrivateDevices=yes'] : ['# no PrivateDevices: the agent may use GPUs and NPUs under /dev']),
    'CapabilityBoundingSet=',
    'AmbientCapabilities=',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'RestrictRealtime=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelTunables=yes',
    'ProtectControlGroups=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'SystemCallArchitectures=native',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return { text: lines.join('\n'), name: `${name}.service`, moved };
}

/** The command's arguments without the options that only shape the unit (--print-systemd-unit, --service-user). */
export function withoutServiceOptions(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--print-systemd-unit' || a.startsWith('--service-user=')) continue;
    if (a === '--service-user') {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/** Prints the unit on stdout (and a note on stderr for secrets taken out of it); the exit code. */
export function printSystemdUnit(kind: ServiceKind, argv: string[], user: string | undefined): number {
  const unit = systemdUnit({ kind, args: withoutServiceOptions(argv), ...(user !== undefined ? { user } : {}) });
  process.stdout.write(unit.text);
  for (const flag of unit.moved)
    process.stderr.write(`nestswap: ${flag} is not written into the unit (units are world-readable): put ${SECRET_FLAGS[flag]}=... in /etc/nestswap/${kind}.env (mode 0600).\n`);
  return 0;
}
