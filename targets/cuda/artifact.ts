/**
 * The CUDA target's artifact: one CUDA translation unit and a launch table, so that a runtime needs no
 * compiler (nor Handlebars, nor node:fs: this module is imported by the runtime).
 *
 * Files (`artifactFiles` / `openArtifact`):
 *   model.cu      the translation unit: a prelude of inline accessors, then one `extern "C" __global__`
 *                 function per distinct kernel key
 *   launch.json   everything else: the plan, functions, programs (launch steps), memory layout, weights
 *   sm_80.ptx     PTX for sm_80 when nvcc was present at compile time (the driver JITs it for any newer GPU);
 *                 any other `<arch>.ptx` is read back too
 *
 * Kernel ABI. Every function takes, in order:
 *   float* mem             the model's one f32 buffer (layout: tokens | logits | activation arena | state)
 *   P_<n> p                the step's parameter words by value: a struct of `paramBytes / 4` 4-byte fields
 *                          (u32 or f32), exactly the little-endian bytes of `LaunchStep.params`
 *   unsigned T             the number of tokens of this call (rows of the activations; sequences for batch)
 *   const uint8_t* w0 …    `weightArgs` device pointers, the buffers `artifact.weights[step.weights[i]]`
 * Tokens are stored in mem as f32 values (exact below 2^24), at `layout.tokens`.
 *
 * Grids. A launch's grid is a function of T, serialised as data: each dimension is
 *   value(T) = a + b · ceil(T / d)        ({ a, b, d }; b = 0 for a constant)
 * The block and the dynamic shared bytes are the function's, constant.
 *
 * Global memory. Kernels touch memory only through the accessors of the prelude (ld_f32/st_f32 on mem,
 * ldg_* on weights), defined under `#ifndef RWKVC_SIM`; the CPU emulator compiles the same text with
 * `-DRWKVC_SIM` and its own definitions (see PRELUDE_ACCESSORS), to count the bytes each kernel moves.
 */
import type { KernelPlan } from '../../kernels/plan.ts';
import type { WFormat } from '../gpu/formats.ts';
import type { MemLayoutJson } from '../gpu/lower.ts';

/** One grid dimension as a function of T: a + b · ceil(T / d). */
export interface GridDim {
  a: number;
  b: number;
  d: number;
}
export interface Grid {
  x: GridDim;
  y: GridDim;
  z: GridDim;
}

export interface CudaFunction {
  /** The `extern "C"` name in model.cu. */
  name: string;
  /** The kernel key it was rendered from (JSON): the same key always gives the same text. */
  key: string;
  /** Bytes of the parameter struct (4 per field; at least 4). */
  paramBytes: number;
  /** Parameter fields in order (names and types), for tools and the emulator's printouts. */
  paramFields: { name: string; type: 'u32' | 'f32' }[];
  /** Number of weight pointer arguments after T. */
  weightArgs: number;
  block: [number, number, number];
  /** Dynamic shared memory bytes (0 when a kernel uses static __shared__ only). */
  sharedBytes: number;
}

/** A device weight buffer (the same refs and encodings as the WGSL target: targets/gpu/formats.ts). */
export type CudaWeight =
  | { kind: 'rows'; weight: string; fmt: WFormat; row0: number; rows: number; cols: number; bytes: number }
  | { kind: 'pack'; parts: string[]; bytes: number };

export interface LaunchKernelStep {
  kind: 'launch';
  /** The plan kernel (with `[i]` when its groups were spread over several launches). */
  kernel: string;
  /** Index into `functions`. */
  fn: number;
  /** The parameter words (u32; f32 fields as their bit patterns). */
  params: number[];
  /** Indexes into `weights`, one per weight argument. */
  weights: number[];
  grid: Grid;
}

/** out[t, :] = table[tokens[t], :] gathered on the host (not emitted by the CUDA lowering today). */
export interface HostEmbedLaunchStep {
  kind: 'host_embed';
  kernel: string;
  /** Index into `weights` (a 'rows' weight: the whole table). */
  table: number;
  /** Element offset of the output in mem, and the row width. */
  out: number;
  cols: number;
}

