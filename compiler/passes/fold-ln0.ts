/**
 * fold-ln0: LayerNorm(embedding[token]) is the same as looking up rows of a table normalised once at
 * load time (in f32, as the official package does: bf16 would move logits by ~0.02).
 */
import type { Rule } from '../rewrite.ts';
import { is, onlyUser, r0 } from '../match.ts';

export const foldLn0: Rule = (n, ctx) => {
  if (!is(n, 'embed')) return undefined;
  const table = ctx.producer(n.inputs[1]);
  const ln = onlyUser(ctx, r0(n));
  if (!is(table, 'weight') || !is(ln, 'layernorm') || table.attrs.fold || table.attrs.transpose) return undefined;
  const [w, b] = [ctx.producer(ln.inputs[1]), ctx.producer(ln.inputs[2])];
  if (!is(w, 'weight') || !is(b, 'weight')) return undefined;
  const folded = ctx.emit('weight', [], { ...table.attrs, fold: { w: w.attrs.name, b: b.attrs.name, eps: ln.attrs.eps } }, table.loc)[0];
  const out = ctx.emit('embed', [ctx.map(n.inputs[0]), folded], {}, n.loc, [n.loc!, ln.loc!].filter(Boolean))[0];
  ctx.replace(r0(ln), out);
  return [];
};
