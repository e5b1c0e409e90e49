/** Helpers shared by CLI commands: argument parsing, config input, output. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { NestswapError } from '../errors.js';

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, help: string) {
  const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  if ((r.values as Record<string, unknown>).help) {
    process.stdout.write(help.endsWith('\n') ? help : `${help}\n`);
    return undefined;
  }
  return r;
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new NestswapError('ERR_USAGE', `Missing required option ${flag}.`);
  return value;
}

/** A number option: finite, or a clear usage error naming the flag. */
export function numberOpt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || Number.isNaN(n)) throw new NestswapError('ERR_USAGE', `Option ${flag} must be a number (got '${value}').`);
  return n;
}

/** A subnet config given inline as JSON or as a path to a JSON file. */
export function readConfigArg(value: string): unknown {
  const text = value.trim().startsWith('{') ? value : existsSync(value) ? readFileSync(value, 'utf8') : undefined;
  if (text === undefined) throw new NestswapError('ERR_USAGE', `--subnet must be inline JSON or a path to a JSON file; '${value}' is neither.`);
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new NestswapError('ERR_CONFIG_INVALID', `--subnet is not valid JSON: ${(cause as Error).message}`, { cause });
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Resolves on the first SIGINT or SIGTERM (long-running commands: agent, registry). */
export function untilSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
