/**
 * Reference semantics of every kernel kind: plain loops, f64 accumulation. The interpreter runs a
 * KernelPlan with these, and every target's kernels are tested against them.
 */
import { evalExpr } from './expr.ts';
import type {
  EmbedKernel, Kernel, LayerNormKernel, LinearKernel, TokenShiftKernel, WkvKernel,
} from './plan.ts';

export type Arr = Float64Array | Float32Array;

/** What a kernel reads and writes: buffers by name (sized for the current T) and f32 weights. */
export interface KernelEnv {
  T: number;
  buf(name: string): Arr;
  tokens(name: string): Int32Array;
  weight(name: string): Arr;
}

export function runKernel(k: Kernel, env: KernelEnv): void {
  switch (k.kind) {
    case 'embed': return embed(k, env);
    case 'token_shift': return tokenShift(k, env);
    case 'linear': return linear(k, env);
    case 'wkv': return wkv(k, env);
    case 'layernorm': return layerNorm(k, env);
  }
}

function embed(k: EmbedKernel, env: KernelEnv): void {
  const tok = env.tokens(k.tokens), table = env.weight(k.table), out = env.buf(k.out);
  const C = out.length / env.T;
  for (let t = 0; t < env.T; t++) out.set(table.subarray(tok[t] * C, (tok[t] + 1) * C), t * C);
}

/** LayerNorm of one row (biased variance, as torch). */
function layerNormRow(x: Arr, xo: number, C: number, w: Arr, b: Arr, eps: number, out: Arr, oo: number): void {
  let mean = 0;
  for (let c = 0; c < C; c++) mean += x[xo + c];
  mean /= C;
  let v = 0;
  for (let c = 0; c < C; c++) v += (x[xo + c] - mean) ** 2;
  const inv = 1 / Math.sqrt(v / C + eps);
  for (let c = 0; c < C; c++) out[oo + c] = (x[xo + c] - mean) * inv * w[c] + b[c];
}

/** RMSNorm of one row: x / sqrt(mean(x²) + eps) ⊙ w (ggml rms_norm then mul; HF Qwen2RMSNorm). */
export function rmsNormRow(x: Arr, xo: number, C: number, w: Arr, eps: number, out: Arr, oo: number): void {
  let q = 0;
  for (let c = 0; c < C; c++) q += x[xo + c] * x[xo + c];
  const inv = 1 / Math.sqrt(q / C + eps);
  for (let c = 0; c < C; c++) out[oo + c] = x[xo + c] * inv * w[c];
}

function layerNorm(k: LayerNormKernel, env: KernelEnv): void {
  const x = env.buf(k.x), out = env.buf(k.out), w = env.weight(k.w), b = k.b ? env.weight(k.b) : null;
  const C = w.length;
  const t0 = k.rows === 'last' ? env.T - 1 : 0;
  for (let t = t0; t < env.T; t++)
    if (k.rms || !b) rmsNormRow(x, t * C, C, w, k.eps, out, (t - t0) * C);
    else layerNormRow(x, t * C, C, w, b, k.eps, out, (t - t0) * C);
}

function tokenShift(k: TokenShiftKernel, env: KernelEnv): void {
  const x = env.buf(k.x), T = env.T, C = x.length / T;
  const a = new Float64Array(T * C);
  if (k.ln) {
    const w = env.weight(k.ln.w), b = k.ln.b ? env.weight(k.ln.b) : null;
    for (let t = 0; t < T; t++)
      if (k.ln.rms || !b) rmsNormRow(x, t * C, C, w, k.ln.eps, a, t * C);
      else layerNormRow(x, t * C, C, w, b, k.ln.eps, a, t * C);
  } else a.set(x);
  const shiftIn = Float64Array.from(env.buf(k.shiftIn));
  const mix = k.mix.map((m) => env.weight(m));
  const outs = k.outs.map((o) => env.buf(o));
  const S = k.outs.length;
  const dx = new Float64Array(C);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++)
      dx[c] = (k.batch ? shiftIn[t * C + c] : t === 0 ? shiftIn[c] : a[(t - 1) * C + c]) - a[t * C + c];
    let m: Float64Array | null = null;
    if (k.lora) {
      const D = k.lora.dim, mu = env.weight(k.lora.mu), A = env.weight(k.lora.a), B = env.weight(k.lora.b);
      const z = new Float64Array(S * D);
      for (let o = 0; o < S * D; o++) {
        let acc = 0;
        for (let c = 0; c < C; c++) acc += A[o * C + c] * (a[t * C + c] + dx[c] * mu[c]);
        z[o] = Math.tanh(acc);
      }
      m = new Float64Array(S * C);
      for (let s = 0; s < S; s++)
        for (let c = 0; c < C; c++) {
          let acc = 0;
          for (let d = 0; d < D; d++) acc += B[(s * C + c) * D + d] * z[s * D + d];
          m[s * C + c] = acc;
        }
    }
    for (let s = 0; s < S; s++)
      for (let c = 0; c < C; c++)
        outs[s][t * C + c] = a[t * C + c] + dx[c] * (mix[s][c] + (m ? m[s * C + c] : 0));
  }
  env.buf(k.shiftOut).set(k.batch ? a : a.subarray((T - 1) * C, T * C));
}


