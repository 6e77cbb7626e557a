/**
 * `rwkvc bench --kernels` machinery at tiny sizes: every kernel kind is cut out of the real compiled
 * plan with exactly the weights it names, runs, and is reported with benchmark.js's statistics; linear
 * rows carry GB/s and GFLOP/s consistent with their weight bytes and time. Speeds are not asserted.
 */
import { describe, expect, it } from 'vitest';
import { benchKernels } from '../bench/kernels.ts';
import { singleKernelPlan } from '../bench/model-plan.ts';
import { modelPlan } from '../bench/model-plan.ts';
import { randomWeights } from '../runtime/random-model.ts';
import { PRESETS } from '../runtime/presets.ts';

const tiny = (dtype: 'f32' | 'int8') => modelPlan({ ...PRESETS['finch-tiny'], dtype, prefillT: 16 });

describe('bench --kernels', () => {
  it('a single-kernel plan keeps exactly the weights its kernels name', () => {
    const plan = tiny('f32');
    const k = plan.decode.kernels.find((x) => x.kind === 'linear' && x.layer === 0)!;
    const one = singleKernelPlan(plan, k, k);
    expect(one.decode.kernels).toEqual([k]);
    const named = k.kind === 'linear' ? k.groups.map((g) => g.w) : [];
    for (const w of named) expect(one.weights.map((x) => x.name)).toContain(w);
    expect(one.weights.length).toBeLessThan(plan.weights.length);
    expect(one.weights.some((w) => w.name === 'head.weight')).toBe(false);
  });

  it('times every kind on the wasm target with benchmark.js statistics', async () => {
    const r = await benchKernels({ plans: { f32: tiny('f32'), int8: tiny('int8') }, weights: (p) => randomWeights(p.config, 1), threads: 1, maxTime: 0.02, probeBytes: 32 * 2 ** 20 });
    // gpu.js ran too (CPU mode), its matvec's GB/s from its own time
    expect(r.gpujs && 'rows' in r.gpujs && r.gpujs.rows.map((g) => g.kernel)).toEqual(['matvec 128×128 f32', 'wkv step 2×64×64']);
    expect(r.gpujsGpuMode).toMatch(/headlessgl|gpu.js/);
    expect(r.machine).toMatch(/flags:/);
    for (const v of Object.values(r.limits)) expect(v).toBeGreaterThan(0);
    expect(new Set(r.rows.map((x) => x.kind))).toEqual(new Set(['linear', 'wkv', 'token_shift', 'layernorm']));
    expect(r.rows.filter((x) => x.kind === 'linear').map((x) => `${x.weights} ${x.program}`)).toEqual(['f32 decode', 'f32 prefill', 'int8 decode', 'int8 prefill']);
    for (const x of r.rows) {
      expect(x.meanMs).toBeGreaterThan(0);
      expect(x.samples).toBeGreaterThanOrEqual(5);
      expect(Number.isFinite(x.rmePct)).toBe(true);
      if (x.kind === 'linear') expect(x.gflops! / x.gbs!).toBeCloseTo((2 * x.tokens) / (x.weights === 'f32' ? 4 : 34 / 32), 6);
    }
  }, 120_000);
});
