/** A disk-backed store of calibrated BN statistics (one msgpack file per subnet, written temp + fsync + rename). */
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { writeDurable } from './durable.js';
import { join } from 'node:path';
import { decodeStats, encodeStats, MemoryStatsStore, type BnStatsMap, type StatsStore } from '../calibrate.js';

export function diskStatsStore(dir: string): StatsStore {
  const memory = new MemoryStatsStore();
  const file = (key: string) => join(dir, `${key.replace(/[^A-Za-z0-9._-]/g, '_')}.bnstats`);
  return {
    async get(key) {
      const hit = await memory.get(key);
      if (hit) return hit;
      const f = file(key);
      if (!existsSync(f)) return undefined;
      try {
        const stats = decodeStats(readFileSync(f));
        await memory.set(key, stats);
        return stats;
      } catch {
        return undefined; // a damaged cache entry is recomputed, never trusted
      }
    },
    async set(key: string, stats: BnStatsMap) {
      await memory.set(key, stats);
      mkdirSync(dir, { recursive: true });
      const f = file(key);
      writeDurable(f, encodeStats(stats), { crashPoint: 'stats-write' });
    },
  };
}
