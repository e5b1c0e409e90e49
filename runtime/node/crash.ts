/**
 * Deterministic crash points for the kill -9 harness: with NESTSWAP_CRASH_AT=<point> (comma-separated
 * points allowed, `<point>:<n>` for the n-th time it is reached) the process SIGKILLs itself when it
 * reaches that point, exactly as an outside `kill -9` would at that moment. Unset, it costs a lookup.
 */
const spec = process.env.NESTSWAP_CRASH_AT;
const targets = new Map<string, number>();
if (spec)
  for (const item of spec.split(',')) {
    const [point, n] = item.trim().split(':');
    if (point) targets.set(point, n ? Math.max(1, Number(n) || 1) : 1);
  }
const seen = new Map<string, number>();

export function crashPoint(point: string): void {
  if (targets.size === 0) return;
  const want = targets.get(point);
  if (want === undefined) return;
  const n = (seen.get(point) ?? 0) + 1;
  seen.set(point, n);
  if (n === want) process.kill(process.pid, 'SIGKILL');
}
