// Real WGSL in headless Chromium (WebGPU on SwiftShader), pages served from 127.0.0.1. CI installs chromium,
// so there this must run; elsewhere it skips, saying why, only when Chromium is absent.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { browserSkipReason, launchChromium, openPage, startStaticServer, type StaticServer } from './helpers/browser.ts';
import { SAXPY_WGSL } from './helpers/gpu.ts';

const skip = browserSkipReason();

const N = 1000;
const A = 1.5;
const B = -2.25;

// Plain navigator.gpu, nothing from the repository: checks the browser setup itself.
const rawPage = `<!doctype html><meta charset="utf-8"><title>webgpu smoke</title>
<script type="module">
window.result = (async () => {
  if (!navigator.gpu) return { error: 'navigator.gpu is missing' };
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { error: 'requestAdapter() gave null' };
  const device = await adapter.requestDevice();
  const module = device.createShaderModule({ code: ${JSON.stringify(SAXPY_WGSL)} });
  const messages = (await module.getCompilationInfo()).messages.map((m) => m.type + ': ' + m.message);
  const n = ${N};
  const x = new Float32Array(n).map((_, i) => Math.sin(i) * 100);
  const params = new ArrayBuffer(16);
  new Float32Array(params, 0, 2).set([${A}, ${B}]);
  new Uint32Array(params, 8, 1)[0] = n;
  const buf = (size, usage) => device.createBuffer({ size, usage });
  const paramBuf = buf(16, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  const xBuf = buf(n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  const yBuf = buf(n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const readBuf = buf(n * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  device.queue.writeBuffer(paramBuf, 0, params);
  device.queue.writeBuffer(xBuf, 0, x);
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [
    { binding: 0, resource: { buffer: paramBuf } },
    { binding: 1, resource: { buffer: xBuf } },
    { binding: 2, resource: { buffer: yBuf } },
  ] });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(n / 64));
  pass.end();
  enc.copyBufferToBuffer(yBuf, 0, readBuf, 0, n * 4);
  device.queue.submit([enc.finish()]);
  await readBuf.mapAsync(GPUMapMode.READ);
  const y = Array.from(new Float32Array(readBuf.getMappedRange()));
  readBuf.unmap();
  const i = adapter.info;
  return { x: Array.from(x), y, messages, adapter: { vendor: i.vendor, architecture: i.architecture } };
})().catch((e) => ({ error: String(e && e.stack || e) }));
</script>`;

// The repository's own code in the browser: acquireGpu (navigator.gpu path) and the shared test helper,
// served as transpiled TypeScript.
const modulePage = `<!doctype html><meta charset="utf-8"><title>acquireGpu in the browser</title>
<script type="module">
import { runSaxpy } from '/test/helpers/gpu.ts';
import { acquireGpu } from '/targets/wgsl/device.ts';
window.result = (async () => {
  const gpu = await acquireGpu();
  const x = new Float32Array(${N}).map((_, i) => Math.sin(i) * 100);
  const { y, messages, errors } = await runSaxpy(gpu.device, ${A}, ${B}, x);
  const out = { x: Array.from(x), y: Array.from(y), messages, errors, info: gpu.info, limits: gpu.limits, hasF16: gpu.hasF16 };
  gpu.release();
  return out;
})().catch((e) => ({ error: String(e && e.stack || e) }));
</script>`;

function expectSaxpy(x: number[], y: number[]): void {
  expect(y).toHaveLength(N);
  for (let i = 0; i < N; i++) expect(y[i]).toBeCloseTo(Math.fround(A * x[i]! + B), 4);
}

describe.skipIf(!!skip)(`WebGPU in headless Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: StaticServer;
  let browser: Browser;

  beforeAll(async () => {
    server = await startStaticServer({ pages: { '/raw.html': rawPage, '/module.html': modulePage } });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('a WGSL compute shader via navigator.gpu', async () => {
    const { page, log } = await openPage(browser, `${server.url}/raw.html`);
    const result = await page.evaluate(() => (window as unknown as { result: Promise<unknown> }).result);
    const r = result as { error?: string; x: number[]; y: number[]; messages: string[]; adapter: object };
    expect(r.error, log.lines.join('\n')).toBeUndefined();
    console.log(`chromium adapter: ${JSON.stringify(r.adapter)}`);
    expect(r.messages).toEqual([]);
    expectSaxpy(r.x, r.y);
    await page.close();
  });

  test('acquireGpu and runSaxpy from the repository, in the browser', async () => {
    const { page, log } = await openPage(browser, `${server.url}/module.html`);
    const result = await page.evaluate(() => (window as unknown as { result: Promise<unknown> }).result);
    const r = result as {
      error?: string;
      x: number[];
      y: number[];
      messages: string[];
      errors: string[];
      info: { host: string; isSoftware: boolean; architecture: string };
      limits: Record<string, number>;
      hasF16: boolean;
    };
    expect(r.error, log.lines.join('\n')).toBeUndefined();
    console.log(`chromium acquireGpu: ${JSON.stringify(r.info)} hasF16=${r.hasF16}`);
    console.log(`chromium limits: ${JSON.stringify(r.limits)}`);
    expect(r.info.host).toBe('navigator');
    expect(r.info.isSoftware).toBe(true); // pinned to SwiftShader by launchChromium
    expect(r.messages).toEqual([]);
    expect(r.errors).toEqual([]);
    expectSaxpy(r.x, r.y);
    expect(server.requests).toContain('/targets/wgsl/device.ts');
    await page.close();
  });
});
