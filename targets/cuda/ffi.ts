/**
 * The CUDA driver API through koffi: the few functions the CUDA runtime calls, with their C signatures,
 * each wrapped so that a failing call throws a CudaError naming the function and the driver's error.
 *
 * The same bindings load the real driver (`libcuda.so.1`) or the CPU emulator (targets/cuda/sim/: a
 * libcuda-shaped library with the kernels compiled in); `sim` is non-null for the latter and exposes its
 * byte counters. Device pointers are bigint; host data goes in and out as typed arrays.
 */
import { createRequire } from 'node:module';
import { UserError } from '../../kernels/errors.ts';

type Koffi = typeof import('koffi');
type KoffiLib = ReturnType<Koffi['load']>;
type Handle = unknown; // an opaque driver handle (a koffi pointer)

export type DevicePtr = bigint;

/** A failed driver call: the function, its CUresult and the driver's name for it. */
export class CudaError extends Error {
  constructor(readonly fn: string, readonly code: number, readonly codeName: string, detail: string) {
    super(`${fn}: ${codeName}${detail && detail !== codeName ? ` (${detail})` : ''}`);
    this.name = 'CudaError';
  }
}

/** CUdevice_attribute values used here. */
export const ATTR = {
  MAX_THREADS_PER_BLOCK: 1, MAX_SHARED_MEMORY_PER_BLOCK: 8, MULTIPROCESSOR_COUNT: 16, CLOCK_RATE: 13,
  MEMORY_CLOCK_RATE: 36, GLOBAL_MEMORY_BUS_WIDTH: 37, COMPUTE_CAPABILITY_MAJOR: 75, COMPUTE_CAPABILITY_MINOR: 76,
  MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 97,
} as const;
/** CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
export const FUNC_MAX_DYNAMIC_SHARED = 8;

/** One launch of a kernel: each argument's bytes, in order (kernelParams points at each). */
export interface LaunchArgs {
  grid: [number, number, number];
  block: [number, number, number];
  sharedBytes: number;
  args: Uint8Array[];
}

/** The emulator's extras (rwkvc_sim_* in libcuda_sim.cpp). */
export interface SimExtras {
  kernels(): string[];
  moduleImage(): string;
  lastError(clear?: boolean): string;
  /** Run blocks and a block's threads last to first (true) or first to last: results must not change. */
  order(reverse: boolean): void;
  /** Counting on/off; either zeroes the counters. */
  count(on: boolean): void;
  resetCounts(): void;
  /** Per-byte read and write counts of [p, p + n) since the last reset. */
  byteCounts(p: DevicePtr, n: number): { reads: Uint32Array; writes: Uint32Array };
  launches(): SimLaunch[];
}
export interface SimLaunch {
  kernel: string;
  grid: number[];
  block: number[];
  read: number;
  written: number;
  /** Bytes the launch wrote more than once. */
  rewritten: number;
}

export interface CudaDriver {
  readonly path: string;
  readonly sim: SimExtras | null;
  init(): void;
  deviceCount(): number;
  device(ordinal: number): number;
  deviceName(dev: number): string;
  totalMem(dev: number): number;
  attribute(dev: number, attr: number): number;
  /** The device's primary context, retained and made current. */
  retainContext(dev: number): Handle;
  releaseContext(dev: number): void;
  setCurrent(ctx: Handle | null): void;
  loadModule(image: string): Handle;
  unloadModule(mod: Handle): void;
  getFunction(mod: Handle, name: string): Handle;
  setFunctionAttribute(fn: Handle, attr: number, value: number): void;
  alloc(bytes: number): DevicePtr;
  free(p: DevicePtr): void;
  /** Host → device: `src` (all of it) to dst. Synchronous. */
  upload(dst: DevicePtr, src: ArrayBufferView): void;
  /** Device → host: fills `dst` from src. Synchronous. */
  download(dst: ArrayBufferView, src: DevicePtr): void;
  memset(dst: DevicePtr, value: number, bytes: number): void;
  createStream(): Handle;
  destroyStream(s: Handle): void;
  synchronize(s: Handle | null): void;
  launch(fn: Handle, l: LaunchArgs, stream: Handle | null): void;
  beginCapture(s: Handle): void;
  endCapture(s: Handle): Handle;
  instantiate(graph: Handle): Handle;
  graphLaunch(exec: Handle, s: Handle | null): void;
  destroyGraph(graph: Handle): void;
  destroyGraphExec(exec: Handle): void;
  /** Unload the library (after everything it made is released). */
  close(): void;
}

