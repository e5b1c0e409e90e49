/**
 * Best-model queries and subnet materialization for the registry: packages are loaded from blobs
 * (verified like any package), accuracy predictors and profile predictors are built once and kept,
 * searches are memoised by their exact inputs (the search is deterministic for a seed), and
 * materialized ONNX files are cached on disk by subnet id.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { writeDurable } from '../runtime/node/durable.js';
import { join } from 'node:path';
import { loadOnnxAccuracyPredictor } from '../runtime/node/search-inputs.js';
import { diskStatsStore } from '../runtime/node/stats-store.js';
import { isNestswapError, NestswapError } from '../runtime/errors.js';
import { Materializer } from '../runtime/materializer.js';
import { nchwcCalibration } from '../runtime/node/nchwc.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { SupernetPackage, type PackageSource } from '../runtime/package.js';
import { buildLadder, type Ladder } from '../runtime/ladder.js';
import { countMacs } from '../runtime/cost.js';
import { autoSearch, paretoSearch, type AccuracyPredictor, type Budget, type ParetoPoint, type SearchResult } from '../runtime/search/index.js';
import type { ArchEncoder, SubnetConfig } from '../runtime/space.js';
import { profilePredictors, type ProfilePredictors } from './profiles.js';
import type { BlobStore } from './blobs.js';
import type { RegistryStore, VersionRow } from './store.js';

/** Small LRU on a Map's insertion order. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: K, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
  }
  delete(k: K): void {
    this.map.delete(k);
  }
}

export interface QueryInput {
  version: VersionRow;
  profileSha256: string;
  profileJson: string;
  budget: Budget;
  seed: number;
  /** 'ladder': a rung of the Pareto ladder cached for this (package, profile) */
  from?: 'search' | 'ladder';
}

export interface QueryAnswer {
  result: SearchResult;
  subnetId: string;
  cached: boolean;
  source?: 'search' | 'ladder';
}

export class QueryService {
  // Shared promises: concurrent callers of the same key wait for one load (no duplicate work).
  private readonly packages = new Lru<string, Promise<SupernetPackage>>(3);
  private readonly predictors = new Lru<string, Promise<{ predictor: AccuracyPredictor; encoder: ArchEncoder }>>(8);
  private readonly profiles = new Lru<string, ProfilePredictors>(256);
  private readonly answers = new Lru<string, QueryAnswer>(4096);
  private readonly materializers = new Lru<string, Promise<Materializer>>(3);
  private readonly inflightOnnx = new Map<string, Promise<string>>();
  private readonly fronts = new Lru<string, Promise<ParetoPoint[]>>(64);

  constructor(
    private readonly store: RegistryStore,
    private readonly blobs: BlobStore,
    /** this replica's cache directory (materialized subnets, BN statistics) */
    private readonly dataDir: string,
  ) {}

  private shared<T>(cache: Lru<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
    let p = cache.get(key);
    if (!p) {
      p = make();
      cache.set(key, p);
      // a failure is not cached: the next caller retries
      p.catch(() => cache.delete(key));
    }
    return p;
  }

  package(v: VersionRow): Promise<SupernetPackage> {
    return this.shared(this.packages, v.manifest_sha256, async () => {
      const files = new Map((await this.store.files(v.name, v.version)).map((f) => [f.path, f.sha256]));
      const source: PackageSource = {
        location: `registry:${v.name}@${v.version}`,
        read: async (path) => {
          const sha = files.get(path);
          if (!sha) throw new Error(`no file '${path}'`);
          return this.blobs.read(sha);
        },
      };
      return SupernetPackage.load(source);
    });
  }

  private async accuracy(v: VersionRow, pkg: SupernetPackage, resolutions: readonly number[]) {
    const entry = (await this.store.files(v.name, v.version)).find((f) => f.role === 'accuracy-predictor');
    if (!entry)
      throw new NestswapError('ERR_PREDICTOR_INVALID', `Package ${v.name}@${v.version} has no file with role 'accuracy-predictor'; it cannot answer best-model queries.`, {
        details: { code: 'ERR_NO_ACCURACY_PREDICTOR' },
      });
    return this.shared(this.predictors, `${v.manifest_sha256}|${resolutions.join(',')}`, () =>
      this.blobs.read(entry.sha256).then((bytes) => loadOnnxAccuracyPredictor(bytes, pkg.space, resolutions.length ? [resolutions] : [])),
    );
  }

  private readonly ladders = new Lru<string, Promise<Ladder>>(16);

