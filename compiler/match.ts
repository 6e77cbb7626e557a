/** Small questions fusion rules ask of the old graph. */
import type { Node, NodeOf, OpName, Ref } from '../ir/node.ts';
import type { RewriteCtx } from './rewrite.ts';

export const r0 = (n: Node): Ref => ({ id: n.id, out: 0 });

export function is<K extends OpName>(n: Node | undefined, op: K): n is Extract<Node, { op: K }> {
  return !!n && n.op === op;
}
export const isUnary = (n: Node | undefined, fn?: string): n is NodeOf<'unary'> => is(n, 'unary') && (!fn || n.attrs.fn === fn);
export const isBinary = (n: Node | undefined, fn?: string): n is NodeOf<'binary'> => is(n, 'binary') && (!fn || n.attrs.fn === fn);

/** The only user of r (and r is not a graph output), else undefined. */
export function onlyUser(ctx: RewriteCtx, r: Ref): Node | undefined {
  const us = ctx.users(r);
  if (us.length !== 1) return undefined;
  if (ctx.isOutput(r)) return undefined;
  let uses = 0;
  for (const i of us[0].inputs) if (i.id === r.id && i.out === r.out) uses++;
  return uses === 1 ? us[0] : undefined;
}

/** For a binary node using `r`, the other operand. */
export function otherOperand(n: Node, r: Ref): Ref {
  return n.inputs[0].id === r.id && n.inputs[0].out === r.out ? n.inputs[1] : n.inputs[0];
}

/** A new weight node viewing an old one transposed in its last two axes (the kernel layout). */
export function transposedWeight(ctx: RewriteCtx, w: NodeOf<'weight'>): Ref {
  const s = w.attrs.shape;
  const shape = [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]];
  return ctx.emit('weight', [], { ...w.attrs, shape, stored: w.attrs.stored ?? s, transpose: !w.attrs.transpose }, w.loc)[0];
}
