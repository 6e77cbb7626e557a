/**
 * The CUDA driver bindings (targets/cuda/ffi.ts) against a fake libcuda built here: the CPU emulator's
 * driver (targets/cuda/sim/libcuda_sim.cpp) with a few hand-written kernels compiled in. Checks argument
 * marshalling both ways (handles, out-parameters, device pointers, host arrays with offsets, by-value
 * structs in kernelParams), the emulator's execution model (grids, blocks, barriers, shared memory,
 * shuffles, votes, f16/bf16), graphs, errors, and the byte counters the cuda-sim tests rely on.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { f16ToF32, f32ToBf16, f32ToF16 } from '../kernels/dtype.ts';
import { UserError } from '../kernels/errors.ts';
import { CudaError, loadKoffi, openDriver, ptrArg, u32Arg, type CudaDriver } from '../targets/cuda/ffi.ts';
import { buildSimLibrary, kernelNames, simUnavailable } from '../targets/cuda/sim/build.ts';
import { cudaDriver } from '../targets/cuda/runtime.ts';

const KERNELS = String.raw`
#ifndef RWKVC_SIM
#error "test kernels for the emulator"
#endif
struct P_axpy { uint32_t x; uint32_t y; float a; };
// mem[y + i] = a * w[i] + mem[x + i] for i < T; w read as 16-byte vectors; mem[0] = sum over block 0
extern "C" __global__ void __launch_bounds__(128) axpy(float* __restrict__ mem, const P_axpy p, unsigned T, const uint8_t* __restrict__ w0) {
  __shared__ float part[4];
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = 0.0f;
  if (i < T) {
    float w;
    if ((i & 3u) == 0u) {
      const uint4 q = ldg_u4(w0 + 4u * i);
      w = __uint_as_float(q.x);
    } else w = ldg_f32((const float*)w0 + i);
    v = p.a * w + ld_f32(mem + p.x + i);
    st_f32(mem + p.y + i, v);
  }
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31u) == 0u) part[threadIdx.x >> 5] = v;
  __syncthreads();
  if (blockIdx.x == 0 && threadIdx.x == 0) st_f32(mem, part[0] + part[1] + part[2] + part[3]);
}

struct P_ids { uint32_t out; };
// one record of 8 floats per thread: blockIdx, threadIdx (x, y, z), then shuffles and a ballot
extern "C" __global__ void ids(float* __restrict__ mem, const P_ids p, unsigned T) {
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned n = blockDim.x * blockDim.y * blockDim.z;
  float* r = mem + p.out + 8u * (b * n + t);
  const unsigned lane = t & 31u;
  st_f32(r + 0, (float)b);
  st_f32(r + 1, (float)threadIdx.x);
  st_f32(r + 2, (float)threadIdx.y);
  st_f32(r + 3, (float)threadIdx.z);
  st_f32(r + 4, (float)__shfl_down_sync(0xffffffffu, lane, 3));
  st_f32(r + 5, (float)__shfl_up_sync(0xffffffffu, lane, 5));
  st_f32(r + 6, (float)__shfl_sync(0xffffffffu, lane * 10u, 7, 16));
  st_f32(r + 7, (float)__popc(__ballot_sync(0xffffffffu, (lane & 1u) == 0u || T == 0u)));
}

// shared-memory reversal across warps: only right with a working __syncthreads
struct P_rev { uint32_t in; uint32_t out; };
extern "C" __global__ void rev(float* __restrict__ mem, const P_rev p, unsigned T) {
  __shared__ float s[256];
  s[threadIdx.x] = ld_f32(mem + p.in + threadIdx.x);
  __syncthreads();
  const float v = s[blockDim.x - 1u - threadIdx.x];
  __syncthreads();
  s[threadIdx.x] = v * 2.0f;
  __syncthreads();
  st_f32(mem + p.out + threadIdx.x, s[threadIdx.x]);
}

// f16 and bf16 round trips through the emulator's conversions
struct P_cvt { uint32_t in; uint32_t out; };
extern "C" __global__ void cvt(float* __restrict__ mem, const P_cvt p, unsigned T) {
  const unsigned i = threadIdx.x;
  if (i >= T) return;
  const float x = ld_f32(mem + p.in + i);
  st_f32(mem + p.out + 3u * i, (float)__half_as_ushort(__float2half_rn(x)));
  st_f32(mem + p.out + 3u * i + 1u, __half2float(__float2half_rn(x)));
  st_f32(mem + p.out + 3u * i + 2u, (float)__bfloat16_as_ushort(__float2bfloat16_rn(x)));
}

// every thread writes one word: the last to run wins (a race, on purpose)
extern "C" __global__ void last_writer(float* __restrict__ mem, const P_ids p, unsigned T) {
  st_f32(mem + p.out, (float)(blockIdx.x * blockDim.x + threadIdx.x));
}

// half a warp at __syncthreads, the other half at a shuffle that needs the first half
extern "C" __global__ void deadlock(float* __restrict__ mem, const P_ids p, unsigned T) {
  if (threadIdx.x < 16u) __syncthreads();
  else { float v = __shfl_xor_sync(0xffffffffu, 1.0f, 1); st_f32(mem + threadIdx.x, v); }
}
`;

const skip = !loadKoffi() ? 'koffi is not installed' : simUnavailable();
if (skip) console.log(`cuda-ffi tests skipped: ${skip}`);

const f32Bytes = (words: number[], floats: Record<number, number> = {}) => {
  const b = new Uint8Array(words.length * 4);
  const dv = new DataView(b.buffer);
  words.forEach((w, i) => (i in floats ? dv.setFloat32(i * 4, floats[i], true) : dv.setUint32(i * 4, w, true)));
  return b;
};

// The emulator's default (a block's threads as fibers) and its OS-thread build: the same results.
describe.skipIf(!!skip).each([['fibers', false], ['OS threads', true]] as const)('CUDA driver bindings against the fake libcuda (%s)', (_, threads) => {
  let d: CudaDriver;
  let library: string;
  beforeAll(async () => {
    ({ library } = await buildSimLibrary(KERNELS, { threads }));
    d = openDriver(library);
    d.init();
  }, 120_000);

  it('finds the kernels of a translation unit', () => {
    expect(kernelNames(KERNELS)).toEqual(['axpy', 'ids', 'rev', 'cvt', 'last_writer', 'deadlock']);
    expect(d.sim?.kernels()).toEqual(['axpy', 'ids', 'rev', 'cvt', 'last_writer', 'deadlock']);
  });

  it('device queries: out-parameters, strings, size_t', () => {
    expect(d.deviceCount()).toBe(1);
    const dev = d.device(0);
    expect(dev).toBe(0);
    expect(d.deviceName(dev)).toBe('rwkvc CUDA emulator (CPU)');
    expect(d.totalMem(dev)).toBe(4 * 2 ** 30);
    expect(d.attribute(dev, 75)).toBe(8);
    expect(d.attribute(dev, 1)).toBe(1024);
    expect(() => d.device(1)).toThrow(/cuDeviceGet: CUDA_ERROR_INVALID_DEVICE/);
    expect(() => d.attribute(dev, 9999)).toThrow(CudaError);
  });

  it('module image, functions, memory round trips with offsets', () => {
    d.retainContext(0);
    const mod = d.loadModule('.version 8.0\n.target sm_80\n// the PTX text');
    expect(d.sim!.moduleImage()).toBe('.version 8.0\n.target sm_80\n// the PTX text');
    expect(() => d.loadModule('not ptx')).toThrow(/CUDA_ERROR_INVALID_IMAGE/);
    expect(() => d.getFunction(mod, 'nope')).toThrow(/cuModuleGetFunction: CUDA_ERROR_NOT_FOUND/);
    d.getFunction(mod, 'axpy');
    const p = d.alloc(1000);
    expect(typeof p).toBe('bigint');
    expect(Number(p) % 256).toBe(0);
    const host = Float32Array.from({ length: 250 }, (_, i) => i * 0.5);
    d.upload(p, host);
    d.upload(p + 40n, Int32Array.from([7, 8, 9]).subarray(1)); // a view with an offset: bytes 40..47
    const back = new Float32Array(250);
    d.download(back, p);
    expect(new Int32Array(back.buffer, 40, 2)).toEqual(Int32Array.from([8, 9]));
    expect(back[9]).toBe(4.5);
    expect(back[12]).toBe(6);
    const part = new Float32Array(10);
    d.download(part.subarray(5), p + 400n); // into a view: elements 5..9 ← device floats 100..104
    expect(Array.from(part)).toEqual([0, 0, 0, 0, 0, 50, 50.5, 51, 51.5, 52]);
    d.memset(p, 0, 1000);
    d.download(back, p);
    expect(back.every((x) => x === 0)).toBe(true);
    expect(() => d.upload(p + 992n, new Float32Array(4))).toThrow(/cuMemcpyHtoD_v2: CUDA_ERROR_INVALID_VALUE/);
    d.free(p);
    expect(() => d.free(p)).toThrow(/cuMemFree_v2/);
  });

  it('launch: by-value struct, T, pointers; shuffles and shared memory; byte counts', () => {
    const mod = d.loadModule('.version 8.0');
    const fn = d.getFunction(mod, 'axpy');
    const s = d.createStream();
    const T = 300;
    const mem = d.alloc(4 * 1024), w = d.alloc(4 * 300);
    const m = new Float32Array(1024);
    for (let i = 0; i < T; i++) m[16 + i] = i;
    d.upload(mem, m);
    d.upload(w, Float32Array.from({ length: T }, (_, i) => 2 * i));
    d.sim!.count(true);
    d.launch(fn, { grid: [3, 1, 1], block: [128, 1, 1], sharedBytes: 0, args: [ptrArg(mem), f32Bytes([16, 400, 0], { 2: 0.5 }), u32Arg(T), ptrArg(w)] }, s);
    d.synchronize(s);
    const out = new Float32Array(1024);
    d.download(out, mem);
    for (let i = 0; i < T; i++) expect(out[400 + i]).toBe(2 * i);
    expect(out[0]).toBe(2 * (127 * 128) / 2); // block 0: Σ 2i, i < 128
    // Bytes: w read once each (a 16-byte load covers thread i's own 4 bytes plus 12 that threads i+1..i+3
    // read again as f32), mem[16..316) read once, mem[400..700) and mem[0] written once.
    const { reads, writes } = d.sim!.byteCounts(w, 4 * T);
    expect(reads.slice(0, 16)).toEqual(Uint32Array.from([1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]));
    expect(writes.every((x) => x === 0)).toBe(true);
    const mc = d.sim!.byteCounts(mem, 4 * 1024);
    expect(mc.reads.slice(64, 64 + 4 * T).every((x) => x === 1)).toBe(true);
    expect(mc.writes.slice(1600, 1600 + 4 * T).every((x) => x === 1)).toBe(true);
    const [rec] = d.sim!.launches();
    expect(rec).toEqual({ kernel: 'axpy', grid: [3, 1, 1], block: [128, 1, 1], read: 4 * T + (75 * 16 + 225 * 4), written: 4 * T + 4, rewritten: 0 });
    d.sim!.count(false);
    d.free(mem);
    d.free(w);
    d.destroyStream(s);
  });

  it('thread and block indices, shuffle variants, ballot (3-D grid and block)', () => {
    const fn = d.getFunction(d.loadModule('.version 8.0'), 'ids');
    const grid: [number, number, number] = [2, 2, 1], block: [number, number, number] = [16, 2, 2]; // 64 threads: 2 warps
    const n = 4 * 64 * 8;
    const mem = d.alloc(4 * n);
    d.launch(fn, { grid, block, sharedBytes: 0, args: [ptrArg(mem), u32Arg(0), u32Arg(1)] }, null);
    const out = new Float32Array(n);
    d.download(out, mem);
    for (let b = 0; b < 4; b++)
      for (let t = 0; t < 64; t++) {
        const r = Array.from(out.subarray(8 * (b * 64 + t), 8 * (b * 64 + t) + 8));
        const lane = t % 32;
        expect(r.slice(0, 4)).toEqual([b, t % 16, Math.floor(t / 16) % 2, Math.floor(t / 32)]);
        expect(r[4]).toBe(lane + 3 < 32 ? lane + 3 : lane); // down: own value past the end
        expect(r[5]).toBe(lane >= 5 ? lane - 5 : lane); // up: own value before the start
        expect(r[6]).toBe(((lane & 16) + 7) * 10); // indexed within 16-lane segments
        expect(r[7]).toBe(16); // even lanes of a full warp
      }
    d.free(mem);
  });

  it('__syncthreads orders shared-memory phases across warps', () => {
    const fn = d.getFunction(d.loadModule('.version 8.0'), 'rev');
    const mem = d.alloc(4 * 512);
    d.upload(mem, Float32Array.from({ length: 256 }, (_, i) => i));
    d.launch(fn, { grid: [1, 1, 1], block: [256, 1, 1], sharedBytes: 0, args: [ptrArg(mem), f32Bytes([0, 256]), u32Arg(0)] }, null);
    const out = new Float32Array(256);
    d.download(out, mem + 1024n);
    expect(Array.from(out)).toEqual(Array.from({ length: 256 }, (_, i) => 2 * (255 - i)));
    d.free(mem);
  });

  it('f16 and bf16 conversions round to nearest even, as kernels/dtype.ts', () => {
    const fn = d.getFunction(d.loadModule('.version 8.0'), 'cvt');
    const xs = Float32Array.from([0, -0, 1, -2.5, 65504, 65520, 1e-5, 6e-8, 3e-8, 1 / 3, -1e9, Infinity, 1.00048828125, 1.000732421875, 3.14159]);
    const mem = d.alloc(4 * 256);
    d.upload(mem, xs);
    d.launch(fn, { grid: [1, 1, 1], block: [32, 1, 1], sharedBytes: 0, args: [ptrArg(mem), f32Bytes([0, 32]), u32Arg(xs.length)] }, null);
    const out = new Float32Array(3 * xs.length);
    d.download(out, mem + 128n);
    xs.forEach((x, i) => {
      expect(out[3 * i], `f16 bits of ${x}`).toBe(f32ToF16(x));
      expect(out[3 * i + 1], `f16 value of ${x}`).toBe(f16ToF32(f32ToF16(x)));
      expect(out[3 * i + 2], `bf16 bits of ${x}`).toBe(f32ToBf16(x));
    });
    d.free(mem);
  });

  it('graphs: captured launches replay with their captured arguments', () => {
    const fn = d.getFunction(d.loadModule('.version 8.0'), 'axpy');
    const s = d.createStream();
    const mem = d.alloc(4 * 1024), w = d.alloc(4 * 64);
    d.memset(mem, 0, 4096);
    d.upload(w, new Float32Array(64).fill(1));
    const params = f32Bytes([16, 16, 0], { 2: 1 }); // mem[16 + i] += 1
    const T = u32Arg(64);
    d.beginCapture(s);
    d.launch(fn, { grid: [1, 1, 1], block: [128, 1, 1], sharedBytes: 0, args: [ptrArg(mem), params, T, ptrArg(w)] }, s);
    const g = d.endCapture(s);
    T.set(u32Arg(1)); // changed after capture: the graph keeps 64
    const exec = d.instantiate(g);
    const before = new Float32Array(1024);
    d.download(before, mem);
    expect(before[16]).toBe(0); // nothing ran during capture
    for (let r = 0; r < 3; r++) d.graphLaunch(exec, s);
    d.synchronize(s);
    const out = new Float32Array(1024);
    d.download(out, mem);
    expect(out[16]).toBe(3);
    expect(out[16 + 63]).toBe(3);
    expect(out[16 + 64]).toBe(0);
    d.destroyGraphExec(exec);
    d.destroyGraph(g);
    d.free(mem);
    d.free(w);
    d.destroyStream(s);
  });

  it('a kernel fault is a CudaError with the emulator\'s reason, sticky until cleared', () => {
    const mod = d.loadModule('.version 8.0');
    const fn = d.getFunction(mod, 'axpy');
    const mem = d.alloc(4 * 64), w = d.alloc(64);
    expect(() => d.launch(fn, { grid: [1, 1, 1], block: [128, 1, 1], sharedBytes: 0, args: [ptrArg(mem), f32Bytes([0, 0, 0]), u32Arg(100), ptrArg(w)] }, null))
      .toThrow(/cuLaunchKernel: CUDA_ERROR_LAUNCH_FAILED \(\d+-byte load at 0x[0-9a-f]+ outside every allocation.*kernel axpy/);
    expect(() => d.synchronize(null)).toThrow(/CUDA_ERROR_LAUNCH_FAILED/);
    expect(d.sim!.lastError(true)).toMatch(/outside every allocation/);
    d.synchronize(null);
    const dl = d.getFunction(mod, 'deadlock');
    expect(() => d.launch(dl, { grid: [1, 1, 1], block: [32, 1, 1], sharedBytes: 0, args: [ptrArg(mem), u32Arg(0), u32Arg(0)] }, null))
      .toThrow(/deadlock in block 0,0,0/);
    d.sim!.lastError(true);
    expect(() => d.launch(fn, { grid: [1, 1, 1], block: [2048, 1, 1], sharedBytes: 0, args: [ptrArg(mem), f32Bytes([0, 0, 0]), u32Arg(0), ptrArg(w)] }, null))
      .toThrow(/CUDA_ERROR_INVALID_VALUE/);
    d.free(mem);
    d.free(w);
  });

  it.skipIf(threads)('fibers run blocks and threads in order, or reversed (rwkvc_sim_order)', () => {
    const fn = d.getFunction(d.loadModule('.version 8.0'), 'last_writer');
    const mem = d.alloc(64);
    const out = new Float32Array(1);
    for (const [reverse, want] of [[false, 3 * 64 - 1], [true, 0], [false, 3 * 64 - 1]] as const) {
      d.sim!.order(reverse);
      d.launch(fn, { grid: [3, 1, 1], block: [64, 1, 1], sharedBytes: 0, args: [ptrArg(mem), u32Arg(0), u32Arg(0)] }, null);
      d.download(out, mem);
      expect(out[0], reverse ? 'reversed' : 'in order').toBe(want);
    }
    d.free(mem);
  });

  it('a driver without a GPU: the runtime says so in one UserError line', () => {
    process.env.RWKVC_SIM_NO_DEVICE = '1';
    try {
      expect(() => openDriver(library).init()).toThrow(/cuInit: CUDA_ERROR_NO_DEVICE/);
      expect(() => cudaDriver(library)).toThrow(UserError);
      expect(() => cudaDriver(library)).toThrow(/^no CUDA GPU: cuInit: CUDA_ERROR_NO_DEVICE \(no CUDA-capable device is detected\)$/);
    } finally {
      delete process.env.RWKVC_SIM_NO_DEVICE;
    }
    expect(cudaDriver(library).deviceCount()).toBe(1);
  });

  it('a missing driver library is one UserError line naming it', () => {
    let err: unknown;
    try {
      openDriver('/nonexistent/libcuda.so.1');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/^no CUDA driver: \/nonexistent\/libcuda\.so\.1 could not be loaded/);
    expect((err as Error).message).not.toContain('\n');
  });
});
