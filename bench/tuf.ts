/**
 * TUF cost per package download (prints JSON): a registry signing with --keys (in this process) and
 * the real agent client, measured side by side in one run.
 *   - signature verification: one ed25519 check of timestamp, snapshot and targets metadata (@tufjs/models)
 *   - metadata refresh (tuf-js): warm (the agent has the metadata: timestamp only) and cold (root to targets)
 *   - package download with verification (TUF: refresh + targets capped and hash checked) vs without
 *     (--insecure-no-signatures: the registry's own digests), alternating runs; throughput in MB/s
 *   node dist/bench/tuf.js [--runs 15] [--supernet fmnist-ofa] [--quick]
 */
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { RegistryClient } from '../agent/registry-client.js';
import { TufClient } from '../agent/tuf-client.js';
import { AdminClient } from '../registry/admin-client.js';
import { startRegistry } from '../registry/server.js';
import { initKeyDir } from '../registry/tuf/keydir.js';
import { resolveSupernetDir } from '../runtime/node/packages.js';

const { values } = parseArgs({ options: { runs: { type: 'string' }, supernet: { type: 'string' }, quick: { type: 'boolean' } } });
const RUNS = Number(values.runs ?? (values.quick ? 5 : 15));
const ADMIN = 'bench-admin-token-0123456789';
const ENROLL = 'bench-enroll-token-0123456789';
type Json = Parameters<typeof Metadata.fromJSON>[1];

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  const r = (v: number) => Math.round(v * 1000) / 1000;
  return { n: s.length, median: r(q(0.5)), p99: r(q(0.99)), min: r(s[0]!) };
};

async function timeIt(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'nestswap-bench-tuf-'));
  const log = pino({ level: 'silent' });
  try {
    const keys = initKeyDir(join(tmp, 'keys'));
    const reg = await startRegistry({ port: 0, dataDir: join(tmp, 'registry'), adminToken: ADMIN, enrollToken: ENROLL, logger: log, tuf: { keyDir: keys.dir, onlineTargets: true } });
    try {
      const admin = new AdminClient(reg.url, ADMIN);
      const pkgDir = resolveSupernetDir(values.supernet ?? 'fmnist-ofa');
      const pub = await admin.publishDir(pkgDir);
      const info = await admin.version(pub.name, pub.version);
      const bytes = info.files.reduce((a, f) => a + f.bytes, 0);

      // signature checks, as the client does them (root → each role)
      const root = Metadata.fromJSON(MetadataKind.Root, JSON.parse(await admin.tufMetadata('1.root.json')) as Json) as Metadata<Root>;
      const ts = Metadata.fromJSON(MetadataKind.Timestamp, JSON.parse(await admin.tufMetadata('timestamp.json')) as Json);
      const snap = Metadata.fromJSON(MetadataKind.Snapshot, JSON.parse(await admin.tufMetadata(`${ts.signed.snapshotMeta.version}.snapshot.json`)) as Json);
      const targetsJson = await admin.tufMetadata(`${snap.signed.meta['targets.json']!.version}.targets.json`);
      const targets = Metadata.fromJSON(MetadataKind.Targets, JSON.parse(targetsJson) as Json);
      const verify: Record<string, number[]> = { timestamp: [], snapshot: [], targets: [] };
      for (let i = 0; i < 200; i++) {
        verify.timestamp!.push(await timeIt(() => root.verifyDelegate('timestamp', ts)));
        verify.snapshot!.push(await timeIt(() => root.verifyDelegate('snapshot', snap)));
        verify.targets!.push(await timeIt(() => root.verifyDelegate('targets', targets)));
      }

      const signedDir = join(tmp, 'signed');
      const tuf = TufClient.open({ registry: reg.url, dataDir: signedDir, logger: log, trustRoot: join(keys.dir, 'root.json') });
      const signed = new RegistryClient({ url: reg.url, dataDir: signedDir, logger: log, tuf });
      await signed.enroll(ENROLL, { name: 'bench-signed', supernet: pub.name });
      const plainDir = join(tmp, 'plain');
      const plain = new RegistryClient({ url: reg.url, dataDir: plainDir, logger: log });
      await plain.enroll(ENROLL, { name: 'bench-plain', supernet: pub.name });

      const cold: number[] = [];
      const warm: number[] = [];
      const withTuf: number[] = [];
      const without: number[] = [];
      for (let i = 0; i < RUNS + 1; i++) {
        rmSync(join(signedDir, 'tuf', 'metadata'), { recursive: true, force: true });
        const c = await timeIt(() => TufClient.open({ registry: reg.url, dataDir: signedDir, logger: log }).refresh());
        const w = await timeIt(() => tuf.refresh());
        // full downloads: nothing cached but the metadata (as an agent that updates)
        rmSync(join(signedDir, 'packages'), { recursive: true, force: true });
        rmSync(join(plainDir, 'packages'), { recursive: true, force: true });
        const order = i % 2 === 0 ? ([signed, plain] as const) : ([plain, signed] as const);
        const t: Record<string, number> = {};
        for (const cl of order) t[cl === signed ? 'signed' : 'plain'] = await timeIt(() => cl.ensurePackage(pub.name));
        if (i === 0) continue; // warm-up
        cold.push(c);
        warm.push(w);
        withTuf.push(t.signed!);
        without.push(t.plain!);
      }
      const mbps = (ms: number) => Math.round((bytes / 1e6 / (ms / 1000)) * 10) / 10;
      const a = stats(withTuf);
      const b = stats(without);
      process.stdout.write(
        `${JSON.stringify(
          {
            bench: 'tuf',
            date: new Date().toISOString().slice(0, 10),
            package: { name: pub.name, version: pub.version, files: info.files.length, bytes, targets: Object.keys(targets.signed.targets).length, targetsMetadataBytes: targetsJson.length },
            signatureVerifyMs: { timestamp: stats(verify.timestamp!), snapshot: stats(verify.snapshot!), targets: stats(verify.targets!) },
            metadataRefreshMs: { warm: stats(warm), cold: stats(cold) },
            downloadMs: { verified: a, unverified: b, overheadMedianMs: Math.round((a.median - b.median) * 1000) / 1000, ratio: Math.round((a.median / b.median) * 1000) / 1000 },
            throughputMBps: { verified: mbps(a.median), unverified: mbps(b.median) },
          },
          null,
          1,
        )}\n`,
      );
    } finally {
      await reg.close();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
