/**
 * CUDA codegen without a compiler: the dialect (literals, non-finite values, every operator of
 * kernels/expr.ts), and the launch table (functions, parameter words = packParams' bytes, grids at T = 1
 * and T = maxT equal to the shared lowering's, weights, files round trip).
 */
import { describe, expect, it } from 'vitest';
import { modelPlan } from '../bench/model-plan.ts';
import { OPS, type OpName } from '../kernels/expr.ts';
import type { Expr } from '../kernels/plan.ts';
import { planPrograms } from '../kernels/program.ts';
import { PRESETS } from '../runtime/presets.ts';
import { f32Literal, printExpr } from '../targets/gpu/cprint.ts';
import { packParams, paramFields } from '../targets/gpu/keys.ts';
import { lowerPlan, weightRefId, type WeightRef } from '../targets/gpu/lower.ts';
import { artifactFiles, gridAt, openArtifact, paramBytes } from '../targets/cuda/artifact.ts';
import { CUDA_LIMITS, codegen, emitCuda, fitGrid } from '../targets/cuda/codegen.ts';
import { CUDA } from '../targets/cuda/dialect.ts';

describe('CUDA dialect', () => {
  it('prints f32 literals with a decimal point or exponent, and non-finite values by their bits', () => {
    expect(f32Literal(CUDA, 1)).toBe('1.0f');
    expect(f32Literal(CUDA, 0)).toBe('0.0f');
    expect(f32Literal(CUDA, -0)).toBe('(-0.0f)');
    expect(f32Literal(CUDA, 0.25)).toBe('0.25f');
    expect(f32Literal(CUDA, -2)).toBe('(-2.0f)');
    expect(f32Literal(CUDA, 1e-5)).toBe(`${Math.fround(1e-5)}f`);
    expect(f32Literal(CUDA, 64e-5)).toBe('0.0006399999838322401f');
    expect(f32Literal(CUDA, 1e21)).toBe('1.0000000200408773e+21f');
    expect(f32Literal(CUDA, 3e38)).toMatch(/e\+38f$/);
    expect(f32Literal(CUDA, NaN)).toBe('__uint_as_float(0x7fc00000u)');
    expect(f32Literal(CUDA, Infinity)).toBe('__uint_as_float(0x7f800000u)');
    expect(f32Literal(CUDA, -Infinity)).toBe('__uint_as_float(0xff800000u)');
    // every finite literal reads back as the same f32
    for (const v of [1, 0.1, 1e-5, 3.4028234663852886e38, 1.401298464324817e-45, 123456.789]) {
      const text = f32Literal(CUDA, v);
      expect(Math.fround(Number(text.replace(/f$/, '')))).toBe(Math.fround(v));
    }
  });

  it('prints every operator of kernels/expr.ts', () => {
    const expected: Record<OpName, string> = {
      add: 'const float e0 = acc + 2.0f;',
      sub: 'const float e0 = acc - 2.0f;',
      mul: 'const float e0 = acc * 2.0f;',
      neg: 'const float e0 = -acc;',
      tanh: 'const float e0 = tanh_f32(acc);',
      exp: 'const float e0 = expf(acc);',
      sigmoid: 'const float e0 = 1.0f / (1.0f + expf(-acc));',
      silu: 'const float e0 = acc / (1.0f + expf(-acc));',
      relu: 'const float e0 = relu_f32(acc);',
      square: 'const float e0 = acc * acc;',
    };
    for (const op of Object.keys(OPS) as OpName[]) {
      const args: Expr[] = OPS[op].arity === 2 ? [{ op: 'acc' }, { op: 'const', value: 2 }] : [{ op: 'acc' }];
      const p = printExpr(CUDA, { op, args } as Expr, { acc: 'acc', load: (k) => `ld_f32(mem + p.el${k} + yi)` }, 'e');
      expect(p.lines, op).toEqual([expected[op]]);
      expect(p.value).toBe('e0');
    }
    // loads are leaves (read once per use), shared operands are bound once
    const e: Expr = { op: 'add', args: [{ op: 'load', buf: '#0' }, { op: 'silu', args: [{ op: 'mul', args: [{ op: 'acc' }, { op: 'const', value: NaN }] }] }] };
    const p = printExpr(CUDA, e, { acc: 'acc', load: (k) => `ld_f32(mem + p.el${k} + yi)` }, 'ev');
    expect(p.lines).toEqual([
      'const float ev0 = acc * __uint_as_float(0x7fc00000u);',
      'const float ev1 = ev0 / (1.0f + expf(-ev0));',
      'const float ev2 = ld_f32(mem + p.el0 + yi) + ev1;',
    ]);
  });
});

