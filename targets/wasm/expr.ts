/**
 * The one expression printer: an elementwise Expr (a linear's prologue or epilogue, or an internal
 * epilogue such as the token-shift lerp) rendered as an f32x4 WAT expression over four adjacent
 * elements. The caller says what `acc`, `x` and each `load` mean at the current position.
 */
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

const UNARY: Record<string, (a: string) => string> = {
  neg: (a) => `(f32x4.neg ${a})`,
  tanh: (a) => `(call $tanh ${a})`,
  exp: (a) => `(call $exp ${a})`,
  sigmoid: (a) => `(call $sigmoid ${a})`,
  silu: (a) => `(call $silu ${a})`,
  relu: (a) => `(f32x4.max ${a} ${f4(0)})`, // max propagates NaN, as Math.max does
  square: (a) => `(call $sq ${a})`,
};
const BINARY: Record<string, string> = { add: 'f32x4.add', sub: 'f32x4.sub', mul: 'f32x4.mul' };

export function printExpr(e: Expr, s: ExprScope): string {
  switch (e.op) {
    case 'acc':
      if (!s.acc) throw new Error("expression uses 'acc' outside an epilogue");
      return s.acc;
    case 'x':
      if (!s.x) throw new Error("expression uses 'x' outside a prologue");
      return s.x;
    case 'load': return s.load(e.buf);
    case 'const': return f4(e.value);
    case 'add': case 'sub': case 'mul':
      return `(${BINARY[e.op]} ${printExpr(e.args[0], s)} ${printExpr(e.args[1], s)})`;
    default: {
      const f = UNARY[e.op];
      if (!f) throw new Error(`expression op '${(e as { op: string }).op}' has no WASM rendering`);
      return f(printExpr(e.args[0], s));
    }
  }
}

/** Buffers an expression loads, in first-use order. */
export function exprLoads(e: Expr | undefined, out: string[] = []): string[] {
  if (!e) return out;
  if (e.op === 'load') { if (!out.includes(e.buf)) out.push(e.buf); return out; }
  if ('args' in e) for (const a of e.args) exprLoads(a, out);
  return out;
}
