/**
 * fuse-token-shift: the time shift, the lerps a + (prev − a)⊙μ that read it, the ddlerp LoRA
 * (z = tanh((a + dx⊙μ_x)·A), m_s = z_s·B_s) and the LayerNorm (or RMSNorm) that makes `a` become one
 * token_shift node (kernels/plan.ts TokenShiftKernel), which also writes the new shift state.
 *
 * Pattern, rooted at shift(a, prev):  dx = shift − a;  each lerp = a + dx ⊙ M, where M is a weight
 * (static lerp) or μ_s + slice(z, s·D, D)·index(B, s) (data-dependent lerp); last(a) is the new state.
 */
import type { Node, NodeOf, Ref } from '../../ir/node.ts';
import type { Rule, RewriteCtx } from '../rewrite.ts';
import { is, isBinary, isUnary, onlyUser, otherOperand, r0, transposedWeight } from '../match.ts';
import { locsOf } from '../rewrite.ts';
import { tokenShiftInputs } from '../../ir/fused.ts';

interface Lerp { out: Node; mix: NodeOf<'weight'>; lora?: { s: number; z: Ref; B: NodeOf<'weight'>; D: number; nodes: Node[] }; nodes: Node[] }

const same = (a: Ref, b: Ref) => a.id === b.id && a.out === b.out;

/** a + dx ⊙ M  →  M, or undefined if `mul` is not part of such a lerp. */
function lerpOf(ctx: RewriteCtx, a: Ref, dx: Ref, mul: Node): Lerp | undefined {
  if (!isBinary(mul, 'mul')) return undefined;
  const M = ctx.producer(otherOperand(mul, dx));
  const add = onlyUser(ctx, r0(mul));
  if (!isBinary(add, 'add') || !same(otherOperand(add, r0(mul)), a)) return undefined;
  if (is(M, 'weight')) return { out: add, mix: M, nodes: [mul, add] };
  // μ_s + slice(z, s·D, D) · index(B, s)
  if (!isBinary(M, 'add') || onlyUser(ctx, r0(M)) !== mul) return undefined;
  const [p, q] = M.inputs.map((r) => ctx.producer(r));
  const [mu, mm] = is(p, 'weight') ? [p, q] : [q, p];
  if (!is(mu, 'weight') || !is(mm, 'matmul') || mm.attrs.layout !== 'in_out' || onlyUser(ctx, r0(mm)) !== M) return undefined;
  const sl = ctx.producer(mm.inputs[0]), ix = ctx.producer(mm.inputs[1]);
  if (!is(sl, 'slice') || !is(ix, 'index') || onlyUser(ctx, r0(sl)) !== mm) return undefined;
  const B = ctx.producer(ix.inputs[0]);
  if (!is(B, 'weight') || sl.attrs.start !== ix.attrs.i * sl.attrs.size) return undefined;
  return { out: add, mix: mu, lora: { s: ix.attrs.i, z: sl.inputs[0], B, D: sl.attrs.size, nodes: [sl, ix, mm, M] }, nodes: [mul, add] };
}

export const fuseTokenShift: Rule = (n, ctx) => {
  if (!is(n, 'shift')) return undefined;
  const [a, prev] = n.inputs;
  const dx = onlyUser(ctx, r0(n));
  if (!isBinary(dx, 'sub') || !same(dx.inputs[0], r0(n)) || !same(dx.inputs[1], a)) return undefined;
  const lerps: Lerp[] = [];
  for (const u of ctx.users(r0(dx))) {
    const l = lerpOf(ctx, a, r0(dx), u);
    if (!l) return undefined;
    lerps.push(l);
  }
  const last = ctx.users(a).find((u) => is(u, 'last'));
  if (!last) return undefined;

  // The data-dependent lerps share one z = tanh(xxx · A), where xxx is a static lerp used only there.
  const lora = lerps.filter((l) => l.lora);
  let loraPart: { mu: NodeOf<'weight'>; A: NodeOf<'weight'>; B: NodeOf<'weight'>; D: number; nodes: Node[]; xxx: Lerp } | undefined;
  if (lora.length) {
    const z = lora[0].lora!.z, tanh = ctx.producer(z), mmA = tanh.inputs[0] && ctx.producer(tanh.inputs[0]);
    if (!isUnary(tanh, 'tanh') || !is(mmA, 'matmul') || mmA.attrs.layout !== 'in_out') return undefined;
    const A = ctx.producer(mmA.inputs[1]);
    const xxx = lerps.find((l) => !l.lora && same(r0(l.out), mmA.inputs[0]));
    const { B, D } = lora[0].lora!;
    const S = lora.length;
    if (!is(A, 'weight') || !xxx || onlyUser(ctx, r0(xxx.out)) !== mmA || onlyUser(ctx, r0(mmA)) !== tanh) return undefined;
    if (A.attrs.shape[1] !== S * D || B.attrs.shape[0] !== S) return undefined;
    const slots = new Set(lora.map((l) => l.lora!.s));
    if (slots.size !== S || lora.some((l) => !same(l.lora!.z, z) || l.lora!.B !== B || l.lora!.D !== D)) return undefined;
    if (ctx.users(z).length !== S) return undefined;
    loraPart = { mu: xxx.mix, A, B, D, nodes: [mmA, tanh, ...xxx.nodes], xxx };
  }
  const outs = loraPart ? lora.sort((p, q) => p.lora!.s - q.lora!.s) : lerps;

  // Take the LayerNorm in too when nothing else reads its output.
  const aNode = ctx.producer(a);
  const inPattern = new Set<Node>([n, dx, last, ...lerps.map((l) => l.out)]);
  const lnFusable = (is(aNode, 'layernorm') || is(aNode, 'rmsnorm')) && ctx.users(a).every((u) => inPattern.has(u));
  const ln = lnFusable ? (aNode as NodeOf<'layernorm'> | NodeOf<'rmsnorm'>) : undefined;
  const rms = ln?.op === 'rmsnorm';

  const inputs = tokenShiftInputs.pack({
    x: ctx.map(ln ? ln.inputs[0] : a),
    shiftIn: ctx.map(prev),
    ln: ln ? { w: ctx.map(ln.inputs[1]), b: rms ? null : ctx.map(ln.inputs[2]) } : null,
    mix: outs.map((l) => ctx.map(r0(l.mix))),
    lora: loraPart ? { mu: ctx.map(r0(loraPart.mu)), a: transposedWeight(ctx, loraPart.A), b: transposedWeight(ctx, loraPart.B) } : null,
  });
  const absorbed: Node[] = [n, dx, last, ...lerps.flatMap((l) => [...l.nodes, ...(l.lora?.nodes ?? [])]), ...(loraPart?.nodes ?? []), ...(ln ? [ln] : [])];
  const refs = ctx.emit('token_shift', inputs, { eps: ln ? ln.attrs.eps : null, nMix: outs.length, loraDim: loraPart?.D ?? 0, ...(rms ? { rms: true } : {}) },
    n.loc, locsOf(absorbed));
  outs.forEach((l, i) => ctx.replace(r0(l.out), refs[i]));
  ctx.replace(r0(last), refs[outs.length]);
  ctx.absorb(absorbed);
  return [];
};
