/**
 * The KernelPlan: the contract between the compiler and every target. It is plain JSON (no classes,
 * no functions) so it can be written to disk, inspected, and loaded by a runtime that has no compiler.
 *
 * Conventions shared by every kernel kind:
 * - Activations are f32, row-major [T, width]; T is the number of tokens in this call (1 for decode).
 * - Weights named here are already in the layout a kernel reads: matrices are [out, in] (row o holds the
 *   weights that produce output o), so a matvec streams rows contiguously.
 * - State buffers are updated in place; nothing else aliases them.
 * - `src` lists the DSL source locations (file:line:col) of the IR nodes a kernel was fused from.
 */
import type { ModelConfig } from './config.ts';

export type Dim = number | 'T';
export type WeightDType = 'f32' | 'bf16' | 'f16' | 'int8' | 'q4_0' | 'q4_1';

export interface BufferDecl {
  name: string;
  dtype: 'f32' | 'i32';
  shape: Dim[];
  /** input: tokens; output: logits; state: carried between calls; activation: lives in the arena. */
  role: 'input' | 'output' | 'state' | 'activation';
  /** Activations only: byte offset in the activation arena (sized for maxT rows), from the memory plan. */
  offset?: number;
}

/**
 * Where a weight's values come from: a checkpoint tensor (official name, its stored shape), viewed
 * with its last two axes swapped when `transpose`, and for the embedding with blocks.0.ln0 folded in
 * (each row normalised in f32 at load time, as the official package does).
 */
export interface WeightSource {
  tensor: string;
  stored: number[];
  transpose?: boolean;
  fold?: { w: string; b: string; eps: number };
  /**
   * After the transforms above: the rows (first axis) taken in groups of `group`, each group repeated
   * `times` times (QRWKV6's k/v projections, whose heads the recurrence shares H/KV ways: repeat(W·x) = W'·x).
   */
  repeat?: { group: number; times: number };
}

export interface WeightDecl {
  name: string;
  shape: number[];
  /** Storage dtype chosen by the weights pass. int8: symmetric, one f32 scale per 32 consecutive inputs of a row;
   *  q4_0 / q4_1: ggml's 4-bit blocks of 32 (kernels/dtype.ts). */
  dtype: WeightDType;
  source: WeightSource;
}

/** Elementwise expression for linear prologues/epilogues. */
export type Expr =
  | { op: 'acc' } // the dot product of this output element (epilogue only)
  | { op: 'x' } // the input element x[t, i] (prologue only)
  | { op: 'load'; buf: string } // buf at the same position: [t, o] in an epilogue, [t, i] in a prologue
  | { op: 'const'; value: number }
  | { op: 'add' | 'sub' | 'mul'; args: [Expr, Expr] }
  | { op: 'neg' | 'tanh' | 'exp' | 'sigmoid' | 'silu' | 'relu' | 'square'; args: [Expr] };

interface KernelCommon {
  name: string;
  layer: number | null;
  src: string[];
}

/** out[t, :] = table[tokens[t], :] */
export interface EmbedKernel extends KernelCommon {
  kind: 'embed';
  tokens: string;
  table: string;
  out: string;
}

/**
 * Token shift + lerps (+ ddlerp LoRA), optionally with the LayerNorm that produces its input.
 *   a_t = LN(x_t) (or x_t when ln is null; RMSNorm x/sqrt(mean(x²) + eps) ⊙ w when ln.rms, b null);  prev_0 = shiftIn, prev_t = a_{t-1};  dx_t = prev_t − a_t
 *   lora:    xxx = a + dx⊙μ_x;  z = tanh(A·xxx) ∈ R^{S·D};  m_s[c] = Σ_d B[s, c, d]·z[s·D + d]
 *            out_s = a + dx⊙(mix_s + m_s)
 *   no lora: out_s = a + dx⊙mix_s
 *   shiftOut = a_{T−1}   (shiftOut may name the same buffer as shiftIn: read prev_0 before writing)
 * batch: the T rows are T independent sequences of one token each: prev_t = shiftIn[t], and
 *   shiftOut[t] = a_t (the shift state is [T, C]).
 */
