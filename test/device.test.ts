import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deviceIdentity, discoverDevice, discoverNpus, probeExecutionProviders, simdFlags } from '../agent/device.js';
import { repoPath } from './helpers.js';

test('NPUs present in a fixture tree are found with vendor, driver and the EP that could drive them', async () => {
  const npus = await discoverNpus(repoPath('test/fixtures/sys-npu'), ['cpu']);
  const accel = npus.find((n) => n.source === 'sys-accel');
  assert.ok(accel);
  assert.equal(accel.driver, 'intel_vpu');
  assert.equal(accel.vendor, 'Intel');
  assert.equal(accel.pciId, '8086:7D1D');
  assert.deepEqual(accel.drivenBy, ['openvino']);
  assert.equal(accel.runnable, false, 'no usable openvino EP here, so it cannot run a model');
  const paths = npus.map((n) => n.path).sort();
  assert.deepEqual(paths, ['/dev/accel/accel0', '/dev/apex_0', '/dev/hailo0', '/sys/bus/usb/devices/2-1', '/sys/class/accel/accel0', '/sys/class/misc/intel_vpu']);
  assert.ok(npus.every((n) => n.readable));
  assert.equal(npus.find((n) => n.path === '/dev/apex_0')!.kind, 'Coral Edge TPU');
  assert.equal(npus.find((n) => n.source === 'usb')!.kind, 'Coral Edge TPU (USB)');
});

test('an NPU becomes runnable only when a usable EP can drive it', async () => {
  const npus = await discoverNpus(repoPath('test/fixtures/sys-npu'), ['cpu', 'openvino']);
  assert.equal(npus.find((n) => n.source === 'sys-accel')!.runnable, true);
  assert.equal(npus.find((n) => n.kind === 'Hailo')!.runnable, false);
});

test('no NPU in a tree without any is reported as none', async () => {
  assert.deepEqual(await discoverNpus(repoPath('test/fixtures/sys-none')), []);
  assert.deepEqual(await discoverNpus(repoPath('test/fixtures/does-not-exist')), []);
});

test('unreadable NPU entries are listed as unreadable with the error, not hidden and not claimed', async () => {
  const npus = await discoverNpus(repoPath('test/fixtures/sys-unreadable'), ['cpu']);
  assert.equal(npus.length, 2);
  for (const n of npus) {
    assert.equal(n.readable, false);
    assert.match(n.error ?? '', /ENOENT/);
    assert.equal(n.runnable, false);
  }
});

test('SIMD flags come from /proc/cpuinfo for x86 and Arm', () => {
  assert.deepEqual(simdFlags('flags\t\t: fpu sse4_1 avx avx2 fma avx512f'), ['sse4_1', 'avx', 'avx2', 'fma', 'avx512f']);
  assert.deepEqual(simdFlags('Features\t: fp asimd fphp asimdhp asimddp'), ['asimd', 'asimddp', 'asimdhp', 'fphp']);
  assert.deepEqual(simdFlags(''), []);
});

test('the fingerprint depends on stable facts only', () => {
  const base = { platform: 'linux', arch: 'x64', cpuManufacturer: 'Intel', cpuBrand: 'Xeon® Processor', cores: 2, physicalCores: 2, memTotalMB: 24105, ortVersion: '1.30.0' };
  const a = deviceIdentity(base);
  assert.match(a.fingerprint, /^[0-9a-f]{16}$/);
  assert.equal(a.deviceClass, 'linux-x64-intel-xeon-2c-24g');
  assert.equal(deviceIdentity({ ...base, memTotalMB: 24300 }).fingerprint, a.fingerprint, 'rounding to GB absorbs small changes');
  assert.notEqual(deviceIdentity({ ...base, cores: 4 }).fingerprint, a.fingerprint);
  assert.notEqual(deviceIdentity({ ...base, ortVersion: '1.31.0' }).fingerprint, a.fingerprint);
});

test('EPs that cannot start are reported with the runtime error; cpu works', async () => {
  const eps = await probeExecutionProviders(['cpu', 'no-such-ep', 'webgpu'], ['cpu', 'webgpu']);
  const by = new Map(eps.map((e) => [e.name, e]));
  assert.equal(by.get('cpu')!.usable, true);
  assert.equal(by.get('no-such-ep')!.usable, false);
  assert.equal(by.get('no-such-ep')!.bundled, false);
  assert.ok(by.get('no-such-ep')!.reason.length > 0);
  // webgpu is bundled in linux-x64 onnxruntime-node; it needs a GPU adapter this machine lacks.
  const webgpu = by.get('webgpu')!;
  assert.equal(webgpu.bundled, true);
  if (!webgpu.usable) assert.ok(webgpu.reason.length > 0, 'a failing EP says why');
});

test('discovery on this machine: GPU and NPU lists match what exists, fingerprint is stable', async () => {
  const a = await discoverDevice({ root: repoPath('test/fixtures/sys-none'), eps: ['bogus'] });
  const b = await discoverDevice({ root: repoPath('test/fixtures/sys-none'), skipEps: true });
  assert.equal(a.fingerprint, b.fingerprint);
  assert.deepEqual(a.npus, []);
  assert.ok(a.notes.includes('no NPU found through kernel interfaces'));
  if (a.gpus.length === 0) assert.ok(a.notes.includes('no GPU found'));
  assert.deepEqual(a.cpu.simd, ['sse4_1', 'sse4_2', 'avx', 'avx2', 'fma'], 'flags read under the root');
  assert.ok(a.memory.totalMB > 0 && a.memory.availableMB > 0);
  assert.equal(a.eps.find((e) => e.name === 'bogus')!.usable, false);
  assert.equal(a.eps.find((e) => e.name === 'cpu')!.usable, true);
});

test("onnxruntime's usage telemetry is off unless the user set ORT_DISABLE_TELEMETRY", async () => {
  const { spawnSync } = await import('node:child_process');
  const script = `await import(${JSON.stringify(repoPath('dist', 'runtime', 'node', 'ort-node.js'))}); process.stdout.write(String(process.env.ORT_DISABLE_TELEMETRY));`;
  const run = (env: NodeJS.ProcessEnv) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' }).stdout;
  const { ORT_DISABLE_TELEMETRY: _omit, ...clean } = process.env;
  assert.equal(run(clean), '1');
  assert.equal(run({ ...clean, ORT_DISABLE_TELEMETRY: '0' }), '0');
});
