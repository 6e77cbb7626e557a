/**
 * The one WGSL printer for elementwise expressions (linear prologues and epilogues).
 *
 * An expression becomes a list of `let` statements, one per operator node, and a final value, so a
 * shared operand (silu's input, square's argument) is computed once and the text grows linearly with the
 * tree. Leaves are supplied by the kernel: `acc` and `x` name WGSL values, `load` slot k a memory read.
 */
import type { Expr } from '../../kernels/plan.ts';

/** Helper functions an expression may call; a shader emits only the ones it uses. */
export const EXPR_HELPERS: Record<string, string> = {
  // WGSL's tanh is only as accurate as sinh/cosh (and overflows to NaN on some drivers for |x| > ~44);
  // this form never overflows, is odd by construction, and is within ~1e-7 absolute of tanh.
  tanh_f32: `fn tanh_f32(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}`,
};

export interface Leaves {
  acc?: string;
  x?: string;
  load(slot: number): string;
}

export interface Printed {
  lines: string[];
  value: string;
  helpers: string[];
}

/** A WGSL f32 literal for `v` (rounded to f32 first; non-finite values as bit patterns). */
export function f32Literal(v: number): string {
  const f = Math.fround(v);
  if (Number.isNaN(f)) return 'bitcast<f32>(0x7fc00000u)';
  if (f === Infinity) return 'bitcast<f32>(0x7f800000u)';
  if (f === -Infinity) return 'bitcast<f32>(0xff800000u)';
  const text = `${String(Math.abs(f))}f`; // JS prints the shortest decimal that reads back as f
  return f < 0 || Object.is(f, -0) ? `(-${text})` : text;
}

/**
 * Replace each distinct `load` buffer name by a slot ('#0', '#1', ... in order of first use), so that
 * the expression's shape (what a shader's text depends on) is separate from the buffers it reads.
 */
export function normalizeExpr(e: Expr): { expr: Expr; loads: string[] } {
  const loads: string[] = [];
  const walk = (n: Expr): Expr => {
    if (n.op === 'load') {
      let k = loads.indexOf(n.buf);
      if (k < 0) k = loads.push(n.buf) - 1;
      return { op: 'load', buf: `#${k}` };
    }
    if ('args' in n) return { ...n, args: n.args.map(walk) } as Expr;
    return n;
  };
  return { expr: walk(e), loads };
}

/** Print a (normalized) expression; `prefix` keeps the `let` names of two expressions apart. */
export function printExpr(e: Expr, leaves: Leaves, prefix: string): Printed {
  const lines: string[] = [];
  const helpers = new Set<string>();
  let n = 0;
  const bind = (text: string): string => {
    const name = `${prefix}${n++}`;
    lines.push(`let ${name} = ${text};`);
    return name;
  };
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
      case 'const': return f32Literal(node.value);
      case 'add': return bind(`${go(node.args[0])} + ${go(node.args[1])}`);
      case 'sub': return bind(`${go(node.args[0])} - ${go(node.args[1])}`);
      case 'mul': return bind(`${go(node.args[0])} * ${go(node.args[1])}`);
      case 'neg': return bind(`-${go(node.args[0])}`);
      case 'exp': return bind(`exp(${go(node.args[0])})`);
      case 'tanh': helpers.add('tanh_f32'); return bind(`tanh_f32(${go(node.args[0])})`);
      // exp(-a) overflows to +inf for very negative a: 1/(1+inf) = 0 and a/(1+inf) = -0, as in f64.
      case 'sigmoid': return bind(`1.0 / (1.0 + exp(-${go(node.args[0])}))`);
      case 'silu': { const a = go(node.args[0]); return bind(`${a} / (1.0 + exp(-${a}))`); }
      case 'relu': return bind(`max(${go(node.args[0])}, 0.0)`);
      case 'square': { const a = go(node.args[0]); return bind(`${a} * ${a}`); }
    }
  };
  const value = go(e);
  return { lines, value, helpers: [...helpers] };
}
