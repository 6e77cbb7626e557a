/**
 * A fused IR node is exactly one kernel of kernels/plan.ts: this maps the node's inputs and outputs to
 * buffer and weight names. The interpreter runs fused nodes through it with the reference semantics,
 * and the compiler's lowering uses it to write the plan, so both run the same kernel.
 */
import type { Kernel } from '../kernels/plan.ts';
import type { Node, Ref } from './node.ts';

/** `value(ref)` names an activation/state buffer, `weight(ref)` a weight; `outs` names the node's results. */
export interface Naming {
  value(r: Ref): string;
  weight(r: Ref): string;
  outs: string[];
}

export function isFused(n: Node): boolean {
  return n.op === 'token_shift' || n.op === 'linear' || n.op === 'wkv_fused';
}

export function fusedKernel(n: Node, names: Naming, name: string, layer: number | null, src: string[]): Kernel {
  const ins = n.inputs;
  const common = { name, layer, src };
  switch (n.op) {
    case 'token_shift': {
      const { nMix, loraDim, eps } = n.attrs;
      let i = 2;
      const ln = eps !== null ? { w: names.weight(ins[i++]), b: names.weight(ins[i++]), eps } : null;
      const mix = ins.slice(i, i + nMix).map(names.weight);
      i += nMix;
      const lora = loraDim
        ? { mu: names.weight(ins[i]), a: names.weight(ins[i + 1]), b: names.weight(ins[i + 2]), dim: loraDim }
        : null;
      return {
        kind: 'token_shift', ...common, x: names.value(ins[0]), ln, shiftIn: names.value(ins[1]),
        shiftOut: names.outs[nMix], mix, lora, outs: names.outs.slice(0, nMix),
      };
    }
    case 'linear': {
      let i = 0;
      const groups = n.attrs.groups.map((g, gi) => {
        const x = ins[i], w = ins[i + 1], extra = ins.slice(i + 2, i + 2 + g.extra).map(names.value);
        i += 2 + g.extra;
        const rename = (e: NonNullable<typeof g.epilogue>): typeof e =>
          e.op === 'load' ? { op: 'load', buf: extra[Number(e.buf)] }
            : 'args' in e ? ({ ...e, args: e.args.map(rename) } as typeof e) : e;
        return {
          x: names.value(x), w: names.weight(w), y: names.outs[gi],
          ...(g.prologue ? { prologue: rename(g.prologue) } : {}),
          ...(g.epilogue ? { epilogue: rename(g.epilogue) } : {}),
        };
      });
      return { kind: 'linear', ...common, rows: n.attrs.rows, groups };
    }
    case 'wkv_fused': {
      const a = n.attrs;
      let i = 4;
      const decay = a.decay === 'lora'
        ? { kind: 'lora' as const, z: names.value(ins[i++]), b: names.weight(ins[i++]), base: names.weight(ins[i++]), dim: a.loraDim }
        : { kind: 'direct' as const, w: names.value(ins[i++]) };
      const u = a.bonus ? names.weight(ins[i++]) : null;
      const norm = a.norm ? { w: names.weight(ins[i++]), b: names.weight(ins[i++]), eps: a.norm.eps } : null;
      const gate = a.gate ? names.value(ins[i++]) : null;
      return {
        kind: 'wkv', ...common, headSize: a.headSize, r: names.value(ins[0]), k: names.value(ins[1]), v: names.value(ins[2]),
        decay, u, order: a.order, kDecayScale: a.kDecayScale, rScale: a.rScale,
        state: names.outs[1], norm, gate, out: names.outs[0],
      };
    }
    default:
      throw new Error(`${n.op} is not a fused op`);
  }
}
