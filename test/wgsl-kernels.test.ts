/**
 * The WGSL target on Dawn (SwiftShader when there is no GPU): every kernel kind, every weight format and
 * every Expr op against the reference semantics (kernels/reference.ts, f64), in decode (T = 1, matvec)
 * and prefill (T > 1, tiled matmul); the split paths for tensors larger than a (lowered) binding limit;
 * device-limit errors; and whole compiled Finch plans against the plan target and the official numbers.
 *
 * Tolerance: |gpu − ref| ≤ 1e-5 · max(1, |ref|). The GPU computes in f32 (2^-24 ≈ 6e-8 relative rounding
 * per operation); the longest sums here have ≤ ~1100 terms of O(1/√n)-scaled products, whose rounding
 * error grows like √n·2^-24 (≈ 2e-6 at worst, tree and strided sums are better); exp/tanh/sqrt are a few
 * ulp. Observed errors are ~1e-6. Any indexing or synchronisation bug moves results by O(1), far outside.
 * Quantised weights are compared with the reference run on `dequantize(w, cols, dtype)` values, which
 * are exactly the values the shaders widen to f32, so the same f32 tolerance applies.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { dequantize } from '../kernels/dtype.ts';
import type { BufferDecl, Dim, Expr, Kernel, KernelPlan, Program, WeightDType } from '../kernels/plan.ts';
import { runKernel } from '../kernels/reference.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { UserError } from '../kernels/errors.ts';
import { openModel } from '../runtime/model.ts';
import { parseMode, runTokens } from '../runtime/run-tokens.ts';
import { loadPlanTarget } from '../targets/plan/runtime.ts';
import { benchWgsl } from '../bench/wgsl-bench.ts';
import { emitWgsl } from '../targets/wgsl/codegen.ts';
import { f32Literal } from '../targets/gpu/cprint.ts';
import { WGSL } from '../targets/wgsl/dialect.ts';
import type { Limits } from '../targets/gpu/lower.ts';
import type { WgslModel, WgslOptions } from '../targets/wgsl/runtime.ts';
import { loadPlan, type PlanLoadOptions } from '../driver/targets.ts';
import type { WeightProvider } from '../targets/backend.ts';

/** A plan on the WGSL target through the driver (codegen for the device's limits, then the runtime). */
const loadWgslTarget = (plan: KernelPlan, w: WeightProvider, o: WgslOptions = {}) =>
  loadPlan('wgsl', plan, w, o as PlanLoadOptions) as Promise<WgslModel>;
import { compareRun, FIXTURES, FIXTURE_NAMES, maxAbsDiff, readGolden } from './helpers/golden.ts';
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
const cst = (value: number): Expr => ({ op: 'const', value });
const bin = (op: 'add' | 'sub' | 'mul', a: Expr, b: Expr): Expr => ({ op, args: [a, b] });
const un = (op: 'neg' | 'tanh' | 'exp' | 'sigmoid' | 'silu' | 'relu' | 'square', a: Expr): Expr => ({ op, args: [a] });
const common = { layer: 0, src: [] as string[] };

// ---------------------------------------------------------------------------------------------------

