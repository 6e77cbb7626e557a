/**
 * The QRWKV6 time-mix built from the same DSL and recurrence op, against a direct TypeScript
 * transcription of RWKV6.md §5 (plain loops, no IR).
 */
import { describe, expect, it } from 'vitest';
import qrwkv6TimeMix, { type QrwkvConfig } from '../examples/qrwkv6-timemix.ts';
import { interpret } from '../ir/interp.ts';
import { verifyGraph } from '../ir/verify.ts';
import { maxAbsDiff } from './helpers/golden.ts';

const cfg: QrwkvConfig = { nEmbd: 64, nHead: 4, nKvHead: 2, headSize: 16, loraMix: 8, loraDecay: 12 };

function rng(seed: number) {
  return () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

function randomWeights(seed: number): Record<string, Float32Array> {
  const { nEmbd: C, nKvHead: KV, headSize: N, loraMix: D, loraDecay: Dd } = cfg;
  const r = rng(seed), rand = (n: number, s = 0.3) => Float32Array.from({ length: n }, () => r() * s);
  const w: Record<string, Float32Array> = {};
  for (const s of ['x', 'w', 'k', 'v', 'r', 'g']) w[`time_maa_${s}`] = rand(C, 1);
  Object.assign(w, {
    time_maa_w1: rand(C * 5 * D), time_maa_w2: rand(5 * D * C), time_decay: rand(C, 1), time_decay_w1: rand(C * Dd),
    time_decay_w2: rand(Dd * C), 'receptance.weight': rand(C * C), 'key.weight': rand(KV * N * C),
    'value.weight': rand(KV * N * C), 'gate.weight': rand(C * C), 'output.weight': rand(C * C),
  });
  return w;
}

/** RWKV6.md §5, one token at a time. */
function direct(W: Record<string, Float32Array>, x: Float64Array, T: number) {
  const { nEmbd: C, nHead: H, nKvHead: KV, headSize: N, loraMix: D, loraDecay: Dd } = cfg;
  const S = new Float64Array(H * N * N), out = new Float64Array(T * C);
  let prev = new Float64Array(C);
  const mv = (v: ArrayLike<number>, M: Float32Array, I: number, O: number, outIn: boolean) =>
    Float64Array.from({ length: O }, (_, o) => { let s = 0; for (let i = 0; i < I; i++) s += v[i] * (outIn ? M[o * I + i] : M[i * O + o]); return s; });
  for (let t = 0; t < T; t++) {
    const a = x.subarray(t * C, (t + 1) * C), dx = a.map((v, c) => prev[c] - v);
    const z = mv(a.map((v, c) => v + dx[c] * W.time_maa_x[c]), W.time_maa_w1, C, 5 * D, false).map(Math.tanh);
    const xs = ['w', 'k', 'v', 'r', 'g'].map((s, i) => {
      const m = mv(z.subarray(i * D, (i + 1) * D), W.time_maa_w2.subarray(i * D * C, (i + 1) * D * C), D, C, false);
      return a.map((v, c) => v + dx[c] * (W[`time_maa_${s}`][c] + m[c]));
    });
    const [xw, xk, xv, xr, xg] = xs;
    const r = mv(xr, W['receptance.weight'], C, C, true);
    const kh = mv(xk, W['key.weight'], C, KV * N, true), vh = mv(xv, W['value.weight'], C, KV * N, true);
    const rep = (h: Float64Array) => Float64Array.from({ length: C }, (_, c) => h[Math.floor(Math.floor(c / N) / (H / KV)) * N + (c % N)]);
    const k = rep(kh), v = rep(vh);
    const g = mv(xg, W['gate.weight'], C, C, true).map((q) => 1 / (1 + Math.exp(-q)));
    const dl = mv(mv(xw, W.time_decay_w1, C, Dd, false).map(Math.tanh), W.time_decay_w2, Dd, C, false);
    const w = dl.map((q, c) => Math.exp(-Math.exp(W.time_decay[c] + q)));
    const y = new Float64Array(C);
    for (let h = 0; h < H; h++)
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let i = 0; i < N; i++) {
          const c = h * N + i, s = h * N * N + i * N + j;
          S[s] = w[c] * S[s] + k[c] * (1 - w[c]) * v[h * N + j];
          acc += (r[c] / Math.sqrt(N)) * S[s];
        }
        y[h * N + j] = acc;
      }
    out.set(mv(y.map((q, c) => q * g[c]), W['output.weight'], C, C, true), t * C);
    prev = Float64Array.from(a);
  }
  return { out, S, prev };
}

describe('QRWKV6 time-mix from the same recurrence op', () => {
  it('matches a direct implementation of its equations, in sequence and step mode', () => {
    const W = randomWeights(7), T = 9, C = cfg.nEmbd;
    const g = qrwkv6TimeMix(cfg);
    verifyGraph(g);
    const r = rng(3), x = Float64Array.from({ length: T * C }, () => r());
    const want = direct(W, x, T);
    const read = (n: string) => W[n];
    const seq = interpret(g, T, { x, 'state.att_shift': new Float64Array(C), 'state.wkv': new Float64Array(cfg.nHead * 256) }, read);
    expect(maxAbsDiff(seq.out.data, want.out)).toBeLessThan(1e-9);
    expect(maxAbsDiff(seq['state.wkv'].data, want.S)).toBeLessThan(1e-9);
    // step mode: one token per call, state carried
    let st: Record<string, Float64Array> = { 'state.att_shift': new Float64Array(C), 'state.wkv': new Float64Array(cfg.nHead * 256) };
    const outs = new Float64Array(T * C);
    for (let t = 0; t < T; t++) {
      const o = interpret(g, 1, { x: x.subarray(t * C, (t + 1) * C), ...st }, read);
      outs.set(o.out.data, t * C);
      st = { 'state.att_shift': o['state.att_shift'].data, 'state.wkv': o['state.wkv'].data };
    }
    expect(maxAbsDiff(outs, want.out)).toBeLessThan(1e-9);
    expect(maxAbsDiff(st['state.att_shift'], want.prev)).toBe(0);
  });
});
