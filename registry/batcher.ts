/**
 * Groups work that arrives from many connections into one store call: items added while a flush
 * is running wait for the next one, so under load each round trip carries many items and when idle
 * an item waits only for the current event-loop turn. One flush at a time keeps results in order.
 */
export class Batcher<In, Out> {
  private pending: { item: In; resolve: (o: Out) => void; reject: (e: unknown) => void }[] = [];
  private running = false;
  private scheduled = false;

  constructor(
    private readonly flushFn: (items: In[]) => Promise<Out[]>,
    private readonly maxItems = 2000,
  ) {}

  add(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running || this.pending.length === 0) return;
    this.running = true;
    const batch = this.pending.splice(0, this.maxItems);
    try {
      const out = await this.flushFn(batch.map((b) => b.item));
      batch.forEach((b, i) => b.resolve(out[i]!));
    } catch (err) {
      for (const b of batch) b.reject(err);
    } finally {
      this.running = false;
      if (this.pending.length) this.schedule();
    }
  }

  /** Resolves when everything added so far has been flushed. */
  async drain(): Promise<void> {
    while (this.running || this.pending.length || this.scheduled) await new Promise((r) => setTimeout(r, 1));
  }
}
