/** Node adapter: a package directory on disk as a PackageSource. */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { PackageSource } from '../package.js';
import { SupernetPackage } from '../package.js';

export function dirSource(dir: string): PackageSource {
  const root = resolve(dir);
  return {
    location: root,
    read: async (path: string) => new Uint8Array(await readFile(join(root, path))),
  };
}

export function loadPackageDir(dir: string): Promise<SupernetPackage> {
  return SupernetPackage.load(dirSource(dir));
}
