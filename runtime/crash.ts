/**
 * Deterministic crash points for the kill -9 harness: with NESTSWAP_CRASH_AT=<point> (comma-separated
 * points allowed, `<point>:<n>` for the n-th time it is reached) the process SIGKILLs itself when it
 * reaches that point, exactly as an outside `kill -9` would at that moment. Unset (and in browsers,
 * which have no process), it costs one map lookup. Points are listed in docs/trust.md.
 */
interface ProcLike {
  env?: Record<string, string | undefined>;
  pid?: number;
  kill?: (pid: number, signal: string) => void;
}
const proc = (globalThis as { process?: ProcLike }).process;
const targets = new Map<string, number>();
for (const item of (proc?.env?.NESTSWAP_CRASH_AT ?? '').split(',')) {
  const [point, n] = item.trim().split(':');
  if (point) targets.set(point, n ? Math.max(1, Number(n) || 1) : 1);
}
const seen = new Map<string, number>();

/** Whether `point` is the one this process will crash at (the next time it is reached counts). */
export function crashArmed(point: string): boolean {
  const want = targets.get(point);
  return want !== undefined && (seen.get(point) ?? 0) + 1 === want;
}

/** SIGKILLs this process when NESTSWAP_CRASH_AT names `point` (and this is its n-th time); `before` runs first. */
export function crashPoint(point: string, before?: () => void): void {
  if (targets.size === 0) return;
  const want = targets.get(point);
  if (want === undefined) return;
  const n = (seen.get(point) ?? 0) + 1;
  seen.set(point, n);
  if (n !== want || !proc?.kill || proc.pid === undefined) return;
  before?.();
  proc.kill(proc.pid, 'SIGKILL');
}