export interface TokenShiftKernel extends KernelCommon {
  kind: 'token_shift';
  x: string;
  ln: { w: string; b: string | null; eps: number; rms?: boolean } | null;
  shiftIn: string;
  shiftOut: string;
  mix: string[]; // [C] each, one per output
  lora: { mu: string; a: string; b: string; dim: number } | null; // a: [S·D, C]; b: [S, C, D]
  outs: string[]; // [T, C] each
  batch?: boolean;
}

/**
 * Several independent projections in one launch:
 *   y[t, o] = epilogue(acc = Σ_i W[o, i] · prologue(x)[t, i])
 * rows 'last': only the last row of x is used and y has one row (the head when only the next token's
 * logits are wanted).
 */
export interface LinearGroup {
  x: string;
  w: string; // [out, in]
  y: string;
  prologue?: Expr;
  epilogue?: Expr;
}
export interface LinearKernel extends KernelCommon {
  kind: 'linear';
  rows: 'all' | 'last';
  groups: LinearGroup[];
}

/**
 * The fused recurrence, per head h (N = headSize, i key channel, j value channel), for t = 0..T−1:
 *   decay lora:   w_t[c] = exp(−exp(base[c] + Σ_d B[c, d]·z[t, d]))
 *   decay direct: w_t[c] = wIn[t, c]
 *   r ← r·rScale;  if kDecayScale: k ← k ⊙ (1 − w)
 *   read_first:   y[j] = Σ_i r[i]·(u[i]·k[i]·v[j] + S[i][j]);  S[i][j] ← w[i]·S[i][j] + k[i]·v[j]
 *   update_first: S[i][j] ← w[i]·S[i][j] + k[i]·v[j];  y[j] = Σ_i r[i]·S[i][j]
 *   norm:  y ← (y − mean_h(y)) / sqrt(var_h(y) + eps) ⊙ normW + normB   (over the head's N values)
 *   gate:  out = y ⊙ gate[t, c]
 * batch: the T rows are T independent sequences of one token each; row t reads and updates its own
 *   state, state[t] ([T, H, N, N]).
 */
export interface WkvKernel extends KernelCommon {
  kind: 'wkv';
  headSize: number;
  r: string;
  k: string;
  v: string;
  decay: { kind: 'lora'; z: string; b: string; base: string; dim: number } | { kind: 'direct'; w: string };
  u: string | null; // [C]
  order: 'read_first' | 'update_first';
  kDecayScale: boolean;
  rScale: number;
  state: string; // [H, N(key), N(value)], in place
  norm: { w: string; b: string; eps: number } | null;
  gate: string | null;
  out: string;
  batch?: boolean;
}

/**
 * out = LN(x) ⊙ w + b over the last axis; rows 'last' normalises only the last row (out has one row).
 * rms: RMSNorm instead, out = x / sqrt(mean(x²) + eps) ⊙ w, and b is null.
 */
export interface LayerNormKernel extends KernelCommon {
  kind: 'layernorm';
  rows: 'all' | 'last';
  x: string;
  w: string;
  b: string | null;
  rms?: boolean;
  eps: number;
  out: string;
}

export type Kernel = EmbedKernel | TokenShiftKernel | LinearKernel | WkvKernel | LayerNormKernel;

/**
 * One executable program: decode (maxT = 1), prefill (maxT = chunk), or batch (maxT = most
 * sequences decoded together, one token each, each with its own state rows).
 */
export interface Program {
  maxT: number;
  kernels: Kernel[];
  /** Every buffer the kernels name (inputs, outputs, state, activations with arena offsets). */
  buffers: BufferDecl[];
  activationPeakBytes: number;
}

export interface KernelPlan {
  format: 'rwkvc-plan';
  version: 1;
  model: string;
  config: ModelConfig;
  weights: WeightDecl[];
  decode: Program;
  prefill: Program;
  /** Present when compiled with a batch size: B independent sequences, state buffers [B, …]. */
  batch?: Program;
}
