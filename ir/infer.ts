/**
 * Result types of every op, with the checks that make a node well-formed. The builder calls this when
 * a node is made (so a DSL mistake is reported at its line) and the verifier calls it again after
 * every pass.
 */
import type { NodeAttrs, OpName } from './node.ts';
import { fmtShape, sameShape, type Dim, type Shape, type TensorType } from './types.ts';

const f32 = (shape: Shape): TensorType => ({ dtype: 'f32', shape });
const lastDim = (s: Shape): Dim => s[s.length - 1];

function fail(msg: string): never {
  throw new Error(msg);
}

function expectRank(what: string, t: TensorType, rank: number): void {
  if (t.shape.length !== rank) fail(`${what} must have rank ${rank}, got ${fmtShape(t.shape)}`);
}

/** Elementwise broadcasting: one shape must be a suffix of the other (a [C] vector against [T, C]). */
function broadcast(a: Shape, b: Shape): Shape {
  const [long, short] = a.length >= b.length ? [a, b] : [b, a];
  const tail = long.slice(long.length - short.length);
  if (!sameShape(tail, short)) fail(`shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast`);
  return long;
}

export function inferTypes<K extends OpName>(op: K, ins: TensorType[], attrs: NodeAttrs[K]): TensorType[] {
  const a = attrs as NodeAttrs[OpName] & Record<string, unknown>;
  const arity = (n: number) => {
    if (ins.length !== n) fail(`expects ${n} inputs, got ${ins.length}`);
  };
  for (let i = 0; i < ins.length; i++) { // indexed: called for every node the DSL and the passes make, mostly before the JIT has optimised it
    const t = ins[i];
    if (t.dtype !== 'f32' && !(op === 'embed' && t === ins[0])) fail(`inputs must be f32 activations, got ${t.dtype}`);
  }
  switch (op) {
    case 'input': {
      const { dtype, shape } = attrs as NodeAttrs['input'];
      return [{ dtype, shape }];
    }
    case 'weight': {
      const { shape, stored, repeat } = attrs as NodeAttrs['weight'];
      if (stored && stored.reduce((x, y) => x * y, 1) * (repeat?.times ?? 1) !== shape.reduce((x, y) => x * y, 1))
        fail(`view ${fmtShape(shape)} has another size than the stored ${fmtShape(stored)}`);
      return [f32(shape)];
    }
    case 'const':
      return [f32([])];
    case 'embed': {
      arity(2);
      if (ins[0].dtype !== 'i32') fail(`tokens must be i32, got ${ins[0].dtype}`);
      expectRank('embedding table', ins[1], 2);
      return [f32([...ins[0].shape, ins[1].shape[1]])];
    }
    case 'layernorm':
    case 'groupnorm': {
      arity(3);
      const C = lastDim(ins[0].shape);
      for (const p of ins.slice(1)) if (!sameShape(p.shape, [C])) fail(`norm weight ${fmtShape(p.shape)} does not match width ${C}`);
      if (op === 'groupnorm' && typeof C === 'number' && C % (a.groups as number)) fail(`width ${C} does not split into ${a.groups} groups`);
      return [ins[0]];
    }
    case 'rmsnorm': {
      arity(2);
      const C = lastDim(ins[0].shape);
      if (!sameShape(ins[1].shape, [C])) fail(`norm weight ${fmtShape(ins[1].shape)} does not match width ${C}`);
      return [ins[0]];
    }
    case 'matmul': {
      arity(2);
      const [x, w] = ins;
      expectRank('matmul weight', w, 2);
      const [inDim, outDim] = a.layout === 'out_in' ? [w.shape[1], w.shape[0]] : [w.shape[0], w.shape[1]];
      if (lastDim(x.shape) !== inDim) fail(`input width ${lastDim(x.shape)} does not match weight ${fmtShape(w.shape)} (${a.layout})`);
      return [f32([...x.shape.slice(0, -1), outDim])];
    }
    case 'unary':
      arity(1);
      return [ins[0]];
    case 'binary':
      arity(2);
      return [f32(broadcast(ins[0].shape, ins[1].shape))];
    case 'shift': {
      arity(2);
      const [x, prev] = ins;
      expectRank('shifted input', x, 2);
      if (!sameShape(prev.shape, [x.shape[1]])) fail(`shift state ${fmtShape(prev.shape)} does not match rows of ${fmtShape(x.shape)}`);
      return [x];
    }
    case 'last':
      arity(1);
      expectRank('input', ins[0], 2);
      return [f32([ins[0].shape[1]])];
    case 'slice': {
      arity(1);
      const W = lastDim(ins[0].shape), { start, size } = a as NodeAttrs['slice'];
      if (typeof W !== 'number' || start < 0 || size < 1 || start + size > W) fail(`slice [${start}, ${start + size}) out of range of ${fmtShape(ins[0].shape)}`);
      return [f32([...ins[0].shape.slice(0, -1), size])];
    }
    case 'index': {
      arity(1);
      const D0 = ins[0].shape[0], { i } = a as NodeAttrs['index'];
      if (typeof D0 !== 'number' || i < 0 || i >= D0) fail(`index ${i} out of range of ${fmtShape(ins[0].shape)}`);
      return [f32(ins[0].shape.slice(1))];
    }
    case 'repeat': {
      arity(1);
      const W = lastDim(ins[0].shape), { group, times } = a as NodeAttrs['repeat'];
      if (typeof W !== 'number' || W % group) fail(`width ${W} is not made of groups of ${group}`);
      return [f32([...ins[0].shape.slice(0, -1), W * times])];
    }
    case 'wkv': {
      const { headSize: N, bonus } = a as NodeAttrs['wkv'];
      arity(bonus ? 6 : 5);
      const [r, k, v, w, s] = ins;
      expectRank('r', r, 2);
      const C = r.shape[1];
      if (typeof C !== 'number' || C % N) fail(`width ${C} is not a whole number of heads of ${N}`);
      for (const [n, t] of [['k', k], ['v', v], ['w', w]] as const)
        if (!sameShape(t.shape, r.shape)) fail(`${n} ${fmtShape(t.shape)} does not match r ${fmtShape(r.shape)}`);
      if (!sameShape(s.shape, [C / N, N, N])) fail(`state ${fmtShape(s.shape)} is not [${C / N}, ${N}, ${N}]`);
      if (bonus && !sameShape(ins[5].shape, [C])) fail(`bonus u ${fmtShape(ins[5].shape)} is not [${C}]`);
      return [r, s];
    }
    case 'token_shift': {
      const { nMix, loraDim, eps, rms } = a as NodeAttrs['token_shift'];
      // inputs: x, prev, [lnw, lnb] (RMSNorm: lnw only), mix × nMix, [mu, A, B]
      const expected = 2 + (eps !== null ? (rms ? 1 : 2) : 0) + nMix + (loraDim ? 3 : 0);
      arity(expected);
      return [...Array.from({ length: nMix }, () => ins[0]), f32([lastDim(ins[0].shape)])];
    }
    case 'linear': {
      // inputs per group: x, w[out, in], then the group's extra loads
      const { groups } = a as NodeAttrs['linear'];
      const out: TensorType[] = [];
      let i = 0;
      for (const g of groups) {
        const x = ins[i], w = ins[i + 1];
        if (!x || !w) fail(`too few inputs for ${groups.length} groups`);
        expectRank('linear weight', w, 2);
        if (lastDim(x.shape) !== w.shape[1]) fail(`input width ${lastDim(x.shape)} does not match weight ${fmtShape(w.shape)}`);
        const rows = a.rows === 'last' ? [1] : x.shape.slice(0, -1);
        out.push(f32([...rows, w.shape[0]]));
        i += 2 + g.extra;
      }
      if (i !== ins.length) fail(`expects ${i} inputs, got ${ins.length}`);
      return out;
    }
    case 'wkv_fused': {
      // inputs: r, k, v, state, decay (z, B, base | w), [u], [normW, normB], [gate]
      const f = a as NodeAttrs['wkv_fused'];
      arity(4 + (f.decay === 'lora' ? 3 : 1) + (f.bonus ? 1 : 0) + (f.norm ? 2 : 0) + (f.gate ? 1 : 0));
      return [ins[0], ins[3]];
    }
  }
  fail(`unknown op '${String(op)}'`);
}
