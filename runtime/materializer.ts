/**
 * The materializer service: validated config in, deployable ONNX out, with BN statistics
 * recalibrated once per subnet and cached.
 */
import { calibrateBn, MemoryStatsStore, statsKey, type BnStatsMap, type CalibrateOptions, type StatsStore } from './calibrate.js';
import { countMacs, countParams } from './cost.js';
import { buildSubnet, SubnetWeights, type BnMode, type DepthwiseMatMul } from './materialize.js';
import type { SupernetPackage } from './package.js';
import type { Backend } from './session.js';
import type { SubnetConfig } from './space.js';

export interface MaterializeOptions {
  /** Recalibrate BN statistics on the package's calibration set (default true). */
  calibrate?: boolean;
  /** 'fold' (default) or 'unfold' to keep BatchNormalization nodes. */
  bn?: Exclude<BnMode, 'calibrate'>;
  calibration?: CalibrateOptions;
  /** Write onnxruntime's NCHWc layout with this block size (x86 CPU provider; see runtime/node/nchwc.ts). */
  nchwcBlock?: number;
  /** Lower small depthwise convolutions to a MatMul (runtime/materialize.ts; onnxruntime-web's wasm). */
  depthwiseMatMul?: DepthwiseMatMul;
}

export interface MaterializedSubnet {
  subnetId: string;
  config: SubnetConfig;
  bytes: Uint8Array;
  calibrated: boolean;
  /** true when the statistics came from the cache */
  statsCached: boolean;
  params: number;
  macs: number;
  buildMs: number;
  calibrationMs: number;
}

export class Materializer {
  readonly weights: SubnetWeights;
  readonly stats: StatsStore;
  private readonly inflight = new Map<string, Promise<BnStatsMap>>();

  private readonly layout: () => Promise<CalibrateOptions>;
  private layoutOnce?: Promise<CalibrateOptions>;

  /**
   * `calibrationLayout`: options every calibration starts from, found on first use (e.g.
   * runtime/node/nchwc.ts `nchwcCalibration`: the NCHWc calibration graph where this onnxruntime
   * runs it); options passed to a call override them.
   */
  constructor(
    readonly pkg: SupernetPackage,
    readonly backend: Backend,
    stats: StatsStore = new MemoryStatsStore(),
    calibrationLayout?: (weights: SubnetWeights, backend: Backend) => Promise<CalibrateOptions>,
  ) {
    this.weights = new SubnetWeights(pkg);
    this.stats = stats;
    this.layout = () => (this.layoutOnce ??= calibrationLayout ? calibrationLayout(this.weights, this.backend) : Promise.resolve({}));
  }

  /** Calibrated statistics for a subnet: from the store, or computed once (concurrent callers share it). */
  async statistics(cfg: SubnetConfig, opts: CalibrateOptions = {}): Promise<{ stats: BnStatsMap; cached: boolean }> {
    const key = this.statsKeyOf(cfg, opts);
    const hit = await this.stats.get(key);
    if (hit) return { stats: hit, cached: true };
    let p = this.inflight.get(key);
    if (!p) {
      p = this.layout()
        .then((layout) => calibrateBn(this.weights, cfg, this.backend, { ...layout, ...opts }))
        .then(async (s) => {
          await this.stats.set(key, s);
          return s;
        });
      this.inflight.set(key, p);
      p.finally(() => this.inflight.delete(key)).catch(() => undefined);
    }
    return { stats: await p, cached: false };
  }

  /** Whether a subnet's calibrated statistics are in the store already (nothing is computed). */
  async hasStatistics(cfg: SubnetConfig, opts: CalibrateOptions = {}): Promise<boolean> {
    return (await this.stats.get(this.statsKeyOf(cfg, opts))) !== undefined;
  }

  /** The store's key: the subnet and how many of the package's calibration images are used. */
  private statsKeyOf(cfg: SubnetConfig, opts: CalibrateOptions): string {
    const count = this.pkg.manifest.calibration.count;
    return statsKey(this.pkg, cfg, Math.min(opts.images ?? count, count));
  }

  async materialize(config: SubnetConfig, opts: MaterializeOptions = {}): Promise<MaterializedSubnet> {
    const cfg = this.pkg.space.parse(config);
    const calibrate = opts.calibrate ?? true;
    let stats: BnStatsMap | undefined;
    let cached = false;
    const t0 = performance.now();
    if (calibrate) ({ stats, cached } = await this.statistics(cfg, opts.calibration));
    const t1 = performance.now();
    const built = buildSubnet(this.weights, cfg, { mode: opts.bn ?? 'fold', ...(stats ? { stats } : {}), ...(opts.nchwcBlock ? { nchwcBlock: opts.nchwcBlock } : {}), ...(opts.depthwiseMatMul ? { depthwiseMatMul: opts.depthwiseMatMul } : {}) });
    const t2 = performance.now();
    return {
      subnetId: this.pkg.space.id(cfg),
      config: cfg,
      bytes: built.bytes,
      calibrated: calibrate,
      statsCached: cached,
      params: countParams(this.pkg.arch, cfg),
      macs: countMacs(this.pkg.arch, cfg),
      buildMs: t2 - t1,
      calibrationMs: t1 - t0,
    };
  }
}
