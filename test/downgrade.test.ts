/**
 * A budget cut while other processes load the CPU: the agent must move to a faster subnet every
 * time. The health check judges the candidate beside the model it replaces (both slowed the same
 * way), so a downgrade is never refused for being slow under contention; the PUT is accepted
 * (200) and says whether the new budget is met as things run now. Repeated runs, real burner
 * processes (twice as many as cores, as test/contention does). No timing is asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { loadPackageDir } from '../runtime/node/fs-source.js';
import { nodeBackend } from '../runtime/node/ort-node.js';
import { ladderSelector, startDaemon } from '../agent/daemon.js';
import { repoPath } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RUNS = Number(process.env.NESTSWAP_DOWNGRADE_RUNS ?? 3);

test(`a budget cut under CPU contention moves the agent to a faster subnet, ${RUNS} runs out of ${RUNS}`, { timeout: 300_000 }, async (t) => {
  const pkg = await loadPackageDir(repoPath('test', 'fixtures', 'load', 'package'));
  const selector = await ladderSelector(pkg, nodeBackend, { size: 6, runs: 30 });
  const byLatency = [...selector.candidates].sort((a, b) => a.latencyMs - b.latencyMs);
  const fastest = byLatency[0]!;
  const slowest = byLatency[byLatency.length - 1]!;
  assert.ok(slowest.latencyMs > 2 * fastest.latencyMs, 'the ladder spans a latency range');
  const generous = slowest.latencyMs * 4;
  // the case: half of the serving subnet's predicted latency, met on a quiet machine by
  // the faster rungs, not under contention (the burners slow runs several-fold)
  const cut = Math.max(fastest.latencyMs * 1.05, slowest.latencyMs / 2);
  const d = await startDaemon({
    pkg,
    budget: { latencyMs: generous },
    selector,
    calibration: { images: 64 },
    monitor: { intervalMs: 300 },
    // the policy keeps still on its own for the length of a run: only the budget cut moves the agent
    policy: { downgradeWindows: 1000, upgradeWindows: 1000, cooldownMs: 60_000 },
    listen: { port: 0 },
  });
  const burners: ChildProcess[] = [];
  const stopBurners = () => {
    for (const b of burners.splice(0)) if (b.exitCode === null) b.kill('SIGKILL');
  };
  // an application that keeps sending requests: the monitor sees the slowdown from its runs
  let stop = false;
  const failures: string[] = [];
  const per = pkg.manifest.input.shape.reduce((a, b) => a * b, 1);
  const body = JSON.stringify({ input: Array.from({ length: per }, (_, i) => (i % 13) / 13) });
  const client = (async () => {
    while (!stop) {
      const r = await fetch(`${d.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).catch((e: Error) => e);
      if (r instanceof Error || r.status !== 200) failures.push(r instanceof Error ? r.message : String(r.status));
      else await r.arrayBuffer();
      await sleep(5);
    }
  })();
  t.after(async () => {
    stop = true;
    stopBurners();
    await client;
    await d.close();
  });
  const put = async (latencyMs: number) => {
    const r = await fetch(`${d.url}/v1/budget`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ latencyMs }) });
    return { status: r.status, json: (await r.json()) as any };
  };

  for (let run = 0; run < RUNS; run++) {
    // back on the slowest subnet, unpinned, with a budget it meets
    assert.equal((await put(generous)).status, 200);
    const start = await d.switchTo(slowest.config, { pin: false });
    assert.ok(['swapped', 'unchanged'].includes(start.outcome), JSON.stringify(start));
    for (let i = 0; i < 2 * cpus().length; i++) burners.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
    await sleep(1500); // the burners are running and the monitor has seen windows under them
    const r = await put(cut);
    const s = d.status();
    stopBurners();
    assert.equal(r.status, 200, `run ${run}: the cut is accepted: ${JSON.stringify(r.json)}`);
    const swap = r.json.swap;
    t.diagnostic(`run ${run}: cut to ${cut.toFixed(3)} ms, live slowdown ${s.effectiveBudget?.slowdown.toFixed(2)}, effective ${s.effectiveBudget?.latencyMs?.toFixed(3)} ms`);
    t.diagnostic(`run ${run}: ${swap.from} -> ${swap.to}: ${swap.outcome}, candidate ${swap.checkLatencyMs?.toFixed(3)} ms beside serving ${swap.servingLatencyMs?.toFixed(3)} ms (${swap.latencyVerdict}); budget met: ${JSON.stringify(r.json.budgetState)}`);
    assert.equal(swap.outcome, 'swapped', `run ${run}: ${JSON.stringify(swap)}`);
    assert.equal(swap.reason, 'budget');
    assert.equal(swap.latencyVerdict, 'not-slower', 'the record says why the latency check passed');
    assert.ok(swap.servingLatencyMs > 0 && swap.checkLatencyMs > 0);
    assert.ok((s.predicted.latencyMs ?? Infinity) < slowest.latencyMs, `run ${run}: serving a faster subnet (${s.subnet?.id})`);
    assert.deepEqual(s.budget, { latencyMs: cut });
    assert.equal(typeof r.json.budgetState.met, 'boolean');
    if (r.json.budgetState.met === false) assert.match(r.json.budgetState.reason, /slowdown/);
  }
  stop = true;
  await client;
  assert.deepEqual(failures, [], 'no request failed meanwhile');
});
