/**
 * The IR: one node type, a discriminated union on `op`. A node's inputs are references to results of
 * earlier nodes (a node can have several results, like the recurrence's output and final state).
 * Nodes are plain immutable data; their DSL source location travels beside them.
 */
import type { Expr, WeightDType } from '../kernels/plan.ts';
import type { DType, Shape, SrcLoc, TensorType } from './types.ts';

/** Result `out` of node `id`. */
export interface Ref {
  readonly id: number;
  readonly out: number;
}

export type UnaryOp = 'neg' | 'tanh' | 'exp' | 'sigmoid' | 'silu' | 'relu' | 'square';
export type BinaryOp = 'add' | 'sub' | 'mul';

/** Attributes of the recurrence family (RWKV6.md §2 and §5): Finch and QRWKV6 are the same op. */
export interface WkvAttrs {
  headSize: number;
  /** Finch: y reads S before the update and adds the bonus u; QRWKV6: update first, no bonus. */
  order: 'read_first' | 'update_first';
  bonus: boolean;
  /** QRWKV6: k ← k ⊙ (1 − w). */
  kDecayScale: boolean;
  /** QRWKV6: r ← r·N^-½. */
  rScale: number;
}

/**
 * A checkpoint tensor viewed with `shape`. `stored` is its shape in the file when it differs (a [1,1,C]
 * vector); the weights pass adds `transpose` (kernel layout), `fold` (ln0 into the embedding) and
 * `storage` (the dtype a target keeps it in).
 */
export interface WeightAttrs {
  name: string;
  shape: readonly number[];
  stored?: readonly number[];
  transpose?: boolean;
  fold?: { w: string; b: string; eps: number };
  /** Rows repeated in groups (QRWKV6's k/v projections with their head repeat folded in): kernels/plan.ts WeightSource. */
  repeat?: { group: number; times: number };
  storage?: WeightDType;
}

export type NodeAttrs = {
  input: { name: string; role: 'tokens' | 'state'; dtype: DType; shape: Shape };
  /** A checkpoint tensor; `stored` is its shape in the file when it differs from the view (e.g. [1,1,C]). */
  weight: WeightAttrs;
  const: { value: number };
  embed: Record<string, never>;
  layernorm: { eps: number };
  /** x / sqrt(mean(x²) + eps) ⊙ w over the last axis (no mean subtraction, no bias): QRWKV6, Qwen2. */
  rmsnorm: { eps: number };
  groupnorm: { groups: number; eps: number };
  /** x [T, in] times a matrix stored [out, in] (nn.Linear) or [in, out] (LoRA factors). */
  matmul: { layout: 'out_in' | 'in_out' };
  unary: { fn: UnaryOp };
  binary: { fn: BinaryOp };
  /** Rows moved down by one; row 0 comes from `prev` (the shift state). */
  shift: Record<string, never>;
  /** The last row: the new shift state. */
  last: Record<string, never>;
  /** [start, start + size) of the last axis. */
  slice: { start: number; size: number };
  /** Row i of the first axis (of a weight: one LoRA factor of a stack). */
  index: { i: number };
  /** Repeat groups of the last axis (QRWKV6 k/v heads shared across query heads). */
  repeat: { group: number; times: number };
  wkv: WkvAttrs;
  // ── fused ops, made by compiler passes; each lowers to one kernel kind of kernels/plan.ts ──
  token_shift: { eps: number | null; nMix: number; loraDim: number; rms?: boolean };
  /** Inputs per group: x, W [out, in], then `extra` buffers an Expr loads as {op:'load', buf:'0'}, '1', … */
  linear: { groups: { epilogue?: Expr; prologue?: Expr; extra: number }[]; rows: 'all' | 'last' };
  wkv_fused: WkvAttrs & { decay: 'lora' | 'direct'; loraDim: number; norm: { eps: number } | null; gate: boolean };
};
export type OpName = keyof NodeAttrs;

export interface NodeOf<K extends OpName> {
  readonly id: number;
  readonly op: K;
  readonly inputs: readonly Ref[];
  readonly attrs: NodeAttrs[K];
  readonly types: readonly TensorType[];
  readonly loc?: SrcLoc;
  /** Locations of the nodes a fused node was made from. */
  readonly fusedFrom?: readonly SrcLoc[];
}
export type Node = { [K in OpName]: NodeOf<K> }[OpName];

export interface GraphOutput {
  readonly name: string;
  readonly ref: Ref;
}

/** An immutable graph: nodes in topological order (inputs always precede users), named outputs. */
export interface Graph {
  readonly name: string;
  readonly nodes: readonly Node[];
  readonly outputs: readonly GraphOutput[];
}

export const refKey = (r: Ref): string => `${r.id}.${r.out}`;
