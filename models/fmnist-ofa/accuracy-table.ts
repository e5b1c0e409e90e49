/**
 * Accuracy table of the fmnist-ofa supernet: >= 1,000 seeded random subnets plus the smallest and
 * largest, each materialized by nestswap (ONNX + OFA BN recalibration on the package's 2,000
 * calibration images) and scored on the validation split (5,000 images). Resumable: results are
 * appended to a JSONL file; rerunning skips subnets already scored.
 *
 *   node dist/models/fmnist-ofa/accuracy-table.js --package models/fmnist-ofa/package [--n 1000] [--shards 2]
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Materializer } from '../../runtime/materializer.js';
import { loadPackageDir } from '../../runtime/node/fs-source.js';
import { nchwcCalibration } from '../../runtime/node/nchwc.js';
import { nodeBackend } from '../../runtime/node/ort-node.js';
import { mulberry32 } from '../../runtime/random.js';
import { ModelSession } from '../../runtime/session.js';
import type { SubnetConfig } from '../../runtime/space.js';
import { indicesOf, loadFmnist, IMAGE_PIXELS, type FmnistData, type Split } from './data.js';

export interface TableRow {
  id: string;
  config: SubnetConfig;
  accuracy: number;
  macs: number;
  params: number;
}

/** Top-1 accuracy of a session over a split, batched. */
export async function scoreSession(session: ModelSession, data: FmnistData, which: Split | number[], batch = 500): Promise<number> {
  const idx = Array.isArray(which) ? which : indicesOf(data, which);
  let correct = 0;
  const input = new Float32Array(batch * IMAGE_PIXELS);
  for (let s = 0; s < idx.length; s += batch) {
    const n = Math.min(batch, idx.length - s);
    for (let j = 0; j < n; j++) {
      const off = idx[s + j]! * IMAGE_PIXELS;
      for (let p = 0; p < IMAGE_PIXELS; p++) input[j * IMAGE_PIXELS + p] = data.images[off + p]! / 255;
    }
    const out = await session.runFirst(input.subarray(0, n * IMAGE_PIXELS), [n, 1, 28, 28]);
    const classes = out.data.length / n;
    for (let j = 0; j < n; j++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (out.data[j * classes + c]! > out.data[j * classes + best]!) best = c;
      if (best === data.labels[idx[s + j]!]) correct++;
    }
  }
  return correct / idx.length;
}

export function tableConfigs(space: Materializer['pkg']['space'], n: number, seed: number): SubnetConfig[] {
  const rng = mulberry32(seed);
  const seen = new Set<string>();
  const out: SubnetConfig[] = [];
  for (const c of [space.min(), space.max()]) {
    seen.add(space.id(c));
    out.push(c);
  }
  while (out.length < n + 2) {
    const c = space.sample(rng);
    if (seen.has(space.id(c))) continue;
    seen.add(space.id(c));
    out.push(c);
  }
  return out;
}

async function worker(pkgDir: string, dataDir: string, out: string, n: number, seed: number, shard: number, shards: number, split: Split): Promise<void> {
  const pkg = await loadPackageDir(pkgDir);
  const data = loadFmnist(dataDir);
  const m = new Materializer(pkg, nodeBackend, undefined, nchwcCalibration);
  const done = new Set<string>();
  if (existsSync(out)) for (const line of readFileSync(out, 'utf8').split('\n')) if (line.trim()) done.add((JSON.parse(line) as TableRow).id);
  const configs = tableConfigs(pkg.space, n, seed).filter((_, i) => i % shards === shard);
  for (const cfg of configs) {
    const id = pkg.space.id(cfg);
    if (done.has(id)) continue;
    const r = await m.materialize(cfg, { calibration: { threads: 1 } });
    const s = await ModelSession.create(nodeBackend, r.bytes, { threads: 1 });
    const accuracy = await scoreSession(s, data, split);
    await s.release();
    appendFileSync(out, `${JSON.stringify({ id, config: cfg, accuracy, macs: r.macs, params: r.params })}\n`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      package: { type: 'string', default: 'models/fmnist-ofa/package' },
      data: { type: 'string', default: '.cache/fmnist' },
      n: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '2026' },
      shards: { type: 'string', default: '2' },
      shard: { type: 'string' },
      split: { type: 'string', default: 'val' },
      jsonl: { type: 'string', default: '.cache/accuracy-table.jsonl' },
      out: { type: 'string', default: '.cache/accuracy-table.json' },
    },
  });
  const n = Number(values.n);
  const seed = Number(values.seed);
  const shards = Number(values.shards);
  const split = values.split as Split;
  if (values.shard !== undefined) {
    await worker(values.package, values.data, `${values.jsonl}.${values.shard}`, n, seed, Number(values.shard), shards, split);
    return;
  }
  const self = fileURLToPath(import.meta.url);
  await Promise.all(
    Array.from({ length: shards }, (_, k) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [self, ...process.argv.slice(2), '--shard', String(k)], { stdio: 'inherit' });
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`shard ${k} exited with ${code}`))));
      }),
    ),
  );
  const byId = new Map<string, TableRow>();
  for (let k = 0; k < shards; k++)
    for (const line of readFileSync(`${values.jsonl}.${k}`, 'utf8').split('\n'))
      if (line.trim()) {
        const row = JSON.parse(line) as TableRow;
        byId.set(row.id, row);
      }
  const rows = [...byId.values()];
  const pkg = await loadPackageDir(values.package);
  const order = new Map(tableConfigs(pkg.space, n, seed).map((c, i) => [pkg.space.id(c), i]));
  rows.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  writeFileSync(
    values.out,
    JSON.stringify({ format: 'nestswap.accuracy-table/1', split, seed, calibration: 'OFA BN recalibration, package calibration set', rows }),
  );
  process.stdout.write(`${JSON.stringify({ rows: rows.length, out: values.out })}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
