/**
 * A fused IR node is exactly one kernel of kernels/plan.ts: this maps the node's inputs and outputs to
 * buffer and weight names. The interpreter runs fused nodes through it with the reference semantics,
 * and the compiler's lowering uses it to write the plan, so both run the same kernel.
 */
import { mapLeaves } from '../kernels/expr.ts';
import type { Expr, Kernel } from '../kernels/plan.ts';
import type { Node, NodeOf, Ref } from './node.ts';

/** `value(ref)` names an activation/state buffer, `weight(ref)` a weight; `outs` names the node's results. */
export interface Naming {
  value(r: Ref): string;
  weight(r: Ref): string;
  outs: string[];
}

/**
 * The inputs of each fused op by name, in both directions: `pack` gives the node's positional inputs (the
 * fuse passes build nodes with it), `inputs` reads them back (the interpreter, the weight-storage pass and
 * lowering). The positional order is written here only.
 */
export interface TokenShiftInputs<R = Ref> {
  x: R;
  shiftIn: R;
  /** RMSNorm (token_shift rms): no bias, b null. */
  ln: { w: R; b: R | null } | null;
  mix: R[];
  lora: { mu: R; a: R; b: R } | null;
}
export interface LinearGroupInputs<R = Ref> { x: R; w: R; extra: R[] }
export interface WkvInputs<R = Ref> {
  r: R; k: R; v: R; state: R;
  decay: { kind: 'lora'; z: R; b: R; base: R } | { kind: 'direct'; w: R };
  u: R | null;
  norm: { w: R; b: R } | null;
  gate: R | null;
}

export const tokenShiftInputs = {
  pack: (i: TokenShiftInputs): Ref[] =>
    [i.x, i.shiftIn, ...(i.ln ? [i.ln.w, ...(i.ln.b ? [i.ln.b] : [])] : []), ...i.mix, ...(i.lora ? [i.lora.mu, i.lora.a, i.lora.b] : [])],
  of(n: NodeOf<'token_shift'>): TokenShiftInputs {
    const ins = n.inputs, { nMix, loraDim, eps, rms } = n.attrs;
    let i = 2;
    const ln = eps !== null ? { w: ins[i++], b: rms ? null : ins[i++] } : null;
    const mix = ins.slice(i, i + nMix);
    i += nMix;
    return { x: ins[0], shiftIn: ins[1], ln, mix, lora: loraDim ? { mu: ins[i], a: ins[i + 1], b: ins[i + 2] } : null };
  },
};

export const linearInputs = {
  pack: (groups: LinearGroupInputs[]): Ref[] => groups.flatMap((g) => [g.x, g.w, ...g.extra]),
  of(n: NodeOf<'linear'>): LinearGroupInputs[] {
    let i = 0;
    return n.attrs.groups.map((g) => {
      const ins = n.inputs.slice(i, i + 2 + g.extra);
      i += 2 + g.extra;
      return { x: ins[0], w: ins[1], extra: ins.slice(2) };
    });
  },
};

export const wkvInputs = {
  pack: (i: WkvInputs): Ref[] => [
    i.r, i.k, i.v, i.state,
    ...(i.decay.kind === 'lora' ? [i.decay.z, i.decay.b, i.decay.base] : [i.decay.w]),
    ...(i.u ? [i.u] : []), ...(i.norm ? [i.norm.w, i.norm.b] : []), ...(i.gate ? [i.gate] : []),
  ],
  of(n: NodeOf<'wkv_fused'>): WkvInputs {
    const ins = n.inputs, a = n.attrs;
    let i = 4;
    const decay = a.decay === 'lora'
      ? { kind: 'lora' as const, z: ins[i++], b: ins[i++], base: ins[i++] }
      : { kind: 'direct' as const, w: ins[i++] };
    const u = a.bonus ? ins[i++] : null;
    const norm = a.norm ? { w: ins[i++], b: ins[i++] } : null;
    const gate = a.gate ? ins[i++] : null;
    return { r: ins[0], k: ins[1], v: ins[2], state: ins[3], decay, u, norm, gate };
  },
};

export function isFused(n: Node): boolean {
  return n.op === 'token_shift' || n.op === 'linear' || n.op === 'wkv_fused';
}

export function fusedKernel(n: Node, names: Naming, name: string, layer: number | null, src: string[]): Kernel {
  const common = { name, layer, src };
  const v = names.value, w = names.weight;
  switch (n.op) {
    case 'token_shift': {
      const i = tokenShiftInputs.of(n);
      const { nMix, loraDim, eps } = n.attrs;
      return {
        kind: 'token_shift', ...common, x: v(i.x), ln: i.ln ? { w: w(i.ln.w), b: i.ln.b ? w(i.ln.b) : null, eps: eps!, ...(n.attrs.rms ? { rms: true } : {}) } : null, shiftIn: v(i.shiftIn),
        shiftOut: names.outs[nMix], mix: i.mix.map(w), lora: i.lora ? { mu: w(i.lora.mu), a: w(i.lora.a), b: w(i.lora.b), dim: loraDim } : null,
        outs: names.outs.slice(0, nMix),
      };
    }
    case 'linear': {
      const groups = linearInputs.of(n).map((g, gi) => {
        const attrs = n.attrs.groups[gi], extra = g.extra.map(v);
        // the node's epilogue loads extra input k as buffer 'k'; the kernel names the buffer
        const rename = (e: Expr): Expr => mapLeaves(e, (l) => (l.op === 'load' ? { op: 'load', buf: extra[Number(l.buf)] } : l));
        return {
          x: v(g.x), w: w(g.w), y: names.outs[gi],
          ...(attrs.prologue ? { prologue: rename(attrs.prologue) } : {}),
          ...(attrs.epilogue ? { epilogue: rename(attrs.epilogue) } : {}),
        };
      });
      return { kind: 'linear', ...common, rows: n.attrs.rows, groups };
    }
    case 'wkv_fused': {
      const a = n.attrs, i = wkvInputs.of(n);
      const decay = i.decay.kind === 'lora'
        ? { kind: 'lora' as const, z: v(i.decay.z), b: w(i.decay.b), base: w(i.decay.base), dim: a.loraDim }
        : { kind: 'direct' as const, w: v(i.decay.w) };
      return {
        kind: 'wkv', ...common, headSize: a.headSize, r: v(i.r), k: v(i.k), v: v(i.v),
        decay, u: i.u ? w(i.u) : null, order: a.order, kDecayScale: a.kDecayScale, rScale: a.rScale,
        state: names.outs[1], norm: i.norm ? { w: w(i.norm.w), b: w(i.norm.b), eps: a.norm!.eps } : null,
        gate: i.gate ? v(i.gate) : null, out: names.outs[0],
      };
    }
    default:
      throw new Error(`${n.op} is not a fused op`);
  }
}
