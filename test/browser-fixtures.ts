/**
 * Fixtures for tests and benchmarks in a real browser: Debian's chromium driven by playwright-core
 * (no browser download), a registry of the test's own on 127.0.0.1 serving the agent bundle and the
 * fmnist-ofa package, and Fashion-MNIST test images.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { AdminClient } from '../registry/admin-client.js';
import { startRegistry, type RegistryHandle } from '../registry/server.js';
import { buildWeb, webBundleStale } from '../web/build.js';
import { indicesOf, loadFmnistFromNpm, IMAGE_PIXELS } from '../models/fmnist-ofa/data.js';
import { repoPath, tempDir } from './helpers.js';

export const ADMIN = 'admin_token_for_browser_tests';
export const ENROLL = 'enroll_token_for_browser_tests';
export const FMNIST = repoPath('models', 'fmnist-ofa', 'package');
export const ARTIFACTS = repoPath('.artifacts', 'browser');

/** The system chromium (CHROMIUM overrides), or undefined when this machine has none. */
export function chromiumPath(): string | undefined {
  const p = process.env.CHROMIUM ?? '/usr/bin/chromium';
  return existsSync(p) ? p : undefined;
}

export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  // --no-sandbox: tests run as root in CI; WebGPU on a software adapter where no GPU is present
  return chromium.launch({ executablePath: chromiumPath()!, headless: true, args: ['--no-sandbox', '--enable-unsafe-webgpu', ...extraArgs] });
}

export interface WebRegistry {
  reg: RegistryHandle;
  url: string;
  admin: AdminClient;
  close(): Promise<void>;
}

/** A registry with the fmnist-ofa package published, the browser bundle built first when stale. */
export async function startWebRegistry(): Promise<WebRegistry> {
  if (webBundleStale()) await buildWeb();
  const dir = tempDir('nestswap-browser-');
  const reg = await startRegistry({ port: 0, host: '127.0.0.1', dataDir: join(dir.path, 'data'), adminToken: ADMIN, enrollToken: ENROLL });
  const admin = new AdminClient(reg.url, ADMIN);
  await admin.publishDir(FMNIST);
  return {
    reg,
    url: reg.url,
    admin,
    async close() {
      await reg.close();
      dir[Symbol.dispose]();
    },
  };
}

/** `n` Fashion-MNIST test images (evenly over the test split), pixels / 255, as one batch. */
export function fmnistTestBatch(n: number): { input: Float32Array; labels: number[] } {
  const data = loadFmnistFromNpm();
  const test = indicesOf(data, 'test');
  const input = new Float32Array(n * IMAGE_PIXELS);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const idx = test[Math.floor((i * test.length) / n)]!;
    for (let p = 0; p < IMAGE_PIXELS; p++) input[i * IMAGE_PIXELS + p] = data.images[idx * IMAGE_PIXELS + p]! / 255;
    labels.push(data.labels[idx]!);
  }
  return { input, labels };
}

export function artifactsDir(): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return ARTIFACTS;
}
