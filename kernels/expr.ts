/**
 * The elementwise expression vocabulary (linear prologues and epilogues): one table of operators with
 * their arity and reference meaning, and the one tree walk everything else is built from. Every
 * target's printer covers exactly these operators (a test checks each printer against `OPS`).
 */
import type { Expr } from './plan.ts';

export type Leaf = Extract<Expr, { op: 'acc' | 'x' | 'load' | 'const' }>;
export type OpName = Exclude<Expr['op'], Leaf['op']>;

/** Each operator's arity and reference semantics (f64, as the interpreter computes). */
export const OPS: Record<OpName, { arity: 1 | 2; eval: (a: number, b: number) => number }> = {
  add: { arity: 2, eval: (a, b) => a + b },
  sub: { arity: 2, eval: (a, b) => a - b },
  mul: { arity: 2, eval: (a, b) => a * b },
  neg: { arity: 1, eval: (a) => -a },
  tanh: { arity: 1, eval: (a) => Math.tanh(a) },
  exp: { arity: 1, eval: (a) => Math.exp(a) },
  sigmoid: { arity: 1, eval: (a) => 1 / (1 + Math.exp(-a)) },
  silu: { arity: 1, eval: (a) => a / (1 + Math.exp(-a)) },
  relu: { arity: 1, eval: (a) => Math.max(a, 0) },
  square: { arity: 1, eval: (a) => a * a },
};

const isLeaf = (e: Expr): e is Leaf => !('args' in e);

/** Fold an expression bottom-up: `leaf` gives each leaf's value, `op` combines an operator's arguments. */
export function foldExpr<T>(e: Expr, leaf: (l: Leaf) => T, op: (name: OpName, args: T[]) => T): T {
  if (isLeaf(e)) return leaf(e);
  return op(e.op, e.args.map((a) => foldExpr(a, leaf, op)));
}

/** The same tree with each leaf replaced by `f(leaf)`. */
export function mapLeaves(e: Expr, f: (l: Leaf) => Expr): Expr {
  return foldExpr<Expr>(e, f, (op, args) => ({ op, args }) as Expr);
}

/** Buffers an expression loads, in first-use order. */
export function exprLoads(e: Expr | undefined): string[] {
  const out: string[] = [];
  if (e) mapLeaves(e, (l) => { if (l.op === 'load' && !out.includes(l.buf)) out.push(l.buf); return l; });
  return out;
}

/** The reference value of an expression: `acc`, `x` and each load at the current position. */
export function evalExpr(e: Expr, acc: number, x: number, at: (buf: string) => number): number {
  switch (e.op) {
    case 'acc': return acc;
    case 'x': return x;
    case 'load': return at(e.buf);
    case 'const': return e.value;
  }
  // no fold here: this runs per element in the reference kernels, so no arrays per node
  const a = evalExpr(e.args[0], acc, x, at);
  return OPS[e.op].eval(a, e.args.length > 1 ? evalExpr((e.args as [Expr, Expr])[1], acc, x, at) : 0);
}

/**
 * Replace each distinct load buffer by a slot ('#0', '#1', … in order of first use), so that an
 * expression's shape (what generated code depends on) is separate from the buffers it reads.
 */
export function normalizeExpr(e: Expr): { expr: Expr; loads: string[] } {
  const loads = exprLoads(e);
  return { expr: mapLeaves(e, (l) => (l.op === 'load' ? { op: 'load', buf: `#${loads.indexOf(l.buf)}` } : l)), loads };
}
