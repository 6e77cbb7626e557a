/**
 * fuse-wkv: the decay w = exp(−exp(base + z·B)), the recurrence (with its bonus), the GroupNorm of
 * its output (when there is one: QRWKV6 has none) and the gate multiply become one wkv_fused node (kernels/plan.ts WkvKernel). The LoRA's
 * first half, z = tanh(x_w·A), stays a matmul (it batches with the r/k/v/g projections).
 */
import type { Node, Ref } from '../../ir/node.ts';
import type { Rule } from '../rewrite.ts';
import { is, isBinary, isUnary, onlyUser, otherOperand, r0, transposedWeight } from '../match.ts';
import { locsOf } from '../rewrite.ts';
import { wkvInputs, type WkvInputs } from '../../ir/fused.ts';

export const fuseWkv: Rule = (n, ctx) => {
  if (!is(n, 'wkv')) return undefined;
  const [r, k, v, w, state, u] = n.inputs;
  const absorbed: Node[] = [n];

  // decay: exp(neg(exp(add(base, matmul(z, B)))))
  let decay: WkvInputs['decay'] | null = null, loraDim = 0;
  const e2 = ctx.producer(w), ng = e2.inputs[0] && ctx.producer(e2.inputs[0]), e1 = ng?.inputs[0] && ctx.producer(ng.inputs[0]);
  const d = e1?.inputs[0] && ctx.producer(e1.inputs[0]);
  if (isUnary(e2, 'exp') && isUnary(ng, 'neg') && isUnary(e1, 'exp') && isBinary(d, 'add') && onlyUser(ctx, w) === n &&
      onlyUser(ctx, r0(ng)) === e2 && onlyUser(ctx, r0(e1)) === ng && onlyUser(ctx, r0(d)) === e1) {
    const [p, q] = d.inputs.map((x) => ctx.producer(x));
    const [base, mm] = is(p, 'weight') ? [p, q] : [q, p];
    const B = mm && ctx.producer(mm.inputs[1]);
    if (is(base, 'weight') && is(mm, 'matmul') && mm.attrs.layout === 'in_out' && is(B, 'weight') && onlyUser(ctx, r0(mm)) === d) {
      decay = { kind: 'lora', z: ctx.map(mm.inputs[0]), b: transposedWeight(ctx, B), base: ctx.map(r0(base)) };
      loraDim = B.attrs.shape[0];
      absorbed.push(e2, ng, e1, d, mm);
    }
  }
  decay ??= { kind: 'direct', w: ctx.map(w) };

  // y → GroupNorm (one group per head) → ⊙ gate
  let out: Node = n;
  let norm: { eps: number } | null = null, normWeights: WkvInputs['norm'] = null, gate: Ref | null = null;
  const gn = onlyUser(ctx, r0(n));
  const C = n.types[0].shape[1] as number;
  if (is(gn, 'groupnorm') && gn.attrs.groups === C / n.attrs.headSize) {
    norm = { eps: gn.attrs.eps };
    normWeights = { w: ctx.map(gn.inputs[1]), b: ctx.map(gn.inputs[2]) };
    absorbed.push(gn);
    out = gn;
  }
  // QRWKV6 has no GroupNorm: the gate multiplies the recurrence's output directly
  const mul = onlyUser(ctx, r0(out));
  if (isBinary(mul, 'mul')) {
    const g = otherOperand(mul, r0(out));
    const gt = ctx.producer(g).types[g.out];
    if (gt.shape.length === 2 && gt.shape[1] === C) {
      gate = ctx.map(g);
      absorbed.push(mul);
      out = mul;
    }
  }
  const inputs = wkvInputs.pack({
    r: ctx.map(r), k: ctx.map(k), v: ctx.map(v), state: ctx.map(state), decay,
    u: n.attrs.bonus ? ctx.map(u) : null, norm: normWeights, gate,
  });
  const [y, S] = ctx.emit('wkv_fused', inputs, { ...n.attrs, decay: decay.kind, loraDim, norm, gate: !!gate }, n.loc, locsOf(absorbed));
  ctx.absorb(absorbed);
  if (out === n) return [y, S];
  // the raw y was absorbed into the norm: only the normed (and gated) output and the state live on
  ctx.replace(r0(out), y);
  ctx.replace({ id: n.id, out: 1 }, S);
  return [];
};
