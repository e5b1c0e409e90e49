/**
 * Memory of a subnet's session, measured and predicted. Measured: the resident-set increase of a
 * fresh child process that creates the session and runs it once (ORT's one-time environment set-up
 * is done on a tiny model before the 'before' reading, so it is not charged to the subnet).
 * Predicted: MB ≈ weights·(fp32 weight MB) + activations·(peak live activation MB bound) + overhead,
 * fitted per device; additive per block, so it is a flat EfficiencyModel.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Arch } from '../runtime/arch.js';
import { NestswapError } from '../runtime/errors.js';
import { buildProbeGraph } from '../runtime/parts.js';
import { peakActivationBoundMB, weightsMB, type MemoryCoefficients } from '../runtime/profile.js';
import type { SubnetConfig } from '../runtime/space.js';

export interface MemoryMeasurement {
  rssBeforeMB: number;
  rssAfterMB: number;
  deltaMB: number;
  /** resident set after the session is released (shows what the runtime keeps) */
  rssReleasedMB: number;
}

// Runs in the child: argv = [ortModuleUrl, modelPath, probePath, dimsJson, ep, threads].
const CHILD = `
const [ortUrl, modelPath, probePath, dimsJson, ep, threads] = process.argv.slice(1);
const ort = await import(ortUrl);
const { readFileSync } = await import('node:fs');
const MB = 1024 * 1024;
const opts = { executionProviders: [ep], graphOptimizationLevel: 'all' };
if (Number(threads) > 0) opts.intraOpNumThreads = Number(threads);
const probe = await ort.InferenceSession.create(readFileSync(probePath), opts);
await probe.run({ [probe.inputNames[0]]: new ort.Tensor('float32', new Float32Array(3 * 64), [1, 3, 8, 8]) });
await probe.release();
const bytes = readFileSync(modelPath);
const dims = JSON.parse(dimsJson);
const input = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(0.5), dims);
globalThis.gc?.();
const before = process.memoryUsage().rss;
const s = await ort.InferenceSession.create(bytes, opts);
await s.run({ [s.inputNames[0]]: input });
const after = process.memoryUsage().rss;
await s.release();
const released = process.memoryUsage().rss;
process.stdout.write(JSON.stringify({ before: before / MB, after: after / MB, released: released / MB }));
`;

/** Resident-memory increase of creating and running a session of `bytes` once, in a fresh child. */
export async function measureSubnetMemory(bytes: Uint8Array, inDims: readonly number[], o: { ep: string; threads: number; timeoutMs?: number }): Promise<MemoryMeasurement> {
  const dir = await mkdtemp(join(tmpdir(), 'nestswap-mem-'));
  try {
    const model = join(dir, 'model.onnx');
    const probe = join(dir, 'probe.onnx');
    await writeFile(model, bytes);
    await writeFile(probe, buildProbeGraph());
    const ortUrl = import.meta.resolve('onnxruntime-node');
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--expose-gc', '--input-type=module', '-e', CHILD, ortUrl, model, probe, JSON.stringify(inDims), o.ep, String(o.threads)],
        { stdio: ['ignore', 'pipe', 'pipe'], timeout: o.timeoutMs ?? 120_000 },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve(stdout) : reject(new NestswapError('ERR_SESSION', `Memory probe child exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' ')}`)),
      );
    });
    const r = JSON.parse(out) as { before: number; after: number; released: number };
    return { rssBeforeMB: r.before, rssAfterMB: r.after, deltaMB: r.after - r.before, rssReleasedMB: r.released };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The two features of the memory model for a subnet. */
export function memoryFeatures(arch: Arch, cfg: SubnetConfig): { weightsMB: number; activationsMB: number } {
  return { weightsMB: weightsMB(arch, cfg), activationsMB: peakActivationBoundMB(arch, cfg.image_size) };
}

/**
 * Fits MB ≈ w·weightsMB + a·activationsMB + c by least squares (non-negative w, a; 3+ samples).
 * With fewer samples, or when the fit is degenerate, falls back to w = 1 + fitted c, a = 1.
 */
export function fitMemory(arch: Arch, samples: readonly { cfg: SubnetConfig; mb: number }[]): { coef: MemoryCoefficients; predict: (cfg: SubnetConfig) => number } {
  const X = samples.map((s) => memoryFeatures(arch, s.cfg));
  const y = samples.map((s) => s.mb);
  const predictWith = (c: MemoryCoefficients) => (cfg: SubnetConfig) => {
    const f = memoryFeatures(arch, cfg);
    return c.weights * f.weightsMB + c.activations * f.activationsMB + c.overheadMB;
  };
  const sse = (c: MemoryCoefficients) => samples.reduce((s, smp) => s + (predictWith(c)(smp.cfg) - smp.mb) ** 2, 0);
  const candidates: MemoryCoefficients[] = [];
  // fixed slopes: only the overhead is fitted
  const fixedSlopes = (w: number, a: number): MemoryCoefficients => ({
    weights: w,
    activations: a,
    overheadMB: y.length ? y.reduce((s, v, i) => s + v - w * X[i]!.weightsMB - a * X[i]!.activationsMB, 0) / y.length : 0,
  });
  candidates.push(fixedSlopes(1, 1));
  if (samples.length >= 3) {
    const sol = leastSquares3(X.map((f) => [f.weightsMB, f.activationsMB, 1]), y);
    if (sol && sol[0]! >= 0 && sol[1]! >= 0) candidates.push({ weights: sol[0]!, activations: sol[1]!, overheadMB: sol[2]! });
    // one slope at a time (collinear features in small samples)
    for (const [w, a] of [[1, 0], [0, 1]] as const) {
      const xs = X.map((f) => w * f.weightsMB + a * f.activationsMB);
      const m = xs.reduce((s, v) => s + v, 0) / xs.length;
      const my = y.reduce((s, v) => s + v, 0) / y.length;
      const sxx = xs.reduce((s, v) => s + (v - m) ** 2, 0);
      const k = sxx > 0 ? xs.reduce((s, v, i) => s + (v - m) * (y[i]! - my), 0) / sxx : 0;
      if (k > 0) candidates.push({ weights: w * k + (1 - w), activations: a * k + (1 - a), overheadMB: 0 });
    }
  }
  // refit the overhead for every candidate's slopes, keep the best
  let best = candidates[0]!;
  for (const c of candidates) {
    const f = fixedSlopes(c.weights, c.activations);
    if (sse(f) < sse(best)) best = f;
  }
  return { coef: best, predict: predictWith(best) };
}

function leastSquares3(A: number[][], y: number[]): number[] | undefined {
  const n = 3;
  const M = Array.from({ length: n }, () => new Array<number>(n + 1).fill(0));
  A.forEach((row, r) => {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) M[i]![j] = M[i]![j]! + row[i]! * row[j]!;
      M[i]![n] = M[i]![n]! + row[i]! * y[r]!;
    }
  });
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    if (Math.abs(M[p]![c]!) < 1e-12) return undefined;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k] = M[r]![k]! - f * M[c]![k]!;
    }
  }
  return M.map((row, i) => row[n]! / row[i]!);
}