describe('CUDA launch table', () => {
  const plan = modelPlan({ ...PRESETS['finch-tiny'], dtype: 'int8', batch: 3, prefillT: 40 });
  const a = emitCuda(plan);

  it('has a launch per lowered dispatch, with packParams words, the lowering grids at T = 1 and maxT, and its weights', () => {
    for (const [name, program] of [['decode', plan.decode], ['prefill', plan.prefill], ['batch', plan.batch!]] as const) {
      const lowered = lowerPlan(plan, program, CUDA_LIMITS, { device: 'CUDA device' });
      const steps = a.programs[name]!.steps;
      expect(steps.length).toBe(lowered.steps.length);
      lowered.steps.forEach((s, i) => {
        const l = steps[i];
        expect(l.kind).toBe(s.kind === 'dispatch' ? 'launch' : 'host_embed');
        if (s.kind !== 'dispatch' || l.kind !== 'launch') return;
        expect(l.kernel).toBe(s.kernel);
        const fn = a.functions[l.fn];
        const fields = paramFields(s.key);
        expect(fn.paramBytes).toBe(fields.length * 4);
        expect(fn.paramFields).toEqual(fields);
        expect(fn.weightArgs).toBe(s.weights.length);
        const packed = new Uint8Array(packParams(s.key, s.params)).subarray(0, fn.paramBytes);
        expect(paramBytes(l.params)).toEqual(packed);
        for (const T of [1, program.maxT]) expect(gridAt(l.grid, T), `${s.kernel} T=${T}`).toEqual(s.grid(T));
        expect(l.weights.map((w) => weightRefId(stripBytes(a.weights[w]) as WeightRef))).toEqual(s.weights.map(weightRefId));
        expect(a.cu).toContain(`extern "C" __global__ void __launch_bounds__(${fn.block[0]}) ${fn.name}(`);
      });
    }
    expect(a.programs.prefill.steps.some((s) => s.kind === 'launch' && a.functions[s.fn].name.endsWith('wkv_chunked'))).toBe(true);
    expect(a.programs.decode.steps.some((s) => s.kind === 'launch' && a.functions[s.fn].name.endsWith('wkv_chunked'))).toBe(false);
  });

  it('sizes every weight buffer and lays out memory as the shared lowering does', () => {
    const lowered = lowerPlan(plan, plan.decode, CUDA_LIMITS);
    expect(a.layout.elems).toBe(lowered.layout.elems);
    expect(a.layout.tokens).toBe(lowered.layout.tokens);
    expect(a.layout.arena).toBe(lowered.layout.arena);
    for (const w of a.weights) expect(w.bytes % 4).toBe(0);
    const used = new Set(Object.values(a.programs).flatMap((p) => p!.steps.flatMap((s) => (s.kind === 'launch' ? s.weights : [s.table]))));
    expect(used.size).toBe(a.weights.length);
  });

  it('fits grids of the form a + b·ceil(T/d)', () => {
    expect(fitGrid((T) => [7, Math.ceil(T / 32), T], 100, 'k')).toEqual({ x: { a: 7, b: 0, d: 1 }, y: { a: 0, b: 1, d: 32 }, z: { a: 0, b: 1, d: 1 } });
    expect(fitGrid(() => [1, 1, 1], 1, 'k').x).toEqual({ a: 1, b: 0, d: 1 });
    expect(() => fitGrid((T) => [T * T, 1, 1], 10, 'k')).toThrow(/not of the form/);
  });

  it('round-trips through its files, and prints one source per function', () => {
    const files = codegen.files(a);
    expect(Object.keys(files).sort()).toEqual(['launch.json', 'model.cu']);
    const back = openArtifact(Object.fromEntries(Object.entries(artifactFiles(a)).map(([k, v]) => [k, new TextEncoder().encode(v)])));
    expect(back).toEqual(a);
    const withPtx = openArtifact({ ...artifactFiles(a), 'sm_80.ptx': '.version 8.0' });
    expect(withPtx.ptx).toEqual({ sm_80: '.version 8.0' });
    const printed = codegen.print(a, plan);
    expect(printed.length).toBe(a.functions.length);
    const kernels = new Set(planPrograms(plan).flatMap((p) => p.kernels.map((k) => k.name)));
    for (const [i, s] of printed.entries()) {
      expect(s.code.startsWith(`// ==== ${a.functions[i].name}:`)).toBe(true);
      expect(s.code).toContain(`${a.functions[i].name}(float* __restrict__ mem`);
      for (const k of s.kernels) expect(kernels.has(k)).toBe(true);
    }
    expect(new Set(printed.flatMap((s) => s.kernels))).toEqual(kernels);
  });

  it('is deterministic', () => {
    expect(emitCuda(plan).cu).toBe(a.cu);
  });
});

function stripBytes<T extends { bytes: number }>(w: T): Omit<T, 'bytes'> {
  const { bytes: _, ...rest } = w;
  return rest;
}
