/** Resolves `--supernet` arguments: a package directory, a family directory, or a bundled family name. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NestswapError } from '../errors.js';
import { loadPackageDir } from './fs-source.js';
import type { SupernetPackage } from '../package.js';
import { ensureFamilyPackage, MODELS_DIR } from '../../models/generate.js';
import { readdirSync } from 'node:fs';

export function bundledFamilies(): string[] {
  return readdirSync(MODELS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(MODELS_DIR, d.name, 'arch.json')))
    .map((d) => d.name)
    .sort();
}

export function resolveSupernetDir(arg: string): string {
  if (existsSync(join(arg, 'manifest.json'))) return arg;
  if (existsSync(join(arg, 'arch.json'))) {
    const fam = arg.replace(/\/+$/, '').split('/').pop()!;
    if (existsSync(join(arg, 'package', 'manifest.json'))) return join(arg, 'package');
    if (existsSync(join(MODELS_DIR, fam, 'arch.json'))) return ensureFamilyPackage(fam);
  }
  if (bundledFamilies().includes(arg)) {
    const dir = ensureFamilyPackage(arg);
    if (existsSync(join(dir, 'manifest.json'))) return dir;
  }
  throw new NestswapError('ERR_PACKAGE_MISSING', `No supernet package at '${arg}'. Give a package directory (with manifest.json), a family directory, or one of: ${bundledFamilies().join(', ')}.`);
}

export function loadSupernet(arg: string): Promise<SupernetPackage> {
  return loadPackageDir(resolveSupernetDir(arg));
}