/** Kernel argument bytes: a device pointer, a u32. */
export function ptrArg(p: DevicePtr): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, p, true);
  return b;
}
export function u32Arg(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

let koffiModule: Koffi | null | undefined;
/** koffi, or null when it is not installed. */
export function loadKoffi(): Koffi | null {
  if (koffiModule === undefined) {
    try {
      koffiModule = createRequire(import.meta.url)('koffi') as Koffi;
    } catch {
      koffiModule = null;
    }
  }
  return koffiModule;
}

/** The driver library at `path` (default: the system's libcuda.so.1), bound. A missing library or koffi is a UserError. */
export function openDriver(path = 'libcuda.so.1'): CudaDriver {
  const koffi = loadKoffi();
  if (!koffi) throw new UserError('the CUDA target needs the koffi package (npm install koffi) to call the CUDA driver');
  let lib: KoffiLib;
  try {
    lib = koffi.load(path);
  } catch (e) {
    throw new UserError(`no CUDA driver: ${path} could not be loaded (${String((e as Error).message).split('\n')[0]})`);
  }
  return bind(koffi, lib, path);
}

let typesDeclared = false;

function bind(koffi: Koffi, lib: KoffiLib, path: string): CudaDriver {
  if (!typesDeclared) {
    for (const t of ['CUctx', 'CUmod', 'CUfunc', 'CUstream_', 'CUgraph_', 'CUgraphExec_']) koffi.opaque(t);
    typesDeclared = true;
  }
  const P = (t: string) => `${t} *`; // handle types are pointers to opaque structs
  const fns: Record<string, (...a: unknown[]) => unknown> = {};
  const decl = (name: string, ret: string, params: string) => {
    fns[name] = lib.func(`${ret} ${name}(${params})`) as (...a: unknown[]) => unknown;
  };
  decl('cuGetErrorName', 'int', 'int error, _Out_ const char **pStr');
  decl('cuGetErrorString', 'int', 'int error, _Out_ const char **pStr');
  decl('cuInit', 'int', 'unsigned int flags');
  decl('cuDeviceGetCount', 'int', '_Out_ int *count');
  decl('cuDeviceGet', 'int', '_Out_ int *device, int ordinal');
  decl('cuDeviceGetName', 'int', '_Out_ uint8_t *name, int len, int dev');
  decl('cuDeviceTotalMem_v2', 'int', '_Out_ size_t *bytes, int dev');
  decl('cuDeviceGetAttribute', 'int', '_Out_ int *pi, int attrib, int dev');
  decl('cuDevicePrimaryCtxRetain', 'int', `_Out_ ${P('CUctx')} *pctx, int dev`);
  decl('cuDevicePrimaryCtxRelease_v2', 'int', 'int dev');
  decl('cuCtxSetCurrent', 'int', `${P('CUctx')} ctx`);
  decl('cuModuleLoadData', 'int', `_Out_ ${P('CUmod')} *module, const char *image`);
  decl('cuModuleUnload', 'int', `${P('CUmod')} hmod`);
  decl('cuModuleGetFunction', 'int', `_Out_ ${P('CUfunc')} *hfunc, ${P('CUmod')} hmod, const char *name`);
  decl('cuFuncSetAttribute', 'int', `${P('CUfunc')} hfunc, int attrib, int value`);
  decl('cuMemAlloc_v2', 'int', '_Out_ uint64_t *dptr, size_t bytesize');
  decl('cuMemFree_v2', 'int', 'uint64_t dptr');
  decl('cuMemcpyHtoD_v2', 'int', 'uint64_t dstDevice, const void *srcHost, size_t ByteCount');
  decl('cuMemcpyDtoH_v2', 'int', 'void *dstHost, uint64_t srcDevice, size_t ByteCount');
  decl('cuMemsetD8_v2', 'int', 'uint64_t dstDevice, uint8_t uc, size_t N');
  decl('cuStreamCreate', 'int', `_Out_ ${P('CUstream_')} *phStream, unsigned int Flags`);
  decl('cuStreamDestroy_v2', 'int', `${P('CUstream_')} hStream`);
  decl('cuStreamSynchronize', 'int', `${P('CUstream_')} hStream`);
  decl('cuLaunchKernel', 'int',
    `${P('CUfunc')} f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, ` +
    'unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, ' +
    `${P('CUstream_')} hStream, void **kernelParams, void **extra`);
  decl('cuStreamBeginCapture_v2', 'int', `${P('CUstream_')} hStream, int mode`);
  decl('cuStreamEndCapture', 'int', `${P('CUstream_')} hStream, _Out_ ${P('CUgraph_')} *phGraph`);
  decl('cuGraphInstantiateWithFlags', 'int', `_Out_ ${P('CUgraphExec_')} *phGraphExec, ${P('CUgraph_')} hGraph, unsigned long long flags`);
  decl('cuGraphLaunch', 'int', `${P('CUgraphExec_')} hGraphExec, ${P('CUstream_')} hStream`);
  decl('cuGraphExecDestroy', 'int', `${P('CUgraphExec_')} hGraphExec`);
  decl('cuGraphDestroy', 'int', `${P('CUgraph_')} hGraph`);

  let sim: SimExtras | null = null;
  let simError: ((clear: number) => string) | null = null;
  try {
    lib.func('int rwkvc_sim_version()');
    sim = bindSim(lib);
    simError = lib.func('const char *rwkvc_sim_last_error(int clear)') as (clear: number) => string;
  } catch {
    sim = null; // the real driver
  }

  const errName = (code: number) => {
    const out: (string | null)[] = [null];
    return fns.cuGetErrorName(code, out) === 0 && out[0] ? out[0] : `CUresult ${code}`;
  };
  const errString = (code: number) => {
    const out: (string | null)[] = [null];
    return fns.cuGetErrorString(code, out) === 0 && out[0] ? out[0] : '';
  };
  const call = (name: string, ...args: unknown[]) => {
    const r = fns[name](...args) as number;
    if (r !== 0) {
      const detail = simError?.(0) || errString(r);
      throw new CudaError(name, r, errName(r), detail);
    }
  };
  const out1 = <T>(name: string, ...args: unknown[]): T => {
    const o: unknown[] = [null];
    call(name, o, ...args);
    return o[0] as T;
  };
  const view = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

  return {
    path,
    sim,
    init: () => call('cuInit', 0),
    deviceCount: () => out1<number>('cuDeviceGetCount'),
    device: (ordinal) => {
      const o = [0];
      call('cuDeviceGet', o, ordinal);
      return o[0];
    },
    deviceName(dev) {
      const buf = new Uint8Array(256);
      call('cuDeviceGetName', buf, buf.length, dev);
      const end = buf.indexOf(0);
      return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
    },
    totalMem: (dev) => Number(out1<number | bigint>('cuDeviceTotalMem_v2', dev)),
    attribute: (dev, attr) => {
      const o = [0];
      call('cuDeviceGetAttribute', o, attr, dev);
      return o[0];
    },
    retainContext(dev) {
      const ctx = out1<Handle>('cuDevicePrimaryCtxRetain', dev);
      call('cuCtxSetCurrent', ctx);
      return ctx;
    },
    releaseContext: (dev) => call('cuDevicePrimaryCtxRelease_v2', dev),
    setCurrent: (ctx) => call('cuCtxSetCurrent', ctx),
    loadModule: (image) => out1<Handle>('cuModuleLoadData', image),
    unloadModule: (mod) => call('cuModuleUnload', mod),
    getFunction: (mod, name) => out1<Handle>('cuModuleGetFunction', mod, name),
    setFunctionAttribute: (fn, attr, value) => call('cuFuncSetAttribute', fn, attr, value),
    alloc: (bytes) => BigInt(out1<number | bigint>('cuMemAlloc_v2', bytes)),
    free: (p) => call('cuMemFree_v2', p),
    upload: (dst, src) => call('cuMemcpyHtoD_v2', dst, view(src), src.byteLength),
    download: (dst, src) => call('cuMemcpyDtoH_v2', view(dst), src, dst.byteLength),
    memset: (dst, value, bytes) => call('cuMemsetD8_v2', dst, value, bytes),
    createStream: () => out1<Handle>('cuStreamCreate', 0),
    destroyStream: (s) => call('cuStreamDestroy_v2', s),
    synchronize: (s) => call('cuStreamSynchronize', s),
    launch: (fn, l, stream) =>
      call('cuLaunchKernel', fn, ...l.grid, ...l.block, l.sharedBytes, stream, l.args, null),
    beginCapture: (s) => call('cuStreamBeginCapture_v2', s, 2 /* CU_STREAM_CAPTURE_MODE_RELAXED */),
    endCapture(s) {
      const o: unknown[] = [null];
      call('cuStreamEndCapture', s, o);
      return o[0];
    },
    instantiate: (graph) => out1<Handle>('cuGraphInstantiateWithFlags', graph, 0),
    graphLaunch: (exec, s) => call('cuGraphLaunch', exec, s),
    destroyGraph: (g) => call('cuGraphDestroy', g),
    destroyGraphExec: (e) => call('cuGraphExecDestroy', e),
    close: () => lib.unload(),
  };
}

function bindSim(lib: KoffiLib): SimExtras {
  const f = (sig: string) => lib.func(sig) as (...a: unknown[]) => unknown;
  const kernels = f('const char *rwkvc_sim_kernels()');
  const image = f('const char *rwkvc_sim_module_image()');
  const lastError = f('const char *rwkvc_sim_last_error(int clear)');
  const count = f('void rwkvc_sim_count(int on)');
  const order = f('void rwkvc_sim_order(int reverse)');
  const reset = f('void rwkvc_sim_reset_counts()');
  const byteCounts = f('int rwkvc_sim_byte_counts(uint64_t p, size_t n, _Out_ uint32_t *reads, _Out_ uint32_t *writes)');
  const nLaunches = f('int rwkvc_sim_launches()');
  const launch = f('const char *rwkvc_sim_launch(int i, _Out_ uint64_t *out)');
  return {
    kernels: () => (kernels() as string).split('\n').filter(Boolean),
    moduleImage: () => image() as string,
    lastError: (clear = false) => lastError(clear ? 1 : 0) as string,
    count: (on) => void count(on ? 1 : 0),
    order: (reverse) => void order(reverse ? 1 : 0),
    resetCounts: () => void reset(),
    byteCounts(p, n) {
      const reads = new Uint32Array(n), writes = new Uint32Array(n);
      if (byteCounts(p, n, reads, writes) !== 0) throw new Error(`rwkvc_sim_byte_counts: [${p}, +${n}) is not one counted allocation`);
      return { reads, writes };
    },
    launches() {
      const out: SimLaunch[] = [];
      const n = nLaunches() as number;
      for (let i = 0; i < n; i++) {
        const v = new BigUint64Array(9);
        const kernel = launch(i, v) as string;
        const x = Array.from(v, Number);
        out.push({ kernel, grid: x.slice(0, 3), block: x.slice(3, 6), read: x[6], written: x[7], rewritten: x[8] });
      }
      return out;
    },
  };
}
