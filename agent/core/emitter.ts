/** A minimal event emitter (node:events is not in browsers); a listener that throws throws from emit, as there. */
export class Emitter {
  private readonly listeners = new Map<string, Set<(x: unknown) => void>>();

  on(event: string, cb: (x: unknown) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(cb);
    return () => set.delete(cb);
  }

  emit(event: string, x: unknown): void {
    for (const cb of [...(this.listeners.get(event) ?? [])]) cb(x);
  }

  clear(): void {
    this.listeners.clear();
  }
}
