/**
 * Builds the browser bundles into dist/bundle/ (run by `npm run build`; tests call it when the bundle is
 * missing or older than its sources): agent.js (the ESM browser agent, `nestswap.connect`) and
 * dashboard.js (the fleet dashboard). onnxruntime-web is not bundled: the agent loads its own files
 * from the registry (/v1/web/ort/), next to the wasm binaries they fetch.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEB_OUT = join(ROOT, 'dist', 'bundle');
const ENTRIES = { agent: join(ROOT, 'web', 'agent.ts'), dashboard: join(ROOT, 'web', 'dashboard', 'main.ts') };

function newestSource(dir: string): number {
  let t = 0;
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newestSource(p) : /\.(ts|html)$/.test(f) ? s.mtimeMs : 0);
  }
  return t;
}

/** Whether dist/web is missing a bundle or older than any source it is built from. */
export function webBundleStale(): boolean {
  const outs = Object.keys(ENTRIES).map((k) => join(WEB_OUT, `${k}.js`));
  if (!outs.every(existsSync)) return true;
  const built = Math.min(...outs.map((o) => statSync(o).mtimeMs));
  return ['web', 'agent', 'runtime'].some((d) => newestSource(join(ROOT, d)) > built);
}

export async function buildWeb(): Promise<void> {
  const { build } = await import('esbuild');
  await build({
    entryPoints: ENTRIES,
    outdir: WEB_OUT,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
    // onnxruntime-web comes from the registry's /v1/web/ort/ at run time (web/ort.ts), never from the bundle
    external: ['onnxruntime-web', 'onnxruntime-node'],
  });
  // the pages travel with the bundle (an installed package has dist/, not web/)
  mkdirSync(WEB_OUT, { recursive: true });
  copyFileSync(join(ROOT, 'web', 'index.html'), join(WEB_OUT, 'index.html'));
  copyFileSync(join(ROOT, 'web', 'dashboard', 'index.html'), join(WEB_OUT, 'dashboard.html'));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await buildWeb();
