/** `nestswap registry`: runs the registry server until SIGINT/SIGTERM. */
import { join } from 'node:path';
import { homedir } from 'node:os';
import { pino } from 'pino';
import { NestswapError } from '../../runtime/errors.js';
import { numberOpt, parse, untilSignal } from '../../runtime/node/cli.js';
import { REDACT, startRegistry } from '../server.js';

const HELP = `Usage: nestswap registry [--port 8700] [--host 127.0.0.1] [--data DIR] [--admin-token T] [--enroll-token T] [--log-level info]

Runs the registry: HTTP API /v1 and WebSocket hub /v1/ws on one port, SQLite + blobs in --data
(default $NESTSWAP_REGISTRY_DATA or ~/.nestswap/registry). Tokens come from the flags or from
NESTSWAP_ADMIN_TOKEN / NESTSWAP_ENROLL_TOKEN; without either, the ones remembered in the data
directory stay valid, and on a first start new ones are generated and printed once.

--print-systemd-unit [--service-user USER] prints a systemd unit running this command as a service
(DynamicUser, or USER; data in /var/lib/nestswap-registry; tokens from /etc/nestswap/registry.env).`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(
    argv,
    {
      port: { type: 'string' },
      host: { type: 'string' },
      data: { type: 'string' },
      'admin-token': { type: 'string' },
      'enroll-token': { type: 'string' },
      'log-level': { type: 'string' },
      'print-systemd-unit': { type: 'boolean' },
      'service-user': { type: 'string' },
    },
    HELP,
  );
  if (!a) return 0;
  const v = a.values;
  if (v['print-systemd-unit']) return (await import('../../runtime/node/service-unit.js')).printSystemdUnit('registry', argv, v['service-user']);
  const port = numberOpt(v.port, '--port') ?? 8700;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new NestswapError('ERR_USAGE', `--port must be an integer 0..65535 (got ${port}).`);
  const dataDir = v.data ?? process.env.NESTSWAP_REGISTRY_DATA ?? join(homedir(), '.nestswap', 'registry');
  const logger = pino({ level: v['log-level'] ?? 'info', redact: REDACT });
  const adminToken = v['admin-token'] ?? process.env.NESTSWAP_ADMIN_TOKEN;
  const enrollToken = v['enroll-token'] ?? process.env.NESTSWAP_ENROLL_TOKEN;
  const reg = await startRegistry({ port, host: v.host ?? '127.0.0.1', dataDir, logger, ...(adminToken ? { adminToken } : {}), ...(enrollToken ? { enrollToken } : {}) });
  // Shown once: only their hashes are stored.
  if (reg.generated.adminToken) process.stderr.write(`admin token (shown once): ${reg.generated.adminToken}\n`);
  if (reg.generated.enrollToken) process.stderr.write(`enrollment token (shown once): ${reg.generated.enrollToken}\n`);
  process.stderr.write(`nestswap registry listening on ${reg.url} (data: ${dataDir})\n`);
  await untilSignal();
  await reg.close();
  return 0;
}
