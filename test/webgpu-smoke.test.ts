// Real WGSL on this machine: Dawn (the `webgpu` package) through acquireGpu, on SwiftShader when there is
// no hardware GPU. CI installs chromium for SwiftShader, so there this must run, never skip.
import { afterAll, describe, expect, test } from 'vitest';
import { REQUESTED_LIMITS } from '../targets/wgsl/device.ts';
import { acquireTestGpu, compilationMessages, runSaxpy } from './helpers/gpu.ts';

const { gpu, skip } = await acquireTestGpu();

describe.skipIf(!gpu)(`WebGPU in Node${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(() => gpu?.release());

  test('adapter info and granted limits', () => {
    const { info, limits, device } = gpu!;
    console.log(`adapter: ${JSON.stringify(info)}`);
    console.log(`limits: ${REQUESTED_LIMITS.map((k) => `${k}=${limits[k]}`).join(' ')} shader-f16=${gpu!.hasF16}`);
    expect(info.host).toBe('dawn-node');
    for (const k of REQUESTED_LIMITS) {
      // The device got the adapter's maximum, and `limits` reports what the device has.
      expect(limits[k]).toBe((gpu!.adapter.limits as unknown as Record<string, number>)[k]);
      expect(limits[k]).toBe((device.limits as unknown as Record<string, number>)[k]);
    }
    expect(limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 << 20); // WebGPU's default
    expect(gpu!.hasF16).toBe(device.features.has('shader-f16'));
    if (info.architecture === 'swiftshader') expect(info.isSoftware).toBe(true);
  });

  test('y = a*x + b on 1000 floats matches the CPU', async () => {
    const n = 1000;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.fround(Math.sin(i) * 100);
    const { y, messages, errors } = await runSaxpy(gpu!.device, 1.5, -2.25, x);
    expect(messages).toEqual([]);
    expect(errors).toEqual([]);
    for (let i = 0; i < n; i++) expect(y[i]).toBeCloseTo(Math.fround(1.5 * x[i]! - 2.25), 4);
  });

  test('getCompilationInfo reports WGSL errors with a line number', async () => {
    const device = gpu!.device;
    device.pushErrorScope('validation');
    const bad = device.createShaderModule({ code: '@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = 1u;\n}\n' });
    const messages = await compilationMessages(bad);
    await device.popErrorScope();
    expect(messages.length).toBeGreaterThan(0);
    expect(messages[0]).toMatch(/^3:\d+ error: /);
  });
});
