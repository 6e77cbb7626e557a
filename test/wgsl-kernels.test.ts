/**
 * What only the WGSL target has, on Dawn (SwiftShader when there is no GPU): embeddings gathered on the
 * host; the split paths for tensors larger than a (lowered) binding limit; device-limit errors; linear
 * groups sharing a dispatch; shaders that compile without warnings; pre-rendered shaders; benchWgsl's
 * counts. Every kernel kind, format and Expr op against the reference, and whole models on the official
 * fixtures, are the conformance suite's (test/targets/), which runs this target like every other.
 *
 * Tolerance: |gpu − ref| ≤ 1e-5 · max(1, |ref|), as the conformance suite's for WGSL
 * (test/helpers/conformance.ts). Quantised weights are compared with the reference run on
 * `dequantize(w, cols, dtype)` values, which are exactly the values the shaders widen to f32.
 */
import { afterAll, describe, expect, it } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { dequantize } from '../kernels/dtype.ts';
import type { BufferDecl, Dim, Expr, Kernel, KernelPlan, Program, WeightDType } from '../kernels/plan.ts';
import { runKernel } from '../kernels/reference.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { UserError } from '../kernels/errors.ts';
import { benchWgsl } from '../bench/wgsl-bench.ts';
import { emitWgsl } from '../targets/wgsl/codegen.ts';
import { f32Literal } from '../targets/gpu/cprint.ts';
import { WGSL } from '../targets/wgsl/dialect.ts';
import { DEFAULT_LIMITS, lowerPlan, type Limits } from '../targets/gpu/lower.ts';
import type { WgslModel, WgslOptions } from '../targets/wgsl/runtime.ts';
import { loadPlan, type PlanLoadOptions } from '../driver/targets.ts';
import type { WeightProvider } from '../targets/backend.ts';

/** A plan on the WGSL target through the driver (codegen for the device's limits, then the runtime). */
const loadWgslTarget = (plan: KernelPlan, w: WeightProvider, o: WgslOptions = {}) =>
  loadPlan('wgsl', plan, w, o as PlanLoadOptions) as Promise<WgslModel>;
import { compilationMessages, acquireTestGpu } from './helpers/gpu.ts';
import { tinyConfig } from './helpers/models.ts';
import { randomTensors } from '../runtime/random-model.ts';

const { gpu, skip } = await acquireTestGpu();
const TOL = 1e-5;

// ---------------------------------------------------------------------------------------------------
// Hand-built single-kernel programs

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
}

interface Case {
  kernels: Kernel[];
  /** Activation buffers (and state with role 'state'); 'tokens' [T] is added. */
  buffers: Record<string, { shape: Dim[]; role?: 'state' | 'activation' }>;
  /** Weights: shape, storage dtype (default f32), value scale (default 1/√(last dim)). */
  weights: Record<string, { shape: number[]; dtype?: WeightDType; scale?: number; offset?: number }>;
}

const elems = (shape: Dim[], T: number) => shape.reduce<number>((n, d) => n * (d === 'T' ? T : d), 1);
const CONFIG: ModelConfig = { nLayer: 1, nEmbd: 64, headSize: 64, nHead: 1, dimFfn: 64, vocabSize: 1000, loraMix: 8, loraDecay: 8 };

function program(c: Case, maxT: number): Program {
  const buffers: BufferDecl[] = [{ name: 'tokens', dtype: 'i32', shape: ['T'], role: 'input' }];
  let at = 0;
  for (const [name, b] of Object.entries(c.buffers)) {
    const role = b.role ?? 'activation';
    buffers.push({ name, dtype: 'f32', shape: b.shape, role, ...(role === 'activation' ? { offset: at } : {}) });
    if (role === 'activation') at += Math.ceil((elems(b.shape, maxT) * 4) / 256) * 256;
  }
  return { maxT, kernels: c.kernels, buffers, activationPeakBytes: at };
}

function makePlan(c: Case, maxT: number): { plan: KernelPlan; values: Map<string, Float32Array> } {
  const r = rng(1234);
  const values = new Map<string, Float32Array>();
  for (const [name, w] of Object.entries(c.weights)) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    const scale = w.scale ?? 1 / Math.sqrt(w.shape[w.shape.length - 1]);
    values.set(name, Float32Array.from({ length: n }, () => (w.offset ?? 0) + (2 * r() - 1) * scale));
  }
  const plan: KernelPlan = {
    format: 'rwkvc-plan', version: 1, model: 'test', config: CONFIG,
    weights: Object.entries(c.weights).map(([name, w]) => ({
      name, shape: w.shape, dtype: w.dtype ?? 'f32', source: { tensor: name, stored: w.shape },
    })),
    decode: program(c, 1),
    prefill: program(c, maxT),
  };
  return { plan, values };
}

