/** Opens the store and bus a registry replica was asked for: PostgreSQL / NATS by URL, else the one-process defaults. */
import type { Logger } from 'pino';
import { NestswapError } from '../runtime/errors.js';
import type { Bus } from './bus.js';
import type { RegistryStore } from './store.js';

export async function openStore(database: string | undefined, dataDir: string): Promise<RegistryStore> {
  if (database === undefined || database === '') {
    const { SqliteStore } = await import('./stores/sqlite.js');
    return new SqliteStore(dataDir);
  }
  if (!/^postgres(ql)?:\/\//.test(database)) throw new NestswapError('ERR_USAGE', `--database must be a postgres:// or postgresql:// URL (got '${database.replace(/\/\/[^@/]*@/, '//')}').`);
  const { PostgresStore } = await import('./stores/postgres.js');
  return PostgresStore.open(database);
}

export async function openBus(url: string | undefined, replicaId: string, logger?: Logger): Promise<Bus | undefined> {
  if (url === undefined || url === '') return undefined;
  if (!url.split(',').every((u) => /^(nats|tls):\/\//.test(u))) throw new NestswapError('ERR_USAGE', `--bus must be one or more nats:// URLs, comma-separated (got '${url}').`);
  const { NatsBus } = await import('./bus-nats.js');
  return NatsBus.open(url, { name: `nestswap-registry-${replicaId}`, ...(logger ? { logger } : {}) });
}
