/**
 * canonicalize: commutative ops take the activation first and the constant/weight second, and
 * identities (x + 0, x − 0, x · 1) disappear, so later patterns have one form to match.
 * constant-fold: ops on constants only become constants.
 */
import type { Node, Ref } from '../../ir/node.ts';
import type { Rule, RewriteCtx } from '../rewrite.ts';

const isConstLike = (n: Node) => n.op === 'const' || n.op === 'weight';
const constValue = (ctx: RewriteCtx, r: Ref) => {
  const p = ctx.producer(r);
  return p.op === 'const' ? p.attrs.value : undefined;
};

export const canonicalize: Rule = (n, ctx) => {
  if (n.op !== 'binary') return undefined;
  const [a, b] = n.inputs;
  const { fn } = n.attrs;
  if (fn !== 'sub' && isConstLike(ctx.producer(a)) && !isConstLike(ctx.producer(b)))
    return ctx.emit('binary', [ctx.map(b), ctx.map(a)], { fn }, n.loc);
  const identity = fn === 'mul' ? 1 : 0;
  const same = (x: Ref, y: Ref) => ctx.producer(x).types[x.out].shape.length >= ctx.producer(y).types[y.out].shape.length;
  if (constValue(ctx, b) === identity && same(a, b)) return [ctx.map(a)];
  if (fn !== 'sub' && constValue(ctx, a) === identity && same(b, a)) return [ctx.map(b)];
  return undefined;
};

const fold: Record<string, (...x: number[]) => number> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b,
  neg: (x) => -x, tanh: Math.tanh, exp: Math.exp, sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  silu: (x) => x / (1 + Math.exp(-x)), relu: (x) => Math.max(x, 0), square: (x) => x * x,
};

export const constantFold: Rule = (n, ctx) => {
  if (n.op !== 'unary' && n.op !== 'binary') return undefined;
  const vals = n.inputs.map((r) => constValue(ctx, r));
  if (vals.some((v) => v === undefined)) return undefined;
  return ctx.emit('const', [], { value: fold[n.attrs.fn](...(vals as number[])) }, n.loc);
};
