/**
 * The one C-style printer for the GPU targets: elementwise expressions (linear prologues and
 * epilogues) and the few statements templates need, driven by a small dialect table. WGSL and CUDA
 * are two tables (targets/wgsl/dialect.ts, targets/cuda/dialect.ts); everything else is shared.
 *
 * An expression becomes a list of bindings, one per operator node, and a final value, so a shared
 * operand (silu's input, square's argument) is computed once and the text grows linearly with the tree.
 * Leaves are supplied by the kernel: `acc` and `x` name values, `load` slot k a memory read.
 */
import { OPS, type OpName } from '../../kernels/expr.ts';
import type { Expr } from '../../kernels/plan.ts';

export interface Dialect {
  name: string;
  /** The f32 and u32 scalar types. */
  f32: string;
  u32: string;
  /** An immutable local: `let n = v;` / `const float n = v;`. */
  bind(name: string, value: string): string;
  /** A finite f32 literal from JS's shortest decimal text (e.g. '1', '1e-5', '0.25'). */
  literal(text: string): string;
  /** A non-finite f32 from its bit pattern (hex digits). */
  bits(hex: string): string;
  /** Calls for the operators a dialect spells as functions. */
  exp(a: string): string;
  /** max(a, 0) that keeps NaN (as Math.max does). */
  relu(a: string): string;
  /** Helper functions (by name) an expression may call, and their text; a kernel emits those it uses. */
  helpers: Record<string, string>;
  /** tanh, through a helper of `helpers`. */
  tanh: { helper: string; call(a: string): string };
  /** Statements and declarations templates use. */
  barrier: string;
  sharedArray(name: string, elem: string, length: number): string;
}

export interface Leaves {
  acc?: string;
  x?: string;
  load(slot: number): string;
}

export interface Printed {
  lines: string[];
  value: string;
  /** Names of the dialect's helpers the expression calls. */
  helpers: string[];
}

/** An f32 literal for `v` (rounded to f32 first; non-finite values by their bit patterns). */
export function f32Literal(d: Dialect, v: number): string {
  const f = Math.fround(v);
  if (Number.isNaN(f)) return d.bits('7fc00000');
  if (f === Infinity) return d.bits('7f800000');
  if (f === -Infinity) return d.bits('ff800000');
  const text = d.literal(String(Math.abs(f))); // JS prints the shortest decimal that reads back as f
  return f < 0 || Object.is(f, -0) ? `(-${text})` : text;
}

/** How each operator prints, given its (already bound) argument values. */
const PRINT: Record<OpName, (d: Dialect, a: string, b: string, use: (h: string) => void) => string> = {
  add: (_, a, b) => `${a} + ${b}`,
  sub: (_, a, b) => `${a} - ${b}`,
  mul: (_, a, b) => `${a} * ${b}`,
  neg: (_, a) => `-${a}`,
  exp: (d, a) => d.exp(a),
  tanh: (d, a, _b, use) => { use(d.tanh.helper); return d.tanh.call(a); },
  // exp(-a) overflows to +inf for very negative a: 1/(1+inf) = 0 and a/(1+inf) = -0, as in f64.
  sigmoid: (d, a) => `${f32Literal(d, 1)} / (${f32Literal(d, 1)} + ${d.exp(`-${a}`)})`,
  silu: (d, a) => `${a} / (${f32Literal(d, 1)} + ${d.exp(`-${a}`)})`,
  relu: (d, a) => d.relu(a),
  square: (_, a) => `${a} * ${a}`,
};

/** Print a normalized expression (loads as '#k' slots); `prefix` keeps two expressions' names apart. */
export function printExpr(d: Dialect, e: Expr, leaves: Leaves, prefix: string): Printed {
  const lines: string[] = [];
  const helpers = new Set<string>();
  let n = 0;
  const go = (node: Expr): string => {
    switch (node.op) {
      case 'acc':
        if (leaves.acc === undefined) throw new Error('acc is only defined in an epilogue');
        return leaves.acc;
      case 'x':
        if (leaves.x === undefined) throw new Error('x is only defined in a prologue');
        return leaves.x;
      case 'load': {
        const slot = Number(node.buf.slice(1));
        if (!node.buf.startsWith('#') || !Number.isInteger(slot)) throw new Error(`load of '${node.buf}' was not normalized`);
        return leaves.load(slot);
      }
      case 'const': return f32Literal(d, node.value);
    }
    if (!(node.op in OPS)) throw new Error(`expression op '${node.op}' has no ${d.name} rendering`);
    const [a, b] = node.args.map(go);
    const name = `${prefix}${n++}`;
    lines.push(d.bind(name, PRINT[node.op](d, a, b, (h) => helpers.add(h))));
    return name;
  };
  const value = go(e);
  return { lines, value, helpers: [...helpers] };
}