  /** A rung of the Pareto ladder for this (package, profile), building the ladder on first use; undefined when the budget is below every rung. */
  private async fromLadder(q: QueryInput): Promise<QueryAnswer | undefined> {
    const t0 = performance.now();
    const pkg = await this.package(q.version);
    const lkey = `${q.version.manifest_sha256}|${q.profileSha256}`;
    const had = this.ladders.get(lkey) !== undefined;
    const ladder = await this.shared(this.ladders, lkey, async () => {
      const preds = profilePredictors(JSON.parse(q.profileJson), pkg);
      const { predictor, encoder } = await this.accuracy(q.version, pkg, preds.latency.flat?.resolutions ?? []);
      const problem = { arch: pkg.arch, predictor, encoder, latency: preds.latency, ...(preds.memory ? { memory: preds.memory } : {}) };
      return buildLadder(problem, pkg.space, { profile: q.profileSha256, predictor: q.version.manifest_sha256, slowdownClass: 0 });
    });
    const i = ladder.rungFor(q.budget);
    if (i < 0) return undefined;
    const r = ladder.rungs[i]!;
    const result: SearchResult = {
      subnet: r.subnet,
      predicted: { accuracy: r.accuracy, latencyMs: r.latencyMs, memoryMB: r.memoryMB, macs: countMacs(pkg.arch, r.subnet) },
      evaluations: 0,
      searchMs: performance.now() - t0,
    };
    return { result, subnetId: r.id, cached: had, source: 'ladder' };
  }

  async query(q: QueryInput): Promise<QueryAnswer> {
    if (q.from === 'ladder') {
      const a = await this.fromLadder(q);
      if (a) return a;
      // below every rung: the search says what fits, or that nothing does
    }
    const key = `${q.version.manifest_sha256}|${q.profileSha256}|${q.budget.latencyMs ?? ''}|${q.budget.memoryMB ?? ''}|${q.seed}`;
    const hit = this.answers.get(key);
    if (hit) return { ...hit, cached: true };
    const pkg = await this.package(q.version);
    const pkey = `${q.version.manifest_sha256}|${q.profileSha256}`;
    let preds = this.profiles.get(pkey);
    if (!preds) {
      preds = profilePredictors(JSON.parse(q.profileJson), pkg);
      this.profiles.set(pkey, preds);
    }
    if (q.budget.memoryMB !== undefined && !preds.memory)
      throw new NestswapError('ERR_PROFILE_INVALID', 'The device profile has no memory model; it cannot answer a memory budget.');
    const { predictor, encoder } = await this.accuracy(q.version, pkg, preds.latency.flat?.resolutions ?? []);
    const { method: _method, ...result } = await autoSearch(
      { arch: pkg.arch, predictor, encoder, latency: preds.latency, ...(preds.memory ? { memory: preds.memory } : {}) },
      q.budget,
      { seed: q.seed },
    );
    const answer: QueryAnswer = { result, subnetId: pkg.space.id(result.subnet), cached: false };
    this.answers.set(key, answer);
    return answer;
  }

  /**
   * The Pareto front of predicted accuracy against predicted latency for a device profile (NSGA-II,
   * seeded, so the same profile gives the same front), sorted by latency; memoised per profile.
   */
  async front(v: VersionRow, profileSha256: string, profileJson: string): Promise<ParetoPoint[]> {
    return this.shared(this.fronts, `${v.manifest_sha256}|${profileSha256}`, async () => {
      const pkg = await this.package(v);
      const preds = profilePredictors(JSON.parse(profileJson), pkg);
      const { predictor, encoder } = await this.accuracy(v, pkg, preds.latency.flat?.resolutions ?? []);
      const r = await paretoSearch({ arch: pkg.arch, predictor, encoder, latency: preds.latency, ...(preds.memory ? { memory: preds.memory } : {}) }, {}, { objectives: ['latencyMs'], populationSize: 60, generations: 40, seed: 0 });
      return r.front;
    });
  }

  /** Path of the subnet's ONNX file (BN recalibrated, folded), materializing it once. */
  async onnxPath(v: VersionRow, subnetId: string): Promise<{ path: string; config: SubnetConfig }> {
    const pkg = await this.package(v);
    let cfg: SubnetConfig;
    try {
      cfg = pkg.space.fromId(subnetId);
    } catch (err) {
      if (isNestswapError(err)) throw err;
      throw new NestswapError('ERR_CONFIG_INVALID', `Invalid subnet id '${subnetId}'.`, { cause: err });
    }
    const id = pkg.space.id(cfg);
    const dir = join(this.dataDir, 'subnets', v.manifest_sha256);
    const path = join(dir, `${id}.onnx`);
    if (existsSync(path)) return { path, config: cfg };
    let p = this.inflightOnnx.get(path);
    if (!p) {
      p = (async () => {
        const m = await this.shared(this.materializers, v.manifest_sha256, async () => new Materializer(pkg, nodeBackend, diskStatsStore(join(this.dataDir, 'bnstats')), nchwcCalibration));
        const built = await m.materialize(cfg);
        mkdirSync(dir, { recursive: true });
        writeDurable(path, built.bytes); // served to clients: never a torn file after a crash
        return path;
      })();
      this.inflightOnnx.set(path, p);
      p.finally(() => this.inflightOnnx.delete(path)).catch(() => undefined);
    }
    return { path: await p, config: cfg };
  }
}
