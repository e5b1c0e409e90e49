/**
 * The browser agent's onnxruntime-web module: runs of all its sessions are queued, because the JSEP build
 * refuses a run while another is in flight ("Session already started"). The fake below enforces that
 * rule as onnxruntime-web does, so the test fails if two runs ever overlap.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serializeRuns, type OrtWeb } from '../web/ort.js';

function jsepLikeOrt(log: string[]): OrtWeb {
  let inFlight: string | null = null;
  const session = (name: string) => ({
    inputNames: ['x'],
    outputNames: ['y'],
    async run(feeds: Record<string, unknown>) {
      if (inFlight) throw new Error('Session already started');
      inFlight = name;
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, 5));
      if (feeds.fail) {
        inFlight = null;
        throw new Error(`${name} failed`);
      }
      log.push(`end ${name}`);
      inFlight = null;
      return { y: name };
    },
    async release() {
      if (inFlight === name) throw new Error('released during its own run');
      log.push(`release ${name}`);
    },
  });
  let n = 0;
  return { InferenceSession: { create: async () => session(`s${n++}`) }, Tensor: class {}, env: { wasm: {} } } as unknown as OrtWeb;
}

test('runs of different sessions never overlap, a failed run does not block the next, release waits its turn', async () => {
  const log: string[] = [];
  const ort = serializeRuns(jsepLikeOrt(log));
  const a = await ort.InferenceSession.create(new Uint8Array());
  const b = await ort.InferenceSession.create(new Uint8Array());
  assert.deepEqual(a.inputNames, ['x'], 'other members pass through');
  const runs = [a.run({} as never), b.run({ fail: true } as never), a.run({} as never), b.run({} as never), b.release()];
  const settled = await Promise.allSettled(runs);
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
  assert.match(String((settled[1] as PromiseRejectedResult).reason), /s1 failed/);
  assert.deepEqual(log, ['start s0', 'end s0', 'start s1', 'start s0', 'end s0', 'start s1', 'end s1', 'release s1']);
});

test('without the queue the same calls overlap and fail as onnxruntime-web does (the fake is faithful)', async () => {
  const ort = jsepLikeOrt([]);
  const a = await ort.InferenceSession.create(new Uint8Array());
  const b = await ort.InferenceSession.create(new Uint8Array());
  const settled = await Promise.allSettled([a.run({} as never), b.run({} as never)]);
  assert.match(String((settled[1] as PromiseRejectedResult).reason), /Session already started/);
});
