/**
 * The memory layout of a compiled plan: where every state, activation and packed weight lives in
 * linear memory. Plain JSON, written beside the .wasm, so a runtime without the compiler can pack
 * weights and call the module.
 *
 *   [control block][state][per-program tokens/logits][program region: arena | kernel scratch]
 *   [packed weights] … static end … [thread 0 scratch][thread 1 scratch]…
 *
 * The two programs never run at the same time, so their activation regions overlap.
 */
import type { KernelPlan, WeightDType } from '../../kernels/plan.ts';

export interface PackedWeightLayout {
  /** Weight name, or `${name}#${s}` for slice s of a 3-D LoRA B. */
  key: string;
  weight: string;
  /**
   * panel: [ceil(O/16)][I][16] in `dtype` (see pack.ts); raw: dequantised f32, the plan's layout;
   * raw16: a bf16/f16 embedding table as stored, the plan's layout.
   */
  pack: 'panel' | 'raw' | 'raw16';
  dtype: WeightDType;
  /** panel only: first row of the slice in the [rows, I] matrix, and its shape. */
  row0?: number;
  O?: number;
  I?: number;
  offset: number;
  bytes: number;
}

export interface BufferLayout { name: string; offset: number; elems: number; width: number }

export interface ProgramLayout {
  maxT: number;
  buffers: BufferLayout[];
  tokens: string;
  logits: string;
  /** logits rows: one per token ('T' leading dim) or a single row. */
  logitsPerToken: boolean;
  /** Kernel name of each phase, in call order (profiling). */
  phases?: string[];
}

export interface WasmLayout {
  format: 'rwkvc-wasm';
  version: 1;
  plan: KernelPlan;
  /** Bytes before the per-thread scratch areas (a multiple of 64 KiB pages is not required). */
  staticBytes: number;
  threadScratchBytes: number;
  weights: PackedWeightLayout[];
  state: BufferLayout[];
  /** The batch program's state: each buffer [B, …], row b being sequence b's state. */
  batchState?: BufferLayout[];
  programs: { decode: ProgramLayout; prefill: ProgramLayout; batch?: ProgramLayout };
  /** Weight bytes a decode step reads (packed matrices, vectors, one embedding row). */
  decodeWeightBytes: number;
}

export const PAGE = 65536;
export const align = (n: number, a = 64) => Math.ceil(n / a) * a;

/** Total memory bytes for `threads` threads, and where thread `tid`'s scratch starts. */
export function memoryBytes(l: WasmLayout, threads: number): number {
  return align(l.staticBytes + threads * l.threadScratchBytes, PAGE);
}
export const threadScratch = (l: WasmLayout, tid: number) => l.staticBytes + tid * l.threadScratchBytes;
