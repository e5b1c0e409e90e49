/** Time as the agent core sees it: injected so the core runs the same under Node and in a page. */
export interface Clock {
  /** monotonic milliseconds */
  now(): number;
  /** wall time, ISO 8601 */
  isoNow(): string;
  /** calls `fn` every `ms`; returns the cancel function. The timer never keeps a process alive. */
  every(ms: number, fn: () => void): () => void;
  sleep(ms: number): Promise<void>;
}

/** The global timers (present in Node and in browsers). */
export const systemClock: Clock = {
  now: () => performance.now(),
  isoNow: () => new Date().toISOString(),
  every(ms, fn) {
    const t = setInterval(fn, ms) as unknown as { unref?: () => void };
    t.unref?.();
    return () => clearInterval(t as unknown as Parameters<typeof clearInterval>[0]);
  },
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};
