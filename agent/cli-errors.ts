/**
 * The one place the command line turns a thrown value into what a person sees and the exit status a
 * script tests: one line on stderr, `nestswap: <message> [<CODE>]`, never a stack trace unless
 * `--verbose` or NESTSWAP_DEBUG=1. Commands throw; they do not print their own errors.
 */
import { isNestswapError } from '../runtime/errors.js';
import { RegistryApiError } from '../registry/admin-client.js';

/** Exit statuses (docs/cli.md#errors-and-exit-status). */
export const EXIT = Object.freeze({ ok: 0, failure: 1, usage: 2, timeout: 3, unreachable: 4 });

export interface Classified {
  code: string;
  message: string;
  status: number;
}

const SYSTEM_ERRORS: Readonly<Record<string, string>> = Object.freeze({
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ENOSPC: 'no space left on device',
  EEXIST: 'already exists',
  EROFS: 'read-only file system',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available',
});

function statusOf(code: string): number {
  if (code === 'ERR_USAGE') return EXIT.usage;
  if (code === 'ERR_TIMEOUT') return EXIT.timeout;
  if (code === 'ERR_REGISTRY_UNREACHABLE') return EXIT.unreachable;
  return EXIT.failure;
}

/** What kind of failure `err` is: its stable code, a one-line message and the exit status. */
export function classifyError(err: unknown): Classified {
  const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();
  if (isNestswapError(err)) return { code: err.code, message: oneLine(err.message), status: statusOf(err.code) };
  if (err instanceof RegistryApiError) return { code: err.code, message: oneLine(err.message), status: EXIT.failure };
  const e = err as { code?: unknown; syscall?: unknown; path?: unknown; address?: unknown; port?: unknown; message?: unknown } | undefined;
  if (e && typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) return { code: 'ERR_USAGE', message: oneLine(String(e.message)), status: EXIT.usage };
  if (e && typeof e.code === 'string' && typeof e.syscall === 'string') {
    // a Node system error (files, sockets): the operation, what it was on, and why
    const what = typeof e.path === 'string' ? ` ${e.path}` : typeof e.address === 'string' ? ` ${e.address}${e.port === undefined ? '' : `:${String(e.port)}`}` : '';
    return { code: 'ERR_IO', message: `${e.syscall}${what}: ${SYSTEM_ERRORS[e.code] ?? oneLine(String(e.message))} (${e.code})`, status: EXIT.failure };
  }
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return { code: 'ERR_INTERNAL', message: `internal error: ${oneLine(message)} (run with --verbose for the stack)`, status: EXIT.failure };
}

/** The stack of `err` and of each of its causes. */
function stacks(err: unknown): string {
  const out: string[] = [];
  for (let e = err, i = 0; e !== undefined && i < 6; e = (e as { cause?: unknown }).cause, i++)
    out.push(`${i ? 'caused by: ' : ''}${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  return `${out.join('\n')}\n`;
}

export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.NESTSWAP_DEBUG;
  return v !== undefined && v !== '' && v !== '0' && v !== 'false';
}

/** Prints the error (its stacks first when verbose) and returns the exit status. */
export function reportError(err: unknown, verbose = debugEnabled(), write: (s: string) => void = (s) => process.stderr.write(s)): number {
  const c = classifyError(err);
  if (verbose) write(stacks(err));
  write(`nestswap: ${c.message} [${c.code}]\n`);
  return c.status;
}
