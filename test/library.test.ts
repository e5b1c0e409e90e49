/**
 * The library entry point (`import … from 'nestswap'`): the package resolves to it by name, and an
 * application can run an agent in process — serve, switch, change the budget — with it alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST, TINY } from './helpers.js';

test("the package's own name resolves to the library, which runs an agent in process", async () => {
  const lib = await import('nestswap');
  const pkg = await lib.loadPackageDir(TINY);
  const agent = await lib.startAgent({ pkg, budget: { latencyMs: 1e6 }, ...FAST, ladderSize: 3, monitor: { intervalMs: 200 } });
  try {
    const x = new Float32Array(pkg.manifest.input.shape.reduce((a, b) => a * b, 1)).fill(0.5);
    const r = await agent.infer(x, 1);
    assert.equal(r.indices.length, 1);
    const min = pkg.space.min();
    const sw = await agent.switchTo(min);
    assert.ok(sw.outcome === 'swapped' || sw.outcome === 'unchanged', sw.outcome);
    assert.equal(agent.status().subnet?.id, pkg.space.id(min));
    assert.equal((await agent.infer(x, 1)).subnetId, pkg.space.id(min));
    // bad input is a NestswapError with a stable code
    await assert.rejects(agent.switchTo({ ...min, ks: min.ks.map(() => 4) }), (e: unknown) => lib.isNestswapError(e) && e.code === 'ERR_CONFIG_INVALID');
  } finally {
    await agent.close();
  }
});