function linear(k: LinearKernel, env: KernelEnv): void {
  const T = env.T;
  for (const g of k.groups) {
    const x = env.buf(g.x), W = env.weight(g.w), y = env.buf(g.y);
    const I = x.length / T, O = W.length / I;
    const t0 = k.rows === 'last' ? T - 1 : 0;
    const xin = new Float64Array(I);
    for (let t = t0; t < T; t++) {
      for (let i = 0; i < I; i++)
        xin[i] = g.prologue ? evalExpr(g.prologue, 0, x[t * I + i], (b) => env.buf(b)[t * I + i]) : x[t * I + i];
      const yo = (t - t0) * O;
      for (let o = 0; o < O; o++) {
        let acc = 0;
        for (let i = 0; i < I; i++) acc += W[o * I + i] * xin[i];
        y[yo + o] = g.epilogue ? evalExpr(g.epilogue, acc, 0, (b) => env.buf(b)[yo + o]) : acc;
      }
    }
  }
}

function wkv(k: WkvKernel, env: KernelEnv): void {
  const T = env.T, N = k.headSize;
  const r = env.buf(k.r), kk = env.buf(k.k), v = env.buf(k.v), S = env.buf(k.state), out = env.buf(k.out);
  const C = r.length / T, H = C / N;
  const u = k.u ? env.weight(k.u) : null;
  const gate = k.gate ? env.buf(k.gate) : null;
  const w = new Float64Array(C), kt = new Float64Array(C), rt = new Float64Array(C), y = new Float64Array(C);
  for (let t = 0; t < T; t++) {
    if (k.decay.kind === 'lora') {
      const z = env.buf(k.decay.z), B = env.weight(k.decay.b), base = env.weight(k.decay.base), D = k.decay.dim;
      for (let c = 0; c < C; c++) {
        let d = base[c];
        for (let j = 0; j < D; j++) d += B[c * D + j] * z[t * D + j];
        w[c] = Math.exp(-Math.exp(d));
      }
    } else {
      const wi = env.buf(k.decay.w);
      for (let c = 0; c < C; c++) w[c] = wi[t * C + c];
    }
    for (let c = 0; c < C; c++) {
      rt[c] = r[t * C + c] * k.rScale;
      kt[c] = kk[t * C + c] * (k.kDecayScale ? 1 - w[c] : 1);
    }
    for (let h = 0; h < H; h++) {
      const o = h * N, so = (k.batch ? t * H * N * N : 0) + h * N * N;
      for (let j = 0; j < N; j++) {
        const vj = v[t * C + o + j];
        let acc = 0;
        for (let i = 0; i < N; i++) {
          const s = so + i * N + j, kv = kt[o + i] * vj;
          if (k.order === 'read_first') {
            acc += rt[o + i] * ((u ? u[o + i] : 0) * kv + S[s]);
            S[s] = w[o + i] * S[s] + kv;
          } else {
            S[s] = w[o + i] * S[s] + kv;
            acc += rt[o + i] * S[s];
          }
        }
        y[o + j] = acc;
      }
      if (k.norm) {
        const nw = env.weight(k.norm.w), nb = env.weight(k.norm.b);
        layerNormRow(y, o, N, nw.subarray(o, o + N), nb.subarray(o, o + N), k.norm.eps, y, o);
      }
    }
    for (let c = 0; c < C; c++) out[t * C + c] = y[c] * (gate ? gate[t * C + c] : 1);
  }
}
