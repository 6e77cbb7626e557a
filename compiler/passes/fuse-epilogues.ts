/**
 * fuse-epilogues (and prologues): every remaining matmul becomes a one-group `linear` node whose
 * epilogue absorbs the chain of single-use elementwise ops after it (SiLU, relu², sigmoid, tanh, the
 * residual add, a multiply by another activation), and whose prologue absorbs a single-use
 * elementwise computation of its input. Where two matmul chains meet in one op (ChannelMix's
 * sigmoid(W_r·x) ⊙ (W_v·k)), the deeper matmul takes it, so the shallower one can run earlier,
 * batched with its siblings; where they are equally deep and the op feeds a matmul (SwiGLU's
 * silu(W_gate·x) ⊙ (W_up·x) into W_down), it becomes that matmul's prologue, so gate and up batch.
 */
import type { Expr } from '../../kernels/plan.ts';
import type { Graph, Node, NodeOf, Ref } from '../../ir/node.ts';
import type { Rule, RewriteCtx } from '../rewrite.ts';
import { is, onlyUser, otherOperand, r0, transposedWeight } from '../match.ts';
import { locsOf } from '../rewrite.ts';
import { sameShape } from '../../ir/types.ts';
import { linearInputs } from '../../ir/fused.ts';

/** Longest chain of matmuls from the inputs to each node. */
function matmulDepth(g: Graph): number[] {
  const depth: number[] = [];
  for (const n of g.nodes) depth[n.id] = Math.max(0, ...n.inputs.map((r) => depth[r.id])) + (n.op === 'matmul' ? 1 : 0);
  return depth;
}

/** The matmul whose single-use elementwise chain ends in r, if any. */
function chainRoot(ctx: RewriteCtx, r: Ref): Node | undefined {
  let n = ctx.producer(r);
  while (n.op === 'unary' || n.op === 'binary') {
    const src = n.inputs.find((i) => onlyUser(ctx, i) === n && ['unary', 'binary', 'matmul'].includes(ctx.producer(i).op));
    if (!src) return undefined;
    n = ctx.producer(src);
  }
  return n.op === 'matmul' ? n : undefined;
}

/** Is n's result read only as the input of a matmul (which can take n as its prologue)? */
function feedsMatmul(ctx: RewriteCtx, n: Node): boolean {
  const u = onlyUser(ctx, r0(n));
  return !!u && u.op === 'matmul' && u.inputs[0].id === n.id && u.inputs[0].out === 0;
}

export function fuseEpilogues(g: Graph): Rule {
  const depth = matmulDepth(g);
  return (n, ctx) => {
    if (!is(n, 'matmul')) return undefined;
    const extras: Ref[] = [];
    const load = (r: Ref): Expr => {
      const p = ctx.producer(r);
      if (p.op === 'const') return { op: 'const', value: p.attrs.value };
      extras.push(r);
      return { op: 'load', buf: String(extras.length - 1) };
    };
    const absorbed: Node[] = [n];

    // prologue: the matmul input is a tree of single-use elementwise ops over activations of its
    // shape (and constants); the first such activation becomes x, the others loads.
    const xShape = ctx.producer(n.inputs[0]).types[n.inputs[0].out].shape;
    const inTree = (r: Ref, root: boolean): boolean => {
      const p = ctx.producer(r);
      return (p.op === 'unary' || p.op === 'binary') && (root || !!onlyUser(ctx, r)) && !ctx.done(p.id) &&
        sameShape(p.types[r.out].shape, xShape);
    };
    let xRef: Ref | undefined;
    const leaf = (r: Ref): Expr | undefined => {
      const p = ctx.producer(r);
      if (p.op === 'const') return { op: 'const', value: p.attrs.value };
      if (p.op === 'weight' || !sameShape(p.types[r.out].shape, xShape)) return undefined;
      xRef ??= r;
      return xRef.id === r.id && xRef.out === r.out ? { op: 'x' } : load(r);
    };
    const build = (r: Ref, root: boolean): Expr | undefined => {
      if (!inTree(r, root)) return leaf(r);
      const p = ctx.producer(r) as NodeOf<'unary'> | NodeOf<'binary'>;
      const args = p.inputs.map((i) => build(i, false));
      if (args.some((a) => !a)) return undefined;
      absorbed.push(p);
      return { op: p.attrs.fn, args } as Expr;
    };
    const extrasBefore = extras.length;
    let prologue = inTree(n.inputs[0], true) ? build(n.inputs[0], true) : undefined;
    if (!prologue || !xRef) {
      // not a prologue after all: undo what the attempt collected
      prologue = undefined;
      xRef = n.inputs[0];
      extras.length = extrasBefore;
      absorbed.length = 1;
    }

    // epilogue: follow single users while they are elementwise on this chain's value
    let cur = r0(n);
    let epi: Expr = { op: 'acc' };
    const outShape = n.types[0].shape;
    for (;;) {
      const u = onlyUser(ctx, cur);
      if (!u || (u.op !== 'unary' && u.op !== 'binary')) break;
      if (u.op === 'unary') {
        epi = { op: u.attrs.fn, args: [epi] };
      } else {
        const other = otherOperand(u, cur);
        const op = ctx.producer(other);
        if (op.op !== 'const') {
          if (op.op === 'weight' || !sameShape(op.types[other.out].shape, outShape)) break;
          const rival = onlyUser(ctx, other) === u ? chainRoot(ctx, other) : undefined;
          if (rival && depth[rival.id] > depth[n.id]) break; // the deeper chain takes this op
          // Two chains of equal depth meeting in an op a matmul then reads (SwiGLU: silu(W_g·x) ⊙ (W_u·x)
          // into W_down): neither takes it, so both run in one launch and the consumer's prologue does the op.
          if (rival && depth[rival.id] === depth[n.id] && feedsMatmul(ctx, u)) break;
        }
        const o = load(other);
        epi = { op: u.attrs.fn, args: u.inputs[0].id === cur.id && u.inputs[0].out === cur.out ? [epi, o] : [o, epi] };
      }
      absorbed.push(u);
      cur = r0(u);
    }

    const w = ctx.producer(n.inputs[1]);
    if (!is(w, 'weight')) return undefined;
    const wRef = n.attrs.layout === 'in_out' ? transposedWeight(ctx, w) : ctx.map(n.inputs[1]);
    const group = { extra: extras.length, ...(prologue ? { prologue } : {}), ...(epi.op !== 'acc' ? { epilogue: epi } : {}) };
    const [y] = ctx.emit('linear', linearInputs.pack([{ x: ctx.map(xRef!), w: wRef, extra: extras.map(ctx.map) }]), { groups: [group], rows: 'all' }, n.loc, locsOf(absorbed));
    ctx.absorb(absorbed);
    if (cur.id !== n.id) {
      ctx.replace(cur, y);
      return [];
    }
    return [y];
  };
}
