/**
 * fuse-wkv: the decay w = exp(−exp(base + z·B)), the recurrence (with its bonus), the GroupNorm of
 * its output and the gate multiply become one wkv_fused node (kernels/plan.ts WkvKernel). The LoRA's
 * first half, z = tanh(x_w·A), stays a matmul (it batches with the r/k/v/g projections).
 */
import type { Node, Ref } from '../../ir/node.ts';
import type { Rule } from '../rewrite.ts';
import { is, isBinary, isUnary, onlyUser, otherOperand, r0, transposedWeight } from '../match.ts';
import { locsOf } from '../rewrite.ts';

export const fuseWkv: Rule = (n, ctx) => {
  if (!is(n, 'wkv')) return undefined;
  const [r, k, v, w, state, u] = n.inputs;
  const absorbed: Node[] = [n];
  const inputs: Ref[] = [ctx.map(r), ctx.map(k), ctx.map(v), ctx.map(state)];

  // decay: exp(neg(exp(add(base, matmul(z, B)))))
  let decay: 'lora' | 'direct' = 'direct', loraDim = 0;
  const e2 = ctx.producer(w), ng = e2.inputs[0] && ctx.producer(e2.inputs[0]), e1 = ng?.inputs[0] && ctx.producer(ng.inputs[0]);
  const d = e1?.inputs[0] && ctx.producer(e1.inputs[0]);
  if (isUnary(e2, 'exp') && isUnary(ng, 'neg') && isUnary(e1, 'exp') && isBinary(d, 'add') && onlyUser(ctx, w) === n &&
      onlyUser(ctx, r0(ng)) === e2 && onlyUser(ctx, r0(e1)) === ng && onlyUser(ctx, r0(d)) === e1) {
    const [p, q] = d.inputs.map((x) => ctx.producer(x));
    const [base, mm] = is(p, 'weight') ? [p, q] : [q, p];
    const B = mm && ctx.producer(mm.inputs[1]);
    if (is(base, 'weight') && is(mm, 'matmul') && mm.attrs.layout === 'in_out' && is(B, 'weight') && onlyUser(ctx, r0(mm)) === d) {
      decay = 'lora';
      loraDim = B.attrs.shape[0];
      inputs.push(ctx.map(mm.inputs[0]), transposedWeight(ctx, B), ctx.map(r0(base)));
      absorbed.push(e2, ng, e1, d, mm);
    }
  }
  if (decay === 'direct') inputs.push(ctx.map(w));
  if (n.attrs.bonus) inputs.push(ctx.map(u));

  // y → GroupNorm (one group per head) → ⊙ gate
  let out: Node = n;
  let norm: { eps: number } | null = null, gate = false;
  const gn = onlyUser(ctx, r0(n));
  const C = n.types[0].shape[1] as number;
  if (is(gn, 'groupnorm') && gn.attrs.groups === C / n.attrs.headSize) {
    norm = { eps: gn.attrs.eps };
    inputs.push(ctx.map(gn.inputs[1]), ctx.map(gn.inputs[2]));
    absorbed.push(gn);
    out = gn;
    const mul = onlyUser(ctx, r0(gn));
    if (isBinary(mul, 'mul')) {
      const g = otherOperand(mul, r0(gn));
      const gt = ctx.producer(g).types[g.out];
      if (gt.shape.length === 2 && gt.shape[1] === C) {
        gate = true;
        inputs.push(ctx.map(g));
        absorbed.push(mul);
        out = mul;
      }
    }
  }
  const [y, S] = ctx.emit('wkv_fused', inputs, { ...n.attrs, decay, loraDim, norm, gate }, n.loc, locsOf(absorbed));
  ctx.absorb(absorbed);
  if (out === n) return [y, S];
  // the raw y was absorbed into the norm: only the normed (and gated) output and the state live on
  ctx.replace(r0(out), y);
  ctx.replace({ id: n.id, out: 1 }, S);
  return [];
};
