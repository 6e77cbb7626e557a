/**
 * The reference interpreter: executes any IR graph (unfused or fused) in f64, with T bound at call
 * time. Step, sequence and chunked modes are the same graph called with T = 1, T = all, or T = chunk,
 * the state carried between calls as explicit inputs and outputs.
 */
import { rmsNormRow, runKernel, type Arr } from '../kernels/reference.ts';
import { materializeWeight, type TensorReader } from '../kernels/weights.ts';
import { dequantize } from '../kernels/dtype.ts';
import { fusedKernel, isFused } from './fused.ts';
import type { Graph, Node, Ref } from './node.ts';
import { refKey } from './node.ts';
import { numel } from './types.ts';

export interface Value {
  data: Float64Array;
  shape: number[];
}
export type Inputs = Record<string, Float64Array | Float32Array | Int32Array>;

const act: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  tanh: Math.tanh,
  exp: Math.exp,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  silu: (x) => x / (1 + Math.exp(-x)),
  relu: (x) => (x > 0 ? x : 0),
  square: (x) => x * x,
};
const bin: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
};

/** Run `g` on T tokens. `inputs` are by input name (tokens as Int32Array); returns outputs by name. */
export function interpret(g: Graph, T: number, inputs: Inputs, read: TensorReader): Record<string, Value> {
  const vals = new Map<string, Value>();
  const tokens = new Map<string, Int32Array>();
  const get = (r: Ref) => vals.get(refKey(r))!;
  const shapeOf = (n: Node, out = 0) => n.types[out].shape.map((d) => (d === 'T' ? T : d));

  for (const n of g.nodes) {
    const put = (data: Float64Array, out = 0) => vals.set(refKey({ id: n.id, out }), { data, shape: shapeOf(n, out) });
    const x = n.inputs.map(get);
    switch (n.op) {
      case 'input': {
        const v = inputs[n.attrs.name];
        if (!v) throw new Error(`missing input '${n.attrs.name}'`);
        const want = numel(n.types[0].shape, T);
        if (v.length !== want) throw new Error(`input '${n.attrs.name}' has ${v.length} elements, expected ${want}`);
        if (n.attrs.role === 'tokens') tokens.set(refKey({ id: n.id, out: 0 }), Int32Array.from(v));
        put(Float64Array.from(v));
        break;
      }
      case 'weight': {
        const a = n.attrs;
        const w = materializeWeight({ tensor: a.name, stored: [...(a.stored ?? a.shape)], transpose: a.transpose, fold: a.fold, ...(a.repeat ? { repeat: a.repeat } : {}) }, read);
        const v = a.storage ? dequantize(w, a.shape[a.shape.length - 1], a.storage) : w;
        put(Float64Array.from(v));
        break;
      }
      case 'const':
        put(Float64Array.of(n.attrs.value));
        break;
      case 'embed': {
        const tok = x[0].data, table = x[1], C = table.shape[1], out = new Float64Array(tok.length * C);
        for (let t = 0; t < tok.length; t++) out.set(table.data.subarray(tok[t] * C, (tok[t] + 1) * C), t * C);
        put(out);
        break;
      }
      case 'layernorm':
      case 'groupnorm': {
        const [v, w, b] = x, C = w.data.length, G = n.op === 'groupnorm' ? n.attrs.groups : 1, N = C / G;
        const out = new Float64Array(v.data.length);
        for (let row = 0; row < v.data.length / C; row++)
          for (let gi = 0; gi < G; gi++) {
            const o = row * C + gi * N;
            let mean = 0, vr = 0;
            for (let i = 0; i < N; i++) mean += v.data[o + i];
            mean /= N;
            for (let i = 0; i < N; i++) vr += (v.data[o + i] - mean) ** 2;
            const inv = 1 / Math.sqrt(vr / N + n.attrs.eps);
            for (let i = 0; i < N; i++) out[o + i] = (v.data[o + i] - mean) * inv * w.data[gi * N + i] + b.data[gi * N + i];
          }
        put(out);
        break;
      }
      case 'rmsnorm': {
        const [v, w] = x, C = w.data.length, out = new Float64Array(v.data.length);
        for (let row = 0; row < v.data.length / C; row++) rmsNormRow(v.data, row * C, C, w.data, n.attrs.eps, out, row * C);
        put(out);
        break;
      }
      case 'matmul': {
        const [v, w] = x, I = v.shape[v.shape.length - 1], rows = v.data.length / I;
        const outT = n.attrs.layout === 'out_in';
        const O = w.data.length / I, out = new Float64Array(rows * O);
        for (let r = 0; r < rows; r++)
          for (let o = 0; o < O; o++) {
            let acc = 0;
            for (let i = 0; i < I; i++) acc += v.data[r * I + i] * (outT ? w.data[o * I + i] : w.data[i * O + o]);
            out[r * O + o] = acc;
          }
        put(out);
        break;
      }
      case 'unary':
        put(x[0].data.map(act[n.attrs.fn]));
        break;
      case 'binary': {
        const [a, b] = x, f = bin[n.attrs.fn], len = Math.max(a.data.length, b.data.length);
        const out = new Float64Array(len);
        for (let i = 0; i < len; i++) out[i] = f(a.data[i % a.data.length], b.data[i % b.data.length]);
        put(out);
        break;
      }
      case 'shift': {
        const [v, prev] = x, C = prev.data.length, out = new Float64Array(v.data.length);
        out.set(prev.data, 0);
        out.set(v.data.subarray(0, v.data.length - C), C);
        put(out);
        break;
      }
      case 'last': {
        const C = x[0].shape[1];
        put(x[0].data.slice(x[0].data.length - C));
        break;
      }
      case 'slice': {
        const W = x[0].shape[x[0].shape.length - 1], { start, size } = n.attrs, rows = x[0].data.length / W;
        const out = new Float64Array(rows * size);
        for (let r = 0; r < rows; r++) out.set(x[0].data.subarray(r * W + start, r * W + start + size), r * size);
        put(out);
        break;
      }
      case 'index': {
        const per = x[0].data.length / x[0].shape[0];
        put(x[0].data.slice(n.attrs.i * per, (n.attrs.i + 1) * per));
        break;
      }
      case 'repeat': {
        const W = x[0].shape[x[0].shape.length - 1], { group, times } = n.attrs, rows = x[0].data.length / W;
        const out = new Float64Array(rows * W * times);
        for (let r = 0; r < rows; r++)
          for (let gi = 0; gi < W / group; gi++)
            for (let k = 0; k < times; k++)
              out.set(x[0].data.subarray(r * W + gi * group, r * W + (gi + 1) * group), r * W * times + (gi * times + k) * group);
        put(out);
        break;
      }
      case 'wkv': {
        // The unfused recurrence is the fused kernel with a direct decay and no norm or gate.
        const [r, k, v, w, s] = x, u = n.attrs.bonus ? x[5] : null;
        const y = new Float64Array(r.data.length), S = Float64Array.from(s.data);
        runKernel({
          kind: 'wkv', name: 'wkv', layer: null, src: [], headSize: n.attrs.headSize, r: 'r', k: 'k', v: 'v',
          decay: { kind: 'direct', w: 'w' }, u: u ? 'u' : null, order: n.attrs.order, kDecayScale: n.attrs.kDecayScale,
          rScale: n.attrs.rScale, state: 'S', norm: null, gate: null, out: 'y',
        }, {
          T, buf: (b) => ({ r: r.data, k: k.data, v: v.data, w: w.data, S, y } as Record<string, Arr>)[b],
          tokens: () => { throw new Error('unused'); }, weight: () => u!.data,
        });
        put(y, 0);
        put(S, 1);
        break;
      }
      default: {
        if (!isFused(n)) throw new Error(`interpreter: unknown op ${n.op}`);
        const outs = n.types.map((_, i) => `out${i}`);
        const bufs = new Map<string, Arr>(outs.map((o, i) => [o, new Float64Array(numel(n.types[i].shape, T))]));
        const kernel = fusedKernel(n, { value: refKey, weight: refKey, outs }, n.op, null, []);
        // state results start as the state input: the kernel updates them in place
        if (kernel.kind === 'wkv') bufs.get(kernel.state)!.set(get(n.inputs[3]).data);
        runKernel(kernel, {
          T,
          buf: (b) => bufs.get(b) ?? vals.get(b)!.data,
          tokens: (b) => tokens.get(b)!,
          weight: (b) => vals.get(b)!.data,
        });
        outs.forEach((o, i) => put(bufs.get(o) as Float64Array, i));
      }
    }
  }
  return Object.fromEntries(g.outputs.map((o) => [o.name, get(o.ref)]));
}
