// Real WGSL on this machine: Dawn (the `webgpu` package) through acquireGpu, on SwiftShader when there is
// no hardware GPU. CI installs chromium for SwiftShader, so there this must run, never skip.
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, test } from 'vitest';
import { REQUESTED_LIMITS, SWIFTSHADER_NOTE, swiftShaderIcd } from '../targets/wgsl/device.ts';
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

// The SwiftShader fallback itself (CI exports VK_ICD_FILENAMES, so the tests above take the user's choice):
// a fresh Node with VK_ICD_FILENAMES unset must find SwiftShader by itself, and exit on its own after release().
const icd = await swiftShaderIcd();
const inCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
describe.skipIf(!icd && !inCI)('acquireGpu in a fresh Node process', () => {
  const run = (software: string) => {
    const env = { ...process.env };
    delete env.VK_ICD_FILENAMES;
    delete env.VK_DRIVER_FILES;
    const code = [
      "import { acquireGpu } from './targets/wgsl/device.ts';",
      `const g = await acquireGpu({ software: '${software}' });`,
      "console.log(JSON.stringify({ info: g.info, env: process.env.VK_ICD_FILENAMES ?? null }));",
      'g.release();',
    ].join('\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      env,
      encoding: 'utf8',
      timeout: 60_000, // a Dawn instance that kept Node alive would hit this
    });
    expect(r.error, r.stderr).toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    return { out: JSON.parse(r.stdout.trim().split('\n').pop()!), stderr: r.stderr };
  };

  test("software: 'only' sets VK_ICD_FILENAMES itself and gets SwiftShader", () => {
    const { out } = run('only');
    expect(out.info.architecture).toBe('swiftshader');
    expect(out.info.isSoftware).toBe(true);
    expect(out.env).toBe(icd);
  });

  test("software: 'auto' uses hardware if any, else SwiftShader with a note on stderr", () => {
    const { out, stderr } = run('auto');
    if (out.info.isSoftware) expect(stderr).toContain(SWIFTSHADER_NOTE);
    else expect(stderr).not.toContain(SWIFTSHADER_NOTE);
  });
});
