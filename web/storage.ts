/** Browser storage for the agent core: BN statistics in the Cache API (in memory without it). */
import { decodeStats, encodeStats, MemoryStatsStore, type BnStatsMap, type StatsStore } from '../runtime/calibrate.js';

const STATS_CACHE = 'nestswap-bn-stats-v1';

/** BN statistics kept across reloads (Cache API), with an in-memory layer in front. */
export function browserStatsStore(registry: string): StatsStore {
  const mem = new MemoryStatsStore();
  const url = (key: string) => `${registry}/__nestswap/bn-stats/${encodeURIComponent(key)}`;
  const open = async () => {
    try {
      return await globalThis.caches?.open(STATS_CACHE);
    } catch {
      return undefined;
    }
  };
  return {
    async get(key: string): Promise<BnStatsMap | undefined> {
      const hit = await mem.get(key);
      if (hit) return hit;
      const r = await (await open())?.match(url(key));
      if (!r) return undefined;
      try {
        const stats = decodeStats(new Uint8Array(await r.arrayBuffer()));
        await mem.set(key, stats);
        return stats;
      } catch {
        return undefined; // damaged entry: recomputed
      }
    },
    async set(key: string, stats: BnStatsMap): Promise<void> {
      await mem.set(key, stats);
      await (await open())?.put(url(key), new Response(encodeStats(stats) as Uint8Array<ArrayBuffer>));
    },
  };
}

/** A small JSON value in localStorage (identity, profile, sequence numbers); absent storage means this page only. */
export const local = {
  get<T>(key: string): T | undefined {
    try {
      const s = globalThis.localStorage?.getItem(key);
      return s ? (JSON.parse(s) as T) : undefined;
    } catch {
      return undefined;
    }
  },
  set(key: string, value: unknown): void {
    try {
      globalThis.localStorage?.setItem(key, JSON.stringify(value));
    } catch {
      // quota or disabled storage: kept for this page only
    }
  },
};
