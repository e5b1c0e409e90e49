/** Small DOM helpers: elements from tag, attributes and children; text is always set as text, never as HTML. */
type Child = Node | string;

export function el(tag: string, attrs: Record<string, string | ((e: Event) => void)> = {}, children: Child[] = []): HTMLElement {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') e.addEventListener(k.replace(/^on/, ''), v);
    else if (k === 'value') (e as HTMLInputElement).value = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}

export const text = (s: string) => document.createTextNode(s);

export function fmtMs(x: number | null | undefined): string {
  return typeof x === 'number' ? `${x < 1 ? x.toFixed(3) : x.toFixed(2)} ms` : '—';
}

export function fmtBudget(b: unknown): string {
  const o = (b ?? {}) as { latencyMs?: number; memoryMB?: number };
  const parts = [o.latencyMs !== undefined ? `${o.latencyMs} ms` : null, o.memoryMB !== undefined ? `${o.memoryMB} MB` : null].filter(Boolean);
  return parts.length ? parts.join(', ') : 'none';
}
