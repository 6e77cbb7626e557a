/**
 * What every target's runtime offers: a compiled plan with its weights loaded, executing one
 * program call at a time on explicit state. Chunking a long prompt, sampling and tokenisation live in
 * runtime/session.ts, above this interface, so each target only runs kernels.
 */
import type { KernelPlan, WeightDecl } from '../kernels/plan.ts';

/**
 * The f32 values of a plan weight, already transformed to the layout the plan declares. `rows`, when a
 * provider has it, gives rows [row0, row0 + rows) of a weight (its last dimension is a row) without making
 * the rest: runtimes convert large matrices piece by piece with it, so a load holds one piece at a time.
 */
export type WeightProvider = ((decl: WeightDecl) => Float32Array) & {
  rows?: (decl: WeightDecl, row0: number, rows: number) => Float32Array;
  /**
   * Bring a weight's bytes in before it is read (a browser File read with Blob.slice); awaited by runtimes
   * that load weight by weight. With `rows`, just what `rows(decl, row0, rows)` reads next.
   */
  prepare?: (decl: WeightDecl, rows?: { row0: number; rows: number }) => Promise<void>;
};

/** Rows of a weight from a provider: its `rows` when it has one, else the whole weight, sliced. */
export function weightRows(p: WeightProvider, decl: WeightDecl, row0: number, rows: number): Float32Array {
  if (p.rows) return p.rows(decl, row0, rows);
  const cols = decl.shape[decl.shape.length - 1]!;
  return p(decl).subarray(row0 * cols, (row0 + rows) * cols);
}

/** state.{l}.att_shift [C], state.{l}.wkv [H, N, N], state.{l}.ffn_shift [C] */
export type StateTensors = Record<string, Float32Array>;

export interface TargetModel {
  readonly target: string;
  /** The compiled plan it runs (absent for the unfused reference interpreter). */
  readonly plan?: KernelPlan;
  /** The most tokens one prefill call takes (the plan's chunk). */
  readonly maxTokens: number;
  /**
   * Feed tokens (1 ≤ T ≤ program.maxT) through the decode (T = 1) or prefill program, updating the
   * state; returns the logits the program's head computes ([T, V] or [1, V]), row-major.
   */
  run(program: 'decode' | 'prefill', tokens: Int32Array): Promise<Float32Array>;
  /**
   * Decode B independent sequences together (the plan's batch program, B ≤ its maxT): token b
   * continues sequence b from states[b]; returns logits [B, V] and each sequence's new state.
   */
  runBatch?(tokens: Int32Array, states: StateTensors[]): Promise<{ logits: Float32Array; states: StateTensors[] }>;
  readState(): Promise<StateTensors>;
  writeState(state: StateTensors): Promise<void>;
  dispose(): void;
}

export interface TargetOptions {
  threads?: number;
}

export type LoadTarget = (plan: KernelPlan, weights: WeightProvider, opts?: TargetOptions) => Promise<TargetModel>;
