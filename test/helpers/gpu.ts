/**
 * Small WebGPU helpers for tests. Browser-safe (no Node imports): pages served by test/helpers/browser.ts
 * import this file too, so Node (Dawn) and Chromium run the very same code.
 */
import { acquireGpu, type AcquiredGpu, type AcquireGpuOptions } from '../../targets/wgsl/device.ts';
import { UserError } from '../../kernels/errors.ts';

/** y[i] = a * x[i] + b: the smoke-test shader. */
export const SAXPY_WGSL = /* wgsl */ `
struct Params { a: f32, b: f32, n: u32, _pad: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i < params.n) {
    y[i] = params.a * x[i] + params.b;
  }
}
`;

/** What `getCompilationInfo()` reported, one `line:col type: message` per entry (empty when clean). */
export async function compilationMessages(module: GPUShaderModule): Promise<string[]> {
  const info = await module.getCompilationInfo();
  return [...info.messages].map((m) => `${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
}

export function uploadBuffer(device: GPUDevice, data: ArrayBufferView, usage: number): GPUBuffer {
  const size = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buffer = device.createBuffer({ size, usage: usage | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  return buffer;
}

/** Copy `byteLength` bytes of a (COPY_SRC) buffer back to the CPU. */
export async function readBuffer(device: GPUDevice, buffer: GPUBuffer, byteLength = buffer.size): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, 0, staging, 0, byteLength);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return out;
}

export interface SaxpyResult {
  y: Float32Array;
  /** getCompilationInfo() messages (should be empty). */
  messages: string[];
  /** Validation / out-of-memory / internal errors caught by error scopes (should be empty). */
  errors: string[];
}

/** Run SAXPY_WGSL on `x` and return y plus every diagnostic the implementation gave. */
export async function runSaxpy(device: GPUDevice, a: number, b: number, x: Float32Array): Promise<SaxpyResult> {
  const scopes: GPUErrorFilter[] = ['validation', 'out-of-memory', 'internal'];
  for (const f of scopes) device.pushErrorScope(f);
  const module = device.createShaderModule({ code: SAXPY_WGSL, label: 'saxpy' });
  const messages = await compilationMessages(module);
  const params = new ArrayBuffer(16);
  new Float32Array(params, 0, 2).set([a, b]);
  new Uint32Array(params, 8, 1)[0] = x.length;
  const paramBuf = uploadBuffer(device, new Uint8Array(params), GPUBufferUsage.UNIFORM);
  const xBuf = uploadBuffer(device, x, GPUBufferUsage.STORAGE);
  const yBuf = device.createBuffer({ size: x.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: paramBuf } },
      { binding: 1, resource: { buffer: xBuf } },
      { binding: 2, resource: { buffer: yBuf } },
    ],
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(x.length / 64));
  pass.end();
  device.queue.submit([enc.finish()]);
  const y = new Float32Array(await readBuffer(device, yBuf, x.byteLength));
  const errors: string[] = [];
  for (let i = scopes.length - 1; i >= 0; i--) {
    const e = await device.popErrorScope();
    if (e) errors.push(`${scopes[i]}: ${e.message}`);
  }
  for (const buf of [paramBuf, xBuf, yBuf]) buf.destroy();
  return { y, messages, errors };
}

const inCI = (): boolean => {
  const env = typeof process !== 'undefined' ? process.env : {};
  return !!env.CI && env.CI !== 'false' && env.CI !== '0';
};

/**
 * acquireGpu for a test file: the GPU, or (outside CI only) null plus a printed reason when this machine
 * has no WebGPU at all; in CI a missing GPU is an error, so GPU tests can never be skipped silently there.
 */
export async function acquireTestGpu(
  opts: AcquireGpuOptions = {},
): Promise<{ gpu: AcquiredGpu; skip: null } | { gpu: null; skip: string }> {
  try {
    return { gpu: await acquireGpu(opts), skip: null };
  } catch (e) {
    if (e instanceof UserError && !inCI()) {
      const skip = `no WebGPU adapter (${e.message}); skipping (CI is not set)`;
      console.warn(`[skip] ${skip}`);
      return { gpu: null, skip };
    }
    throw e;
  }
}
