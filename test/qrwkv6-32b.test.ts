/**
 * The 32B plan (QRWKV6-32B's shape, preset qrwkv6-32b-shape): it compiles, in under 2 s of CPU time
 * (process CPU time, not wall time: the machine is shared; after the compiler's code is loaded and warm,
 * by compiling the tiny preset first), to 7 kernels per layer, and the CUDA and WGSL
 * codegens render it; `inspect --scale`'s numbers against formulas written here from docs/qrwkv6.md.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { AnyModelConfig } from '../kernels/config.ts';
import type { KernelPlan } from '../kernels/plan.ts';
import { PRESETS } from '../runtime/presets.ts';
import { qrwkv6Tensors } from '../runtime/checkpoint/hf-qrwkv6.ts';
import { buildGraph } from '../driver/dsl.ts';
import { compileGraph } from '../compiler/index.ts';
import { getTarget } from '../targets/registry.ts';
import { DEFAULT_LIMITS, lowerPlan } from '../targets/gpu/lower.ts';
import { H200_BYTES, scaleReport } from '../cli/inspect-scale.ts';

const cfg = PRESETS['qrwkv6-32b-shape'] as AnyModelConfig;
const DSL = join(import.meta.dirname, '..', 'examples', 'qrwkv6.ts');

/** CPU milliseconds this process spends in f. */
async function cpuMs<T>(f: () => T | Promise<T>): Promise<[T, number]> {
  const c0 = process.cpuUsage();
  const r = await f();
  const c = process.cpuUsage(c0);
  return [r, (c.user + c.system) / 1000];
}

describe('the QRWKV6-32B plan', () => {
  const plans = new Map<string, KernelPlan>();
  it('compiles in under 2 s of CPU time to 7 kernels per layer', async () => {
    expect(cfg).toMatchObject({ nLayer: 64, nEmbd: 5120, nHead: 40, nKvHead: 8, headSize: 128, dimFfn: 27648, vocabSize: 152064 });
    // warm: loading modules and JIT-compiling the compiler is not compiling this model
    compileGraph(await buildGraph(DSL, PRESETS['qrwkv6-tiny']), PRESETS['qrwkv6-tiny'], { weights: 'bf16', logits: 'last' });
    // the better of two runs: other processes on a shared machine slow even CPU time (caches, frequency)
    const runs = [];
    for (let i = 0; i < 2; i++) runs.push(await cpuMs(async () => compileGraph(await buildGraph(DSL, cfg), cfg, { weights: 'bf16', logits: 'last' }).plan));
    const [plan] = runs[0], ms = Math.min(...runs.map((r) => r[1]));
    console.log(`QRWKV6-32B: DSL → plan in ${runs.map((r) => r[1].toFixed(0)).join(' / ')} ms of CPU time`);
    expect(ms).toBeLessThan(2000);
    plans.set('bf16', plan);
    for (const p of [plan.decode, plan.prefill]) {
      for (let l = 0; l < 64; l++) expect(p.kernels.filter((k) => k.layer === l).map((k) => k.kind)).toEqual(
        ['token_shift', 'linear', 'wkv', 'linear', 'layernorm', 'linear', 'linear']);
      expect(p.kernels.length).toBe(64 * 7 + 3);
    }
  }, 120_000);

  it('the CUDA and WGSL codegens render it (WGSL under the default limits: the 161 MiB state in parts of at most 128 MiB)', async () => {
    const plan = plans.get('bf16') ?? compileGraph(await buildGraph(DSL, cfg), cfg, { weights: 'bf16', logits: 'last' }).plan;
    const cuda = await getTarget('cuda').codegen!();
    const [art, ms] = await cpuMs(() => cuda.emit(plan, {}));
    console.log(`QRWKV6-32B: CUDA source in ${ms.toFixed(0)} ms of CPU time`);
    expect(Object.keys(cuda.files(art))).toContain('model.cu');
    const wgsl = await getTarget('wgsl').codegen!();
    expect(wgsl.print(wgsl.emit(plan, {}), plan).length).toBeGreaterThan(5);
    const { layout } = lowerPlan(plan, plan.decode, DEFAULT_LIMITS);
    expect(layout.stateElems * 4).toBe(64 * (5120 + 40 * 128 * 128) * 4);
    expect(layout.parts.length).toBe(2);
    for (const p of layout.parts) expect(p.elems * 4).toBeLessThanOrEqual(DEFAULT_LIMITS.maxStorageBufferBindingSize);
    const big = { maxStorageBufferBindingSize: 2 ** 31 - 4, maxBufferSize: 2 ** 31 - 4, maxStorageBuffersPerShaderStage: 10, maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupsPerDimension: 65535 };
    expect(wgsl.print(wgsl.emit(plan, { limits: big }), plan).length).toBeGreaterThan(5);
  }, 120_000);

  it('inspect --scale: weight and per-token bytes, state against a same-shape transformer\'s KV cache, sequences per H200', async () => {
    const graph = await buildGraph(DSL, cfg);
    const formats = ['bf16', 'int8', 'q4_0'] as const;
    const r = scaleReport(formats.map((format) => ({ format, plan: plans.get(format) ?? compileGraph(graph, cfg, { weights: format, logits: 'last' }).plan })));
    const { nLayer: L, nEmbd: C, nHead: H, headSize: N, vocabSize: V } = cfg, KV = cfg.nKvHead!;
    expect(r.stateBytes).toBe(L * (C + H * N * N) * 4);
    expect(r.kvCacheBytes[4096]).toBe(2 * L * KV * N * 4096 * 2);
    expect(r.kvCacheBytes[32768]).toBe(2 * L * KV * N * 32768 * 2);
    // every checkpoint tensor once (k/v projections H/KV times: their repeat is folded into the weight),
    // vectors in f32, the embedding f16 under 8 and 4 bits
    const per = { bf16: 2, int8: 34 / 32, q4_0: 18 / 32 };
    formats.forEach((f, i) => {
      let bytes = 0;
      for (const [name, shape] of qrwkv6Tensors(cfg)) {
        const n = shape.reduce((a, b) => a * b, 1) * (/[kv]_proj/.test(name) ? H / KV : 1);
        bytes += shape.filter((d) => d > 1).length < 2 ? n * 4 : name === 'model.embed_tokens.weight' && f !== 'bf16' ? n * 2 : n * per[f];
      }
      expect(r.formats[i].weightBytes).toBeCloseTo(bytes, -3);
      const table = V * C * (f === 'bf16' ? 2 : 2);
      expect(r.formats[i].tokenBytes).toBeCloseTo(bytes - table + table / V, -3);
      expect(r.formats[i].h200.rwkv).toBe(Math.floor((H200_BYTES * 0.95 - r.formats[i].weightBytes) / r.stateBytes));
      expect(r.formats[i].h200.transformer[32768]).toBe(Math.floor((H200_BYTES * 0.95 - r.formats[i].weightBytes) / r.kvCacheBytes[32768]));
    });
  }, 300_000);
});