describe.skipIf(!gpu)(`WGSL kernels vs the reference${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(() => gpu?.release());

  describe('embed', () => {
    for (const [dtype, C] of [['f32', 70], ['f16', 70], ['bf16', 70], ['int8', 96]] as const) {
      for (const onHost of [false, true]) {
        it(`${dtype} table [50, ${C}], ${onHost ? 'gathered on the host' : 'on the GPU'}`, async () => {
          const model = await checkCase({
            kernels: [{ ...common, kind: 'embed', name: 'emb', tokens: 'tokens', table: 'E', out: 'y' }],
            buffers: { y: { shape: ['T', C] } },
            weights: { E: { shape: [50, C], dtype, scale: 1 } },
          }, [1, 5], { embedOnHost: onHost });
          expect(model.steps('decode')[0].kind).toBe(onHost ? 'host_embed' : 'dispatch');
        });
      }
    }
  });

  describe('layernorm', () => {
    for (const [rows, C] of [['all', 70], ['last', 70], ['all', 1100], ['last', 1100]] as const) {
      it(`rows ${rows}, C = ${C}`, async () => {
        await checkCase({
          kernels: [{ ...common, kind: 'layernorm', name: 'ln', rows, x: 'x', w: 'w', b: 'b', eps: 1e-5, out: 'y' }],
          buffers: { x: { shape: ['T', C] }, y: { shape: [rows === 'last' ? 1 : 'T', C] } },
          weights: { w: { shape: [C], scale: 0.5, offset: 1 }, b: { shape: [C], scale: 0.5 } },
        }, [1, 4]);
      });
    }
  });

  describe('token_shift', () => {
    const cases = [
      { name: 'LN + ddlerp LoRA (5 outputs, D 8), C 128', C: 128, S: 5, D: 8, ln: true, alias: false },
      { name: 'LN + ddlerp LoRA (5 outputs, D 32), C 1088 (two staging passes), shiftOut = shiftIn', C: 1088, S: 5, D: 32, ln: true, alias: true },
      { name: 'LN + 2 lerps (ChannelMix), C 128, shiftOut = shiftIn', C: 128, S: 2, D: 0, ln: true, alias: true },
      { name: 'no LN, 2 lerps, C 70', C: 70, S: 2, D: 0, ln: false, alias: false },
      { name: 'no LN, LoRA (3 outputs, D 4), C 64', C: 64, S: 3, D: 4, ln: false, alias: true },
    ];
    for (const t of cases) {
      it(t.name, async () => {
        const outs = Array.from({ length: t.S }, (_, s) => `o${s}`);
        const mix = outs.map((_, s) => `mix${s}`);
        const weights: Case['weights'] = Object.fromEntries(mix.map((m) => [m, { shape: [t.C], scale: 0.5, offset: 0.5 }]));
        if (t.ln) Object.assign(weights, { lnw: { shape: [t.C], scale: 0.5, offset: 1 }, lnb: { shape: [t.C], scale: 0.5 } });
        if (t.D) Object.assign(weights, { mu: { shape: [t.C], scale: 0.5, offset: 0.5 }, A: { shape: [t.S * t.D, t.C] }, B: { shape: [t.S, t.C, t.D] } });
        await checkCase({
          kernels: [{
            ...common, kind: 'token_shift', name: 'ts', x: 'x', ln: t.ln ? { w: 'lnw', b: 'lnb', eps: 1e-5 } : null,
            shiftIn: 'shift', shiftOut: t.alias ? 'shift' : 'shift2', mix,
            lora: t.D ? { mu: 'mu', a: 'A', b: 'B', dim: t.D } : null, outs,
          }],
          buffers: {
            x: { shape: ['T', t.C] }, shift: { shape: [t.C], role: 'state' },
            ...(t.alias ? {} : { shift2: { shape: [t.C], role: 'state' as const } }),
            ...Object.fromEntries(outs.map((o) => [o, { shape: ['T', t.C] as Dim[] }])),
          },
          weights,
        }, [1, 4]);
      });
    }
  });

  describe('wkv', () => {
    const cases = [
      { name: 'Finch: LoRA decay, bonus u, read_first, GroupNorm, gate; N 64, C 128', N: 64, C: 128, lora: 16, u: true, order: 'read_first', kds: false, rScale: 1, norm: true, gate: true },
      { name: 'QRWKV6-like: direct decay, update_first, k·(1−w), r/√N; N 32, C 96', N: 32, C: 96, lora: 0, u: false, order: 'update_first', kds: true, rScale: 1 / Math.sqrt(32), norm: false, gate: false },
      { name: 'read_first with u, gate, no norm; N 16, C 48', N: 16, C: 48, lora: 0, u: true, order: 'read_first', kds: false, rScale: 1, norm: false, gate: true },
      { name: 'update_first with LoRA decay and GroupNorm; N 64, C 64', N: 64, C: 64, lora: 8, u: false, order: 'update_first', kds: false, rScale: 0.5, norm: true, gate: false },
    ] as const;
    for (const t of cases) {
      it(t.name, async () => {
        const weights: Case['weights'] = {};
        if (t.u) weights.u = { shape: [t.C], scale: 0.5 };
        if (t.lora) Object.assign(weights, { base: { shape: [t.C], scale: 1 }, B: { shape: [t.C, t.lora] } });
        if (t.norm) Object.assign(weights, { nw: { shape: [t.C], scale: 0.5, offset: 1 }, nb: { shape: [t.C], scale: 0.5 } });
        await checkCase({
          kernels: [{
            ...common, kind: 'wkv', name: 'wkv', headSize: t.N, r: 'r', k: 'k', v: 'v',
            decay: t.lora ? { kind: 'lora', z: 'z', b: 'B', base: 'base', dim: t.lora } : { kind: 'direct', w: 'w' },
            u: t.u ? 'u' : null, order: t.order, kDecayScale: t.kds, rScale: t.rScale, state: 'S',
            norm: t.norm ? { w: 'nw', b: 'nb', eps: 64e-5 } : null, gate: t.gate ? 'g' : null, out: 'y',
          }],
          buffers: {
            r: { shape: ['T', t.C] }, k: { shape: ['T', t.C] }, v: { shape: ['T', t.C] }, g: { shape: ['T', t.C] },
            ...(t.lora ? { z: { shape: ['T', t.lora] } } : { w: { shape: ['T', t.C] } }),
            S: { shape: [t.C / t.N, t.N, t.N], role: 'state' }, y: { shape: ['T', t.C] },
          },
          weights,
        }, [1, 6]);
      });
    }
  });

  describe('linear', () => {
    // Two groups with different inputs, rows not a multiple of a workgroup's, inputs not a multiple of 4
    // (except int8, whose rows are whole 32-blocks), one group with an epilogue reading its own output.
    for (const dtype of ['f32', 'f16', 'bf16', 'int8'] as const) {
      for (const rows of ['all', 'last'] as const) {
        const I0 = dtype === 'int8' ? 96 : 70, I1 = dtype === 'int8' ? 160 : 161;
        it(`${dtype} weights, rows ${rows}: matvec (decode) and tiled matmul (prefill, 1, 5 and 37 tokens)`, async () => {
          const model = await checkCase({
            kernels: [{
              ...common, kind: 'linear', name: 'lin', rows, groups: [
                { x: 'x0', w: 'W0', y: 'y0' },
                { x: 'x1', w: 'W1', y: 'y1', epilogue: bin('add', acc, load('y1')) },
              ],
            }],
            buffers: {
              x0: { shape: ['T', I0] }, x1: { shape: ['T', I1] },
              y0: { shape: [rows === 'last' ? 1 : 'T', 37] }, y1: { shape: [rows === 'last' ? 1 : 'T', 130] },
            },
            weights: { W0: { shape: [37, I0], dtype }, W1: { shape: [130, I1], dtype } },
          }, [1, 5, 37]);
          expect(model.dispatchCount('decode')).toBe(1);
          expect(model.dispatchCount('prefill')).toBe(1);
        });
      }
    }

    it('long rows (1100 f16 inputs: 32 invocations per output row in matvec)', async () => {
      await checkCase({
        kernels: [{ ...common, kind: 'linear', name: 'long', rows: 'all', groups: [{ x: 'x', w: 'W', y: 'y', epilogue: un('relu', acc) }] }],
        buffers: { x: { shape: ['T', 1100] }, y: { shape: ['T', 75] } },
        weights: { W: { shape: [75, 1100], dtype: 'f16' } },
      }, [1, 3]);
    });

    it('every Expr op, in prologues and epilogues', async () => {
      const epilogues: Expr[] = [
        bin('add', bin('mul', un('silu', acc), cst(0.5)), load('e')),
        bin('sub', un('tanh', bin('mul', acc, cst(3))), un('neg', load('e'))),
        un('sigmoid', bin('mul', acc, cst(2))),
        un('square', un('relu', acc)),
        un('exp', bin('mul', acc, cst(-0.25))),
        bin('add', load('e'), bin('mul', load('e2'), acc)), // ChannelMix's value epilogue
      ];
      const prologues: Expr[] = [
        bin('add', x, bin('mul', load('p'), cst(2))),
        un('tanh', bin('sub', x, load('p'))),
        un('exp', un('neg', un('square', x))),
        un('silu', bin('mul', x, load('p2'))),
        un('relu', bin('sub', x, cst(0.25))),
        un('sigmoid', bin('add', x, cst(1e-3))),
      ];
      const groups = epilogues.map((epilogue, i) => ({ x: 'x', w: `W${i}`, y: `y${i}`, prologue: prologues[i], epilogue }));
      const model = await checkCase({
        kernels: [{ ...common, kind: 'linear', name: 'ops', rows: 'all', groups }],
        buffers: {
          x: { shape: ['T', 64] }, p: { shape: ['T', 64] }, p2: { shape: ['T', 64] },
          e: { shape: ['T', 40] }, e2: { shape: ['T', 40] },
          ...Object.fromEntries(groups.map((g) => [g.y, { shape: ['T', 40] as Dim[] }])),
        },
        weights: Object.fromEntries(groups.map((g) => [g.w, { shape: [40, 64], scale: 0.5 }])),
      }, [1, 3]);
      expect(model.dispatchCount('decode')).toBe(1); // six groups, one dispatch
    });

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

    // f32 and f16 here; every format is checked kernel by kernel above.
    for (const weights of ['f32', 'f16'] as const) {
      it(`random 2-layer model, ${weights} weights: prefill, decode and state match the plan target`, async () => {
        const { plan } = compileGraph(finch(cfg), cfg, { weights, logits: 'all', chunk: 6 });
        const provider = (d: KernelPlan['weights'][number]) => materializeWeight(d.source, read);
        const ref = await loadPlanTarget(plan, provider);
        const model = await loadWgslTarget(plan, provider, { device: gpu!.device });
        try {
          for (const s of model.shaders) expect(s.messages, s.key).toEqual([]);
          const tokens = Int32Array.from([5, 17, 200, 3, 99, 42, 7, 8, 250]);
          const rel = (a: Float32Array, b: Float32Array) => maxAbsDiff(a, b) / Math.max(1, ...b.map(Math.abs));
          expect(rel(await model.run('prefill', tokens.subarray(0, 6)), await ref.run('prefill', tokens.subarray(0, 6)))).toBeLessThan(TOL);
          expect(rel(await model.run('prefill', tokens.subarray(6, 8)), await ref.run('prefill', tokens.subarray(6, 8)))).toBeLessThan(TOL);
          const a = await model.run('decode', tokens.subarray(8));
          expect(rel(a, await ref.run('decode', tokens.subarray(8)))).toBeLessThan(TOL);
          const [sa, sb] = [await model.readState(), await ref.readState()];
          expect(Object.keys(sa).sort()).toEqual(Object.keys(sb).sort());
          for (const k of Object.keys(sb)) expect(rel(sa[k], sb[k]), k).toBeLessThan(TOL);
          // A Finch decode step: embed, 7 dispatches per layer, final LayerNorm, head.
          expect(model.dispatchCount('decode')).toBe(1 + 7 * cfg.nLayer + 2);
          expect(model.stats.last).toEqual({ dispatches: 1 + 7 * cfg.nLayer + 2, commandBuffers: 1, copies: 1 });
          // State written back reproduces the same step.
          await model.writeState(sb);
          const again = await model.run('decode', tokens.subarray(8));
          await ref.writeState(sb);
          expect(rel(again, await ref.run('decode', tokens.subarray(8)))).toBeLessThan(TOL);
        } finally {
          model.dispose();
        }
      });
    }

    it('batch program: B sequences with their own states match the plan target', async () => {
      const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f16', logits: 'last', chunk: 4, batch: 3 });
      const provider = (d: KernelPlan['weights'][number]) => materializeWeight(d.source, read);
      const ref = await loadPlanTarget(plan, provider);
      const model = await loadWgslTarget(plan, provider, { device: gpu!.device });
      try {
        for (const s of model.shaders) expect(s.messages, s.key).toEqual([]);
        const r = rng(5);
        const zero = await model.readState();
        const states = [0, 1, 2].map(() => Object.fromEntries(Object.entries(zero).map(([k, v]) => [k, Float32Array.from(v, () => r() - 0.5)])));
        for (const B of [3, 2]) {
          const tokens = Int32Array.from({ length: B }, (_, b) => 10 + 50 * b);
          const got = await model.runBatch!(tokens, states.slice(0, B));
          const want = await ref.runBatch!(tokens, states.slice(0, B));
          expect(maxAbsDiff(got.logits, want.logits) / Math.max(1, ...want.logits.map(Math.abs))).toBeLessThan(TOL);
          for (let b = 0; b < B; b++) for (const k of Object.keys(zero)) expect(maxAbsDiff(got.states[b][k], want.states[b][k]), `${b} ${k}`).toBeLessThan(TOL);
        }
        expect(await model.readState()).toEqual(zero); // the model's own state is untouched
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

    it('every shader of a plan compiles without errors or warnings (emitWgsl, default WebGPU limits)', async () => {
      const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f16', logits: 'last', chunk: 16 });
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

  describe.each(FIXTURE_NAMES)('official numbers: %s', (fixture) => {
    it('step, seq and chunks:4 match the golden logits and state within 1e-4', async () => {
      const m = openModel(join(FIXTURES, fixture, 'model.pth'));
      const golden = readGolden(fixture);
      const { plan } = compileGraph(finch(m.config), m.config, { weights: 'f32', logits: 'all', chunk: 6 });
      const model = await loadWgslTarget(plan, (d) => materializeWeight(d.source, m.read), { device: gpu!.device });
      try {
        for (const mode of ['step', 'seq', 'chunks:4']) {
          await model.writeState(Object.fromEntries(Object.entries(golden.state).map(([k, v]) => [k, new Float32Array(v.length)])));
          const logits = await runTokens(model, golden.tokens, parseMode(mode), m.config.vocabSize);
          const d = compareRun(logits, await model.readState(), golden);
          expect(d.logits, mode).toBeLessThanOrEqual(1e-4);
          expect(d.state, mode).toBeLessThanOrEqual(1e-4);
        }
      } finally {
        model.dispose();
        m.close();
      }
    });
  });
});
