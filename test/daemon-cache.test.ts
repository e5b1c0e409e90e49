/**
 * agent/daemon-cache.ts: the daemon's caches of weights a fleet agent no longer holds are deleted,
 * and nothing else is. Every file name is made by the code that makes it in the daemon (the stats
 * store, the profiler's cache path, the ladder path), so a change of naming there fails here.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { ladderCachePath, pruneDaemonCache } from '../agent/daemon-cache.js';
import { profileCachePath } from '../agent/profiler.js';
import { diskStatsStore } from '../agent/stats-store.js';
import { statsKey, type BnStatsMap } from '../runtime/calibrate.js';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import type { SupernetPackage } from '../runtime/package.js';
import { tempDir, TINY } from './helpers.js';

const digest = (s: string) => createHash('sha256').update(s).digest('hex');

test('pruneDaemonCache deletes the BN statistics, profiles and ladder of dropped weights only', async () => {
  using dir = tempDir('nestswap-daemon-cache-');
  const tiny = await loadPackageDir(TINY);
  const as = (name: string, weights: string) => Object.assign(Object.create(Object.getPrototypeOf(tiny) as object) as SupernetPackage, tiny, { weightsDigest: weights, manifest: { ...tiny.manifest, name } });
  const [oldW, newW, otherW] = [digest('old'), digest('new'), digest('other-supernet')];
  const stats = diskStatsStore(join(dir.path, 'bn-stats'));
  const bn: BnStatsMap = new Map([['bn0', { mean: new Float32Array([1]), var: new Float32Array([1]) }]]);
  const write = (f: string) => {
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(f, '{}');
  };
  for (const [name, w] of [['tiny', oldW], ['tiny', newW], ['other', otherW]] as const) {
    const p = as(name, w);
    await stats.set(statsKey(p, p.space.min(), 64), bn);
    await stats.set(statsKey(p, p.space.max(), 64), bn);
    write(profileCachePath(dir.path, p, 'cpu', 2));
    write(ladderCachePath(dir.path, w));
  }
  write(join(dir.path, 'profiles', 'notes.json'));
  const before = (sub: string) => readdirSync(join(dir.path, sub)).sort();
  assert.equal(before('bn-stats').length, 6);
  assert.equal(before('profiles').length, 4);

  const r = pruneDaemonCache(dir.path, 'tiny', [oldW], [newW]);
  assert.equal(r.files, 4, 'two stats files, one profile, one ladder');
  assert.ok(r.bytes > 0);
  const left = before('bn-stats');
  assert.equal(left.length, 4);
  assert.ok(left.every((f) => !f.startsWith(oldW.slice(0, 16))), 'no stats of the dropped weights');
  assert.ok(existsSync(profileCachePath(dir.path, as('tiny', newW), 'cpu', 2)), 'the kept weights keep their profile');
  assert.ok(!existsSync(profileCachePath(dir.path, as('tiny', oldW), 'cpu', 2)));
  assert.ok(existsSync(profileCachePath(dir.path, as('other', otherW), 'cpu', 2)), "another supernet's profile stays");
  assert.ok(existsSync(join(dir.path, 'profiles', 'notes.json')), 'a file of no known shape stays');
  assert.ok(!existsSync(ladderCachePath(dir.path, oldW)));
  assert.ok(existsSync(ladderCachePath(dir.path, newW)) && existsSync(ladderCachePath(dir.path, otherW)));
  assert.ok(await stats.get(statsKey(as('tiny', newW), tiny.space.min(), 64)), 'the kept stats still read');

  // weights shared by a dropped and a kept version (a new version with the same weights): nothing goes
  assert.deepEqual(pruneDaemonCache(dir.path, 'tiny', [newW], [newW]), { files: 0, bytes: 0 });
  // not a digest: nothing goes
  assert.deepEqual(pruneDaemonCache(dir.path, 'tiny', ['../..', ''], []), { files: 0, bytes: 0 });
  assert.equal(before('bn-stats').length, 4);
});
