/**
 * gpu.js as "what a JavaScript developer writes by hand": a matvec and a WKV step at the model's sizes
 * (bench-0.1b: C = 768, 12 heads of 64), written as gpu.js kernels, timed with benchmark.js beside our
 * kernels in `rwkvc bench --kernels`. In Node only gpu.js's CPU mode runs here: its GPU mode in Node
 * needs headless-gl (the `gl` package, a native addon), which npm did not install (`npm ls gl` is
 * empty: no prebuilt binary for this Node/platform and no toolchain fetch), so gpu.js reports
 * 'A requested mode of "headlessgl" and is not supported'.
 *
 * The WKV step (per head h, value column j): y[j] = Σ_i r[i]·(u[i]·k[i]·v[j] + S[i][j]); then
 * S[i][j] = w[i]·S[i][j] + k[i]·v[j] — two kernels (output, then state), as a hand-written port would.
 */
import Benchmark from 'benchmark';
import type { ModelConfig } from '../kernels/config.ts';
import { seededRandom } from '../runtime/random-model.ts';

export interface GpuJsRow { kernel: string; mode: string; meanMs: number; rmePct: number; samples: number; gbs?: number }

export async function benchGpuJs(cfg: ModelConfig, maxTime = 1): Promise<GpuJsRow[] | { unavailable: string }> {
  let GPU: typeof import('gpu.js').GPU;
  try { ({ GPU } = await import('gpu.js')); } catch (e) { return { unavailable: `gpu.js does not load: ${(e as Error).message.split('\n')[0]}` }; }
  const gpu = new GPU({ mode: 'cpu' });
  const C = cfg.nEmbd, H = cfg.nHead, N = cfg.headSize, rnd = seededRandom(3);
  const vec = (n: number) => Float32Array.from({ length: n }, () => rnd() - 0.5);
  const rows: GpuJsRow[] = [];
  const time = (name: string, fn: () => unknown) => {
    const b = new Benchmark(name, fn, { maxTime, minSamples: 5 });
    b.run({ async: false });
    return { meanMs: b.stats.mean * 1e3, rmePct: b.stats.rme, samples: b.stats.sample.length };
  };
  try {
    // matvec: y = W x, W [C][C] f32 (one of the four r/k/v/g matrices of the fused linear)
    const W = Array.from({ length: C }, () => vec(C)), x = vec(C);
    const mv = gpu.createKernel(function (this: { thread: { x: number }; constants: { n: number } }, w: number[][], v: number[]) {
      let s = 0;
      for (let i = 0; i < this.constants.n; i++) s += w[this.thread.x][i] * v[i];
      return s;
    }, { constants: { n: C }, output: [C] });
    const t = time('gpu.js matvec', () => mv(W as unknown as number[][], x as unknown as number[]));
    rows.push({ kernel: `matvec ${C}×${C} f32`, mode: 'gpu.js cpu', ...t, gbs: (C * C * 4) / t.meanMs / 1e6 });

    // WKV step over all heads: state [H·N][N]
    const r = vec(C), k = vec(C), v = vec(C), w = Float32Array.from({ length: C }, () => 0.5 + 0.5 * rnd()), u = vec(C);
    const S = Array.from({ length: C }, () => vec(N));
    const out = gpu.createKernel(function (this: { thread: { x: number }; constants: { n: number } }, s: number[][], rr: number[], kk: number[], vv: number[], uu: number[]) {
      const j = this.thread.x, base = Math.floor(j / this.constants.n) * this.constants.n, jj = j - base;
      let y = 0;
      for (let i = 0; i < this.constants.n; i++) y += rr[base + i] * (uu[base + i] * kk[base + i] * vv[j] + s[base + i][jj]);
      return y;
    }, { constants: { n: N }, output: [C] });
    const next = gpu.createKernel(function (this: { thread: { x: number; y: number }; constants: { n: number } }, s: number[][], kk: number[], vv: number[], ww: number[]) {
      const i = this.thread.y, j = this.thread.x, base = Math.floor(i / this.constants.n) * this.constants.n;
      return ww[i] * s[i][j] + kk[i] * vv[base + j];
    }, { constants: { n: N }, output: [N, C] });
    const tw = time('gpu.js wkv step', () => { out(S as unknown as number[][], r as unknown as number[], k as unknown as number[], v as unknown as number[], u as unknown as number[]); next(S as unknown as number[][], k as unknown as number[], v as unknown as number[], w as unknown as number[]); });
    rows.push({ kernel: `wkv step ${H}×${N}×${N}`, mode: 'gpu.js cpu', ...tw });
    return rows;
  } finally {
    gpu.destroy();
  }
}

/** Why gpu.js's GPU mode is not measured in Node here (one line). */
export async function gpuJsGpuModeInNode(): Promise<string> {
  try {
    const { GPU } = await import('gpu.js');
    const g = new GPU({ mode: 'headlessgl' });
    g.destroy();
    return 'headlessgl available';
  } catch (e) {
    return `gpu.js GPU mode in Node: ${(e as Error).message.split('\n')[0]} (headless-gl, the \`gl\` native addon gpu.js uses in Node, is not installed)`;
  }
}
