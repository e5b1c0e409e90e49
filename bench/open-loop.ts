/** Open-loop request load for the swap benchmarks: request i is due at start + i·interval whether or not earlier ones have finished. */

export interface RequestTally {
  lat: number[];
  /** finish time minus due time: what a caller on schedule waited */
  late: number[];
  errors: number;
}

/**
 * Waits until `due` (a performance.now() time), sends, and returns the request (wrapped, so the caller
 * decides when to await it) that records its latency, its lateness from `due`, or an error into `into`.
 */
export async function sendWhenDue(send: () => Promise<unknown>, due: number, into: RequestTally): Promise<{ done: Promise<void> }> {
  const wait = due - performance.now();
  if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
  const t0 = performance.now();
  const done = send().then(
    () => {
      const t1 = performance.now();
      into.lat.push(t1 - t0);
      into.late.push(t1 - Math.min(t0, due));
    },
    () => void into.errors++,
  );
  return { done };
}
