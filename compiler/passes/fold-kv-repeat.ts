/**
 * fold-kv-repeat: QRWKV6 projects k and v to KV heads and repeats each head H/KV times (like GQA). A
 * repeat of a projection's output is the projection by a weight whose rows are repeated the same way,
 * repeat(W·x) = W'·x, so the repeat becomes a weight transform (kernels/weights.ts) and the recurrence
 * reads ordinary [T, C] k and v. The cost: W' streams H/KV× the bytes of W (rwkvc inspect shows it).
 */
import type { Rule } from '../rewrite.ts';
import { is, onlyUser, r0 } from '../match.ts';
import { locsOf } from '../rewrite.ts';

export const foldKvRepeat: Rule = (n, ctx) => {
  if (!is(n, 'repeat')) return undefined;
  const mm = ctx.producer(n.inputs[0]);
  if (!is(mm, 'matmul') || mm.attrs.layout !== 'out_in' || onlyUser(ctx, r0(mm)) !== n) return undefined;
  const w = ctx.producer(mm.inputs[1]);
  if (!is(w, 'weight') || w.attrs.transpose || w.attrs.fold || w.attrs.repeat || w.attrs.shape.length !== 2) return undefined;
  const { group, times } = n.attrs;
  const [rows, cols] = w.attrs.shape;
  const wr = ctx.emit('weight', [], { ...w.attrs, shape: [rows * times, cols], stored: w.attrs.stored ?? w.attrs.shape, repeat: { group, times } }, w.loc)[0];
  const out = ctx.emit('matmul', [ctx.map(mm.inputs[0]), wr], mm.attrs, mm.loc, locsOf([mm, n]))[0];
  ctx.absorb([mm]);
  return [out];
};
