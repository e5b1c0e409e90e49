/**
 * Progress of long CLI work (profile, BN calibration, package download, publish, search --pareto): one
 * line on stderr, redrawn in place, only when stderr is a terminal and the command was not asked for
 * --json. Every command uses this one helper; nothing else draws progress.
 *
 * NESTSWAP_PROGRESS=tty draws it on a stream that is not a terminal (tests, `script`-less logging),
 * NESTSWAP_PROGRESS=off never draws it.
 */

export interface ProgressSink {
  isTTY?: boolean;
  write(s: string): unknown;
}

export interface ProgressOptions {
  /** the command prints JSON: no progress at all */
  json?: boolean | undefined;
  /** where to draw (default process.stderr) */
  stream?: ProgressSink;
  /** override the terminal check (tests); else NESTSWAP_PROGRESS, else stream.isTTY */
  tty?: boolean;
  /** 'bytes' shows done/total as MB */
  unit?: 'count' | 'bytes';
  /** least time between two redraws (default 100 ms; the last state is always drawn) */
  minIntervalMs?: number;
  env?: Record<string, string | undefined>;
}

export interface Progress {
  /** whether anything is drawn (callers may skip work that only feeds the bar) */
  readonly active: boolean;
  /** `done` of `total` (total 0 or unknown: a counter without a bar); `label` renames the line */
  update(done: number, total?: number, label?: string): void;
  /** clears the line (the command's own output follows) */
  end(): void;
}

const WIDTH = 24;

function enabled(o: ProgressOptions, stream: ProgressSink): boolean {
  if (o.json) return false;
  if (o.tty !== undefined) return o.tty;
  const env = (o.env ?? process.env).NESTSWAP_PROGRESS;
  if (env === 'tty') return true;
  if (env === 'off') return false;
  return stream.isTTY === true;
}

const mb = (n: number) => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} MB`;

/** One progress line for `label` (e.g. 'profiling', 'calibrating BN', 'uploading'). */
export function progress(label: string, o: ProgressOptions = {}): Progress {
  const stream = o.stream ?? process.stderr;
  if (!enabled(o, stream)) return { active: false, update: () => undefined, end: () => undefined };
  const minMs = o.minIntervalMs ?? 100;
  let last = -Infinity;
  let drawn = false;
  let name = label;
  return {
    active: true,
    update(done, total = 0, l) {
      if (l !== undefined && l !== name) {
        name = l;
        last = -Infinity;
      }
      const now = performance.now();
      if (now - last < minMs && !(total > 0 && done >= total)) return;
      last = now;
      const fmt = o.unit === 'bytes' ? mb : String;
      let line = `${name.padEnd(16)} `;
      if (total > 0) {
        const f = Math.max(0, Math.min(1, done / total));
        const fill = Math.round(WIDTH * f);
        line += `[${'#'.repeat(fill)}${'.'.repeat(WIDTH - fill)}] ${String(Math.round(f * 100)).padStart(3)}%  ${fmt(done)}/${fmt(total)}`;
      } else line += fmt(done);
      stream.write(`\r\x1b[2K${line}`);
      drawn = true;
    },
    end() {
      if (drawn) stream.write('\r\x1b[2K');
      drawn = false;
    },
  };
}
