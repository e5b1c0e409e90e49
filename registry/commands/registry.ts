/** `nestswap registry`: runs the registry server (one replica) until SIGINT/SIGTERM. */
import { join } from 'node:path';
import { homedir, hostname } from 'node:os';
import { pino } from 'pino';
import { NestswapError } from '../../runtime/errors.js';
import { numberOpt, parse, untilSignal } from '../../runtime/node/cli.js';
import { openBus, openStore } from '../engines.js';
import { REDACT, startRegistry } from '../server.js';

const HELP = `Usage: nestswap registry [--port 8700] [--host 127.0.0.1] [--data DIR] [--admin-token T] [--enroll-token T] [--log-level info]
                        [--database postgres://...] [--bus nats://...] [--blobs DIR] [--replica-id ID]
                         [--keys DIR [--online-targets] [--timestamp-expires-s 86400] [--snapshot-expires-s 604800]]

Runs the registry: HTTP API /v1 and WebSocket hub /v1/ws on one port, SQLite + blobs in --data
(default $NESTSWAP_REGISTRY_DATA or ~/.nestswap/registry). Tokens come from the flags or from
NESTSWAP_ADMIN_TOKEN / NESTSWAP_ENROLL_TOKEN; without either, the ones remembered in the store
stay valid, and on a first start new ones are generated and printed once.

Replicas (docs/scale-out.md): --database (or $NESTSWAP_DATABASE) keeps state in PostgreSQL instead
of SQLite; --bus (or $NESTSWAP_BUS) routes commands between replicas over NATS instead of in
process; --blobs is the blob directory every replica shares (default: --data); --replica-id names
this replica (default: host name and process id; keep it stable across restarts).

--keys DIR signs what it serves with TUF (docs/signing.md): it imports the roots in DIR and holds
the snapshot and timestamp keys from it (made by 'nestswap keys init'); --online-targets also reads
the targets key and signs every published package itself (weaker: publishers normally sign with
publish --sign-targets).

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
      database: { type: 'string' },
      bus: { type: 'string' },
      blobs: { type: 'string' },
      'replica-id': { type: 'string' },
      'print-systemd-unit': { type: 'boolean' },
      'service-user': { type: 'string' },
      keys: { type: 'string' },
      'online-targets': { type: 'boolean' },
      'timestamp-expires-s': { type: 'string' },
      'snapshot-expires-s': { type: 'string' },
    },
    HELP,
  );
  if (!a) return 0;
  const v = a.values;
  if (v['print-systemd-unit']) return (await import('../../runtime/node/service-unit.js')).printSystemdUnit('registry', argv, v['service-user']);
  const port = numberOpt(v.port, '--port') ?? 8700;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new NestswapError('ERR_USAGE', `--port must be an integer 0..65535 (got ${port}).`);
  const replicaId = v['replica-id'] ?? `${hostname()}-${process.pid}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(replicaId)) throw new NestswapError('ERR_USAGE', `--replica-id must be 1-64 letters, digits, '-' or '_' (got '${replicaId}').`);
  const dataDir = v.data ?? process.env.NESTSWAP_REGISTRY_DATA ?? join(homedir(), '.nestswap', 'registry');
  const logger = pino({ level: v['log-level'] ?? 'info', redact: REDACT });
  const adminToken = v['admin-token'] ?? process.env.NESTSWAP_ADMIN_TOKEN;
  const enrollToken = v['enroll-token'] ?? process.env.NESTSWAP_ENROLL_TOKEN;
  if (v['online-targets'] && !v.keys) throw new NestswapError('ERR_USAGE', '--online-targets needs --keys DIR.');
  const timestampS = numberOpt(v['timestamp-expires-s'], '--timestamp-expires-s');
  const snapshotS = numberOpt(v['snapshot-expires-s'], '--snapshot-expires-s');
  for (const [flag, n] of [['--timestamp-expires-s', timestampS], ['--snapshot-expires-s', snapshotS]] as const)
    if (n !== undefined && !(Number.isInteger(n) && n >= 2)) throw new NestswapError('ERR_USAGE', `${flag} must be an integer number of seconds >= 2 (got ${n}).`);
  const tuf = v.keys
    ? { keyDir: v.keys, onlineTargets: v['online-targets'] ?? false, lifetimes: { ...(timestampS ? { timestampS } : {}), ...(snapshotS ? { snapshotS } : {}) } }
    : undefined;
  const database = v.database ?? process.env.NESTSWAP_DATABASE;
  const store = await openStore(database, dataDir);
  const bus = await openBus(v.bus ?? process.env.NESTSWAP_BUS, replicaId, logger.child({ part: 'bus' })).catch(async (err: unknown) => {
    await store.close();
    throw err;
  });
  const reg = await startRegistry({
    port,
    host: v.host ?? '127.0.0.1',
    dataDir,
    store,
    ...(bus ? { bus } : {}),
    ...(v.blobs ? { blobsDir: v.blobs } : {}),
    ...(v['replica-id'] || database ? { replicaId } : {}),
    logger,
    ...(adminToken ? { adminToken } : {}),
    ...(enrollToken ? { enrollToken } : {}),
    ...(tuf ? { tuf } : {}),
  });
  // Shown once: only their hashes are stored.
  if (reg.generated.adminToken) process.stderr.write(`admin token (shown once): ${reg.generated.adminToken}\n`);
  if (reg.generated.enrollToken) process.stderr.write(`enrollment token (shown once): ${reg.generated.enrollToken}\n`);
  process.stderr.write(`nestswap registry listening on ${reg.url} (store: ${store.engine}, bus: ${reg.bus.kind}, replica: ${reg.replicaId}, data: ${dataDir}, ${tuf ? `TUF signed${tuf.onlineTargets ? ', online targets key' : ''}` : 'unsigned: no --keys'})\n`);
  await untilSignal();
  await reg.close();
  return 0;
}