async function loadCase(c: Case, maxT: number, opts: WgslOptions = {}) {
  const { plan, values } = makePlan(c, maxT);
  const model = await loadWgslTarget(plan, (d) => values.get(d.name)!, { device: gpu!.device, ...opts });
  for (const s of model.shaders) expect(s.messages, s.key).toEqual([]);
  return { plan, values, model };
}

/**
 * Fill every buffer with random values, run one program call on the GPU and the reference kernels on
 * the same inputs, and return the largest error relative to max(1, |ref|) over every buffer.
 */
async function runAndCompare(
  model: WgslModel, plan: KernelPlan, values: Map<string, Float32Array>, which: 'decode' | 'prefill', T: number, seed = 7,
): Promise<number> {
  const P = plan[which];
  const r = rng(seed);
  const ref = new Map<string, Float64Array>();
  for (const b of P.buffers) {
    if (b.role === 'input') continue;
    const v = Float32Array.from({ length: elems(b.shape, T) }, () => 2 * r() - 1);
    model.writeBuffer(which, b.name, v);
    ref.set(b.name, Float64Array.from(v));
  }
  const vocab = plan.weights.find((w) => P.kernels.some((k) => k.kind === 'embed' && k.table === w.name))?.shape[0] ?? 1;
  const tokens = Int32Array.from({ length: T }, () => Math.floor(r() * vocab));
  await model.run(which, tokens);
  const deq = new Map(plan.weights.map((d) => [d.name, dequantize(values.get(d.name)!, d.shape[d.shape.length - 1], d.dtype)]));
  const env = { T, buf: (n: string) => ref.get(n)!, tokens: () => tokens, weight: (n: string) => deq.get(n)! };
  for (const k of P.kernels) runKernel(k, env);
  let worst = 0;
  for (const [name, want] of ref) {
    const got = await model.readBuffer(which, name, T);
    for (let i = 0; i < want.length; i++) {
      const e = Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i]));
      if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
    }
  }
  return worst;
}

/** Load a case and check it in decode (T = 1) and prefill at each T. */
async function checkCase(c: Case, prefillTs: number[], opts: WgslOptions = {}) {
  const maxT = Math.max(...prefillTs);
  const { plan, values, model } = await loadCase(c, maxT, opts);
  try {
    expect(await runAndCompare(model, plan, values, 'decode', 1)).toBeLessThan(TOL);
    for (const T of prefillTs) expect(await runAndCompare(model, plan, values, 'prefill', T, 11 + T), `T = ${T}`).toBeLessThan(TOL);
    return model;
  } finally {
    model.dispose();
  }
}

const acc: Expr = { op: 'acc' };
const x: Expr = { op: 'x' };
const load = (buf: string): Expr => ({ op: 'load', buf });
const bin = (op: 'add' | 'sub' | 'mul', a: Expr, b: Expr): Expr => ({ op, args: [a, b] });
const un = (op: 'neg' | 'tanh' | 'exp' | 'sigmoid' | 'silu' | 'relu' | 'square', a: Expr): Expr => ({ op, args: [a] });
const common = { layer: 0, src: [] as string[] };

// ---------------------------------------------------------------------------------------------------