export type LaunchStep = LaunchKernelStep | HostEmbedLaunchStep;

export interface CudaProgram {
  maxT: number;
  steps: LaunchStep[];
  /** Element offset in mem of each buffer the program declares. */
  offsets: Record<string, number>;
  /** The logits buffer: element offset and elements per row (null when the program has none). */
  output: { offset: number; cols: number; rows: 'T' | number } | null;
}

/** The memory layout (targets/gpu/lower.ts's MemLayout as plain JSON). */
export type CudaMemLayout = MemLayoutJson;

export interface CudaArtifact {
  format: 'rwkvc-cuda';
  version: 1;
  plan: KernelPlan;
  /** The translation unit (extern "C" kernels). */
  cu: string;
  functions: CudaFunction[];
  programs: { decode: CudaProgram; prefill: CudaProgram; batch?: CudaProgram };
  layout: CudaMemLayout;
  weights: CudaWeight[];
  /** PTX by arch ('sm_80'), when nvcc was present. */
  ptx?: Record<string, string>;
}

/** The accessors the prelude defines for the GPU and an emulator must define under RWKVC_SIM. */
export const PRELUDE_ACCESSORS = [
  'float ld_f32(const float* p)', // mem (coherent: mem is read and written by the same launch)
  'void st_f32(float* p, float v)',
  'float ldg_f32(const float* p)', // weights (read-only for the whole launch)
  'uint32_t ldg_u8(const void* p)', // one byte, zero-extended
  'uint32_t ldg_u16(const void* p)', // 2 bytes, 2-byte aligned, zero-extended
  'uint32_t ldg_u32(const void* p)',
  'uint2 ldg_u2(const void* p)', // 8 bytes, 8-byte aligned
  'uint4 ldg_u4(const void* p)', // 16 bytes, 16-byte aligned
] as const;

/** Evaluate a grid for T tokens. */
export function gridAt(g: Grid, T: number): [number, number, number] {
  const v = (d: GridDim) => d.a + d.b * Math.ceil(T / d.d);
  return [v(g.x), v(g.y), v(g.z)];
}

const dec = new TextDecoder();
const text = (v: Uint8Array | string) => (typeof v === 'string' ? v : dec.decode(v));

/** The artifact as files. */
export function artifactFiles(a: CudaArtifact): Record<string, string> {
  const { cu, ptx, ...rest } = a;
  const files: Record<string, string> = { 'model.cu': cu, 'launch.json': JSON.stringify(rest) };
  for (const [arch, code] of Object.entries(ptx ?? {})) files[`${arch}.ptx`] = code;
  return files;
}

/** An artifact back from its files (the inverse of artifactFiles). */
export function openArtifact(files: Record<string, Uint8Array | string>): CudaArtifact {
  const launch = files['launch.json'];
  const cu = files['model.cu'];
  if (launch === undefined || cu === undefined) throw new Error('a CUDA artifact needs model.cu and launch.json');
  const rest = JSON.parse(text(launch));
  if (rest.format !== 'rwkvc-cuda' || rest.version !== 1) throw new Error(`launch.json is not an rwkvc-cuda v1 artifact`);
  const ptx: Record<string, string> = {};
  for (const [path, v] of Object.entries(files)) {
    const m = /^(sm_\d+)\.ptx$/.exec(path);
    if (m) ptx[m[1]] = text(v);
  }
  return { ...rest, cu: text(cu), ...(Object.keys(ptx).length ? { ptx } : {}) };
}

/** Parameter words as little-endian bytes (what cuLaunchKernel's by-value struct argument points to). */
export function paramBytes(words: number[]): Uint8Array {
  const out = new Uint8Array(Math.max(4, words.length * 4));
  const dv = new DataView(out.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
  return out;
}
