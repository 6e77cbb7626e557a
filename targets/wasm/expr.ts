/**
 * The WASM target's expression printer: an elementwise Expr (a linear's prologue or epilogue, or an
 * internal epilogue such as the token-shift lerp) rendered as an f32x4 WAT expression over four adjacent
 * elements. The caller says what `acc`, `x` and each `load` mean at the current position.
 */
import { foldExpr, type OpName } from '../../kernels/expr.ts';
import type { Expr } from '../../kernels/plan.ts';
import { f4 } from './wat.ts';

export interface ExprScope {
  /** v128 WAT of the four dot products (epilogues). */
  acc?: string;
  /** v128 WAT of the four inputs (prologues). */
  x?: string;
  /** v128 WAT that loads `buf` at the current four positions. */
  load(buf: string): string;
}

/** Every operator of kernels/expr.ts OPS, as f32x4 WAT (the math functions are mathlib.ts's). */
const OP: Record<OpName, (a: string, b: string) => string> = {
  add: (a, b) => `(f32x4.add ${a} ${b})`,
  sub: (a, b) => `(f32x4.sub ${a} ${b})`,
  mul: (a, b) => `(f32x4.mul ${a} ${b})`,
  neg: (a) => `(f32x4.neg ${a})`,
  tanh: (a) => `(call $tanh ${a})`,
  exp: (a) => `(call $exp ${a})`,
  sigmoid: (a) => `(call $sigmoid ${a})`,
  silu: (a) => `(call $silu ${a})`,
  relu: (a) => `(f32x4.max ${a} ${f4(0)})`, // max propagates NaN, as Math.max does
  square: (a) => `(call $sq ${a})`,
};

export function printExpr(e: Expr, s: ExprScope): string {
  return foldExpr(e, (l) => {
    switch (l.op) {
      case 'acc':
        if (!s.acc) throw new Error("expression uses 'acc' outside an epilogue");
        return s.acc;
      case 'x':
        if (!s.x) throw new Error("expression uses 'x' outside a prologue");
        return s.x;
      case 'load': return s.load(l.buf);
      case 'const': return f4(l.value);
    }
  }, (op, [a, b]) => OP[op](a, b));
}
