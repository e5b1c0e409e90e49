/** Small statistics helpers for benchmarks (medians, nearest-rank percentiles). */
import { median } from '../runtime/profile.js';
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

export { median };

export function summary(xs: readonly number[]): { median: number; p99: number; min: number; max: number; n: number } {
  const r = (v: number) => Math.round(v * 1000) / 1000;
  return { median: r(median(xs)), p99: r(percentile(xs, 99)), min: r(Math.min(...xs)), max: r(Math.max(...xs)), n: xs.length };
}

export async function timeIt(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