describe.skipIf(!gpu)(`WGSL kernels vs the reference${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(() => gpu?.release());

  describe('embed', () => {
    for (const [dtype, C] of [['f32', 70], ['f16', 70], ['bf16', 70], ['int8', 96]] as const) {
      it(`${dtype} table [50, ${C}], gathered on the host`, async () => {
        const c: Case = {
          kernels: [{ ...common, kind: 'embed', name: 'emb', tokens: 'tokens', table: 'E', out: 'y' }],
          buffers: { y: { shape: ['T', C] } },
          weights: { E: { shape: [50, C], dtype, scale: 1 } },
        };
        const model = await checkCase(c, [1, 5], { embedOnHost: true });
        expect(model.steps('decode')[0].kind).toBe('host_embed');
        // profile() runs each step alone, the host gather too, and times it
        const { model: m } = await loadCase(c, 5, { embedOnHost: true });
        try {
          const prof = await m.profile('decode', Int32Array.of(5));
          expect(prof.map((p) => p.key)).toEqual(['host_embed']);
          expect(prof[0].ms).toBeGreaterThanOrEqual(0);
        } finally {
          m.dispose();
        }
      });
    }
  });

  describe('linear', () => {
    it('f32 literals: rounding, signs and non-finite constants', () => {
      expect(f32Literal(WGSL, 0.1)).toBe(`${Math.fround(0.1)}f`);
      expect(f32Literal(WGSL, -2)).toBe('(-2f)');
      expect(f32Literal(WGSL, 1e-7)).toBe(`${Math.fround(1e-7)}f`);
      expect(f32Literal(WGSL, Infinity)).toBe('bitcast<f32>(0x7f800000u)');
      expect(f32Literal(WGSL, NaN)).toBe('bitcast<f32>(0x7fc00000u)');
    });
  });

  describe('device limits', () => {
    const head = (dtype: WeightDType): Case => ({
      kernels: [
        { ...common, kind: 'embed', name: 'emb', tokens: 'tokens', table: 'E', out: 'x' },
        { ...common, kind: 'linear', name: 'head', rows: 'last', groups: [{ x: 'x', w: 'H', y: 'logits' }] },
      ],
      buffers: { x: { shape: ['T', 128] }, logits: { shape: [1, 600] } },
      weights: { E: { shape: [600, 128], dtype, scale: 1 }, H: { shape: [600, 128], dtype } },
    });

    for (const dtype of ['f32', 'f16'] as const) {
      it(`a ${dtype} head and embedding larger than a 64 KiB binding: row pieces over 2 dispatches, host embedding`, async () => {
        const limits: Partial<Limits> = { maxStorageBufferBindingSize: 64 << 10, maxStorageBuffersPerShaderStage: 4 };
        const model = await checkCase(head(dtype), [1, 3], { limits });
        const steps = model.steps('decode');
        expect(steps[0].kind).toBe('host_embed');
        const dispatches = steps.filter((s) => s.kind === 'dispatch');
        const rowsPerPiece = Math.floor((64 << 10) / (128 * (dtype === 'f32' ? 4 : 2)));
        const pieces = Math.ceil(600 / rowsPerPiece);
        expect(dispatches.flatMap((s) => s.weights).length).toBe(pieces);
        expect(dispatches.length).toBe(Math.ceil(pieces / 3)); // 3 weight bindings + mem per shader
        for (const s of dispatches) for (const w of s.weights) if (w.kind === 'rows') expect(w.rows * 128 * (dtype === 'f32' ? 4 : 2)).toBeLessThanOrEqual(64 << 10);
      });
    }

    it('groups spread over dispatches when storage bindings are few; matvec grid folded into 2-D', async () => {
      const groups = Array.from({ length: 5 }, (_, i) => ({ x: 'x', w: `W${i}`, y: `y${i}`, epilogue: un('silu', acc) }));
      const model = await checkCase({
        kernels: [{ ...common, kind: 'linear', name: 'five', rows: 'all', groups }],
        buffers: { x: { shape: ['T', 512] }, ...Object.fromEntries(groups.map((g) => [g.y, { shape: ['T', 100] as Dim[] }])) },
        weights: Object.fromEntries(groups.map((g) => [g.w, { shape: [100, 512] }])),
      }, [1, 2], { limits: { maxStorageBuffersPerShaderStage: 3, maxComputeWorkgroupsPerDimension: 8 } });
      expect(model.dispatchCount('decode')).toBe(3); // 2 + 2 + 1 groups
      const grid = (model.steps('decode')[0] as { grid(T: number): number[] }).grid(1);
      // 512 inputs: 16 invocations per row, 16 rows per workgroup; 2 groups × ceil(100 / 16) = 14 workgroups
      expect(grid).toEqual([8, 2, 1]);
    });

    it('a kernel whose invocations would race (one group reading another group\'s output) is refused', async () => {
      const { plan, values } = makePlan({
        kernels: [{
          ...common, kind: 'linear', name: 'racy', rows: 'all', groups: [
            { x: 'x', w: 'W0', y: 'y0' },
            { x: 'x', w: 'W1', y: 'y1', epilogue: bin('add', acc, load('y0')) },
          ],
        }],
        buffers: { x: { shape: ['T', 8] }, y0: { shape: ['T', 8] }, y1: { shape: ['T', 8] } },
        weights: { W0: { shape: [8, 8] }, W1: { shape: [8, 8] } },
      }, 2);
      await expect(loadWgslTarget(plan, (d) => values.get(d.name)!, { device: gpu!.device })).rejects.toThrow(/racy: output y0 overlaps input y0/);
    });

    it('a device that cannot run the model raises a UserError naming the limit and the tensor', async () => {
      const fail = async (c: Case, limits: Partial<Limits>) => {
        const { plan, values } = makePlan(c, 2);
        return loadWgslTarget(plan, (d) => values.get(d.name)!, { device: gpu!.device, limits }).then(
          (m) => { m.dispose(); throw new Error('loaded'); },
          (e: unknown) => e,
        );
      };
      const ts: Case = {
        kernels: [{
          ...common, kind: 'token_shift', name: 'L0.ts', x: 'x', ln: null, shiftIn: 's', shiftOut: 's', mix: ['m0'],
          lora: { mu: 'mu', a: 'A', b: 'B', dim: 64 }, outs: ['o0'],
        }],
        buffers: { x: { shape: ['T', 64] }, s: { shape: [64], role: 'state' }, o0: { shape: ['T', 64] } },
        weights: { m0: { shape: [64] }, mu: { shape: [64] }, A: { shape: [64, 64] }, B: { shape: [1, 64, 64] } },
      };
      let e = await fail(ts, { maxStorageBufferBindingSize: 8 << 10 });
      expect(e).toBeInstanceOf(UserError);
      expect(String(e)).toMatch(/maxStorageBufferBindingSize = 8192 .*L0\.ts.*\bA\b/);
      e = await fail(ts, { maxStorageBuffersPerShaderStage: 3 });
      expect(e).toBeInstanceOf(UserError);
      expect(String(e)).toMatch(/maxStorageBuffersPerShaderStage = 3 .*L0\.ts/);
      e = await fail(ts, { maxComputeWorkgroupStorageSize: 4096 });
      expect(String(e)).toMatch(/maxComputeWorkgroupStorageSize = 4096 .*L0\.ts/);
      e = await fail(head('f32'), { maxStorageBufferBindingSize: 1024 });
      expect(e).toBeInstanceOf(UserError);
      expect(String(e)).toMatch(/maxStorageBufferBindingSize = 1024 bytes is too small for this model's f32 memory/);
    });
  });

  // -------------------------------------------------------------------------------------------------
  // Whole compiled models

  describe('compiled Finch plans', () => {
    const cfg = tinyConfig({ nLayer: 2 });
    const read = randomTensors(cfg, 3);

    it('a Finch decode step: one command buffer of 1 + 7 per layer + 2 dispatches and one copy (the logits)', async () => {
      const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f16', logits: 'all', chunk: 6 });
      const model = await loadWgslTarget(plan, (d) => materializeWeight(d.source, read), { device: gpu!.device });
      try {
        await model.run('decode', Int32Array.of(5));
        // embed, 7 dispatches per layer, final LayerNorm, head
        expect(model.dispatchCount('decode')).toBe(1 + 7 * cfg.nLayer + 2);
        expect(model.stats.last).toEqual({ dispatches: 1 + 7 * cfg.nLayer + 2, commandBuffers: 1, copies: 1 });
      } finally {
        model.dispose();
      }
    });

    it('benchWgsl counts dispatches and command buffers per token', async () => {
      const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f16', logits: 'last', chunk: 8 });
      const r = await benchWgsl({ plan, weights: (d) => materializeWeight(d.source, read), device: gpu!.device, decodeSteps: 2, prefillRuns: 1, warmup: 1 });
      expect(r.decode.dispatchesPerToken).toBe(1 + 7 * cfg.nLayer + 2);
      expect(r.decode.commandBuffersPerToken).toBe(1);
      expect(r.prefill.tokensPerCall).toBe(8);
      expect(r.prefill.dispatchesPerToken).toBe((1 + 7 * cfg.nLayer + 2) / 8);
      expect(r.decode.tokPerS).toBeGreaterThan(0);
      expect(r.prefill.tokPerS).toBeGreaterThan(0);
      console.log(`benchWgsl (${r.adapter}, not a performance assertion): ${JSON.stringify(r)}`);
    });

    it.each(['f32', 'bf16', 'f16', 'int8'] as const)('every shader of a plan compiles without errors or warnings (%s weights, emitWgsl, default WebGPU limits)', async (weights) => {
      const { plan } = compileGraph(finch(cfg), cfg, { weights, logits: 'last', chunk: 16 });
      const shaders = emitWgsl(plan);
      // Decode and prefill share all but the linear shaders; every layer shares one pipeline per kind.
      expect(shaders.length).toBeLessThanOrEqual(14);
      for (const s of shaders) {
        const module = gpu!.device.createShaderModule({ code: s.code });
        expect(await compilationMessages(module), s.key).toEqual([]);
      }
    });

    it('pre-rendered shaders are used as given', async () => {
      const c: Case = {
        kernels: [{ ...common, kind: 'layernorm', name: 'ln', rows: 'all', x: 'x', w: 'w', b: 'b', eps: 1e-5, out: 'y' }],
        buffers: { x: { shape: ['T', 64] }, y: { shape: ['T', 64] } },
        weights: { w: { shape: [64] }, b: { shape: [64] } },
      };
      const { plan } = makePlan(c, 2);
      const shaders = Object.fromEntries(emitWgsl(plan).map((s) => [s.key, s.code.replace('// Generated by rwkvc', '// Pre-rendered by rwkvc')]));
      const model = await checkCase(c, [2], { shaders });
      expect(model.shaders.length).toBe(1);
      expect(model.shaders[0].code).toContain('// Pre-rendered by rwkvc');
    });
  });
});

describe('WGSL lowering of linear kernels (no GPU)', () => {
  const lowered = (c: Case, which: 'decode' | 'prefill') => {
    const { plan } = makePlan(c, 5);
    return lowerPlan(plan, plan[which], DEFAULT_LIMITS, { device: 'WebGPU device' }).steps;
  };
  const dispatches = (c: Case, which: 'decode' | 'prefill') => lowered(c, which).filter((s) => s.kind === 'dispatch').length;

  it('the groups of one kernel share one dispatch in decode (matvec) and prefill (matmul), with epilogues reading their own output', () => {
    for (const rows of ['all', 'last'] as const) {
      const c: Case = {
        kernels: [{ ...common, kind: 'linear', name: 'lin', rows, groups: [
          { x: 'x0', w: 'W0', y: 'y0' },
          { x: 'x1', w: 'W1', y: 'y1', epilogue: bin('add', acc, load('y1')) },
        ] }],
        buffers: { x0: { shape: ['T', 70] }, x1: { shape: ['T', 161] }, y0: { shape: [rows === 'last' ? 1 : 'T', 37] }, y1: { shape: [rows === 'last' ? 1 : 'T', 130] } },
        weights: { W0: { shape: [37, 70] }, W1: { shape: [130, 161] } },
      };
      expect(dispatches(c, 'decode'), rows).toBe(1);
      expect(dispatches(c, 'prefill'), rows).toBe(1);
    }
  });

  it('six groups, each with a prologue and an epilogue, are one dispatch', () => {
    const groups = Array.from({ length: 6 }, (_, i) => ({ x: 'x', w: `W${i}`, y: `y${i}`, prologue: un('tanh', x), epilogue: bin('add', acc, load('e')) }));
    const c: Case = {
      kernels: [{ ...common, kind: 'linear', name: 'ops', rows: 'all', groups }],
      buffers: { x: { shape: ['T', 64] }, e: { shape: ['T', 40] }, ...Object.fromEntries(groups.map((g) => [g.y, { shape: ['T', 40] as Dim[] }])) },
      weights: Object.fromEntries(groups.map((g) => [g.w, { shape: [40, 64] }])),
    };
    expect(dispatches(c, 'decode')).toBe(1);
  });

  it('an embedding that fits one binding is gathered by a dispatch', () => {
    const c: Case = {
      kernels: [{ ...common, kind: 'embed', name: 'emb', tokens: 'tokens', table: 'E', out: 'y' }],
      buffers: { y: { shape: ['T', 70] } },
      weights: { E: { shape: [50, 70], dtype: 'f16' } },
    };
    expect(lowered(c, 'decode')[0].kind).toBe('dispatch');
  });
});
