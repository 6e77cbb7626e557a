/**
 * The CUDA target's two WKV forms agree over a long prompt: the chunk-parallel prefill kernel (the
 * within-chunk products and the state passed between chunks) against the serial kernel run over the
 * same 4096 tokens, with decays as RWKV-6 has them (w = exp(−exp(x)), x from −6 to 1: w from 0.998 down
 * to 0.07, so a state remembers for hundreds of tokens). Both run as generated CUDA on the CPU emulator.
 */
import { describe, expect, it } from 'vitest';
import type { BufferDecl, KernelPlan, WkvKernel } from '../kernels/plan.ts';
import { seededRandom as rng } from '../runtime/random-model.ts';
import { codegen } from '../targets/cuda/codegen.ts';
import { loadCudaSim } from '../targets/cuda/sim/runtime.ts';
import { simUnavailable } from '../targets/cuda/sim/build.ts';
import type { CudaModel } from '../targets/cuda/runtime.ts';

const T = 4096, N = 64, H = 2, C = H * N;
const skip = simUnavailable();
if (skip) console.warn(`CUDA WKV chunked-vs-serial test skipped: ${skip}`);

function wkvPlan(k: Partial<WkvKernel>): KernelPlan {
  const act = (name: string, at: number): BufferDecl => ({ name, dtype: 'f32', shape: ['T', C], role: 'activation', offset: at * T * C * 4 });
  const kernel: WkvKernel = {
    kind: 'wkv', name: 'wkv', layer: 0, src: [], headSize: N, r: 'r', k: 'k', v: 'v', decay: { kind: 'direct', w: 'w' },
    u: 'u', order: 'read_first', kDecayScale: false, rScale: 1, state: 'state.0.wkv', norm: null, gate: null, out: 'y', ...k,
  };
  const program = (maxT: number) => ({
    maxT, kernels: [kernel], activationPeakBytes: 5 * T * C * 4,
    buffers: [
      { name: 'state.0.wkv', dtype: 'f32', shape: [H, N, N], role: 'state' } as BufferDecl,
      act('r', 0), act('k', 1), act('v', 2), act('w', 3), act('y', 4),
    ],
  });
  return {
    format: 'rwkvc-plan', version: 1, model: 'wkv', weights: [
      { name: 'u', shape: [C], dtype: 'f32', source: { tensor: 'u', stored: [C] } },
      ...(k.norm ? [{ name: 'nw', shape: [C], dtype: 'f32' as const, source: { tensor: 'nw', stored: [C] } }, { name: 'nb', shape: [C], dtype: 'f32' as const, source: { tensor: 'nb', stored: [C] } }] : []),
    ],
    config: { nLayer: 1, nEmbd: C, headSize: N, nHead: H, dimFfn: 4 * C, vocabSize: 16, loraMix: 32, loraDecay: 64 },
    decode: program(1), prefill: program(T),
  };
}

/** max |a − b| relative to the largest |b|. */
function relErr(a: Float32Array, b: Float32Array): { err: number; scale: number } {
  let err = 0, scale = 0;
  for (let i = 0; i < b.length; i++) { err = Math.max(err, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
  return { err: err / scale, scale };
}

describe.skipIf(!!skip)('CUDA WKV: chunked prefill = serial over 4096 tokens', () => {
  it.each([
    ['read_first, bonus', {}],
    ['update_first, k scaled by 1 − w, GroupNorm', { order: 'update_first', kDecayScale: true, u: null, norm: { w: 'nw', b: 'nb', eps: 64e-5 } }],
  ] as [string, Partial<WkvKernel>][])('%s', async (_, k) => {
    const plan = wkvPlan(k);
    const r = rng(31);
    const values = new Map(plan.weights.map((w) => [w.name, Float32Array.from({ length: C }, () => (w.name === 'nw' ? 1 : 0) + (r() - 0.5))]));
    const provider = (d: { name: string }) => values.get(d.name)!;
    const chunked = codegen.emit(plan) as Parameters<typeof loadCudaSim>[0];
    const serial = codegen.emit(plan, { wkv: 'serial' }) as Parameters<typeof loadCudaSim>[0];
    expect(chunked.cu).toMatch(/wkv_chunked/);
    expect(serial.cu).not.toMatch(/wkv_chunked/);
    const inputs = {
      r: Float32Array.from({ length: T * C }, () => r() - 0.5),
      k: Float32Array.from({ length: T * C }, () => r() - 0.5),
      v: Float32Array.from({ length: T * C }, () => 2 * r() - 1),
      w: Float32Array.from({ length: T * C }, () => Math.exp(-Math.exp(-6 + 7 * r()))),
    };
    const run = async (art: typeof chunked) => {
      const m = (await loadCudaSim(art, provider)) as CudaModel;
      try {
        for (const [name, v] of Object.entries(inputs)) await m.writeBuffer('prefill', name, v);
        await m.run('prefill', new Int32Array(T));
        return { y: await m.readBuffer('prefill', 'y', T), state: (await m.readState())['state.0.wkv'] };
      } finally {
        m.dispose();
      }
    };
    const a = await run(chunked), b = await run(serial);
    const y = relErr(a.y, b.y), s = relErr(a.state, b.state);
    console.log(`chunked vs serial over ${T} tokens: y ${y.err.toExponential(1)} of ${y.scale.toFixed(1)}, state ${s.err.toExponential(1)} of ${s.scale.toFixed(1)}`);
    expect(y.err).toBeLessThanOrEqual(1e-4);
    expect(s.err).toBeLessThanOrEqual(1e-4);
  }, 300_000);
});
