/**
 * The WASM-SIMD target against the reference semantics (kernels/reference.ts), kernel by kernel on
 * random data and shapes, and end to end on a small compiled Finch plan against the `plan` target.
 *
 * Tolerance: the reference accumulates in f64, the target in f32 with a different summation order
 * (four lanes, then a fixed horizontal sum; exp/tanh by polynomials of ≈ 2–3 ulp). A dot product of
 * I terms then differs by about √I·2⁻²⁴ of Σ|w·x| (≈ 2e-6 for I = 768), and a few kernels in a row
 * add up; so every comparison allows 2e-5 of the buffer's largest magnitude ("relative-ish"), and the
 * end-to-end model 2e-4 (two layers, each a dozen kernels). Quantised weights are compared with the
 * reference run on dequantize(…) of the same values, so their rounding is not part of the error; the
 * int8 matvec rounds x to 16 bits (one scale per row, like Q8_0 rounds it to 8 per block), which
 * moves a dot product by at most Σ|w|·max|x|/65534: that bound is added for int8 (quantBound).
 * Thread counts must give bit-identical results: each output is computed by one thread in a fixed order.
 */
import { describe, expect, it } from 'vitest';
import type { BufferDecl, Expr, Kernel, KernelPlan, WeightDecl, WeightDType } from '../kernels/plan.ts';
import { runKernel, type KernelEnv } from '../kernels/reference.ts';
import { dequantize } from '../kernels/dtype.ts';
import { compileWasm } from '../targets/wasm/codegen.ts';
import type { LinearSchedule } from '../targets/wasm/linear.ts';
import { loadWasmArtifact, runtime as wasmRuntime, type WasmTargetModel } from '../targets/wasm/runtime.ts';
import { codegen as wasmCodegen } from '../targets/wasm/codegen.ts';
import { loadPlan } from '../driver/targets.ts';
import { mathlib } from '../targets/wasm/mathlib.ts';
import { assemble } from '../targets/wasm/wat.ts';
import { loadPlanTarget } from '../targets/plan/runtime.ts';
import { modelPlan } from '../bench/model-plan.ts';
import { randomWeights, seededRandom as rng } from '../runtime/random-model.ts';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Bufs = Record<string, { width: number; data: Float32Array }>;

/** A plan whose two programs run the one kernel; every buffer it touches is a 'state' buffer [T0, width]. */
function kernelPlan(k: Kernel, bufs: Bufs, weights: WeightDecl[], T0: number): KernelPlan {
  const buffers: BufferDecl[] = [
    { name: 'tokens', dtype: 'i32', shape: ['T'], role: 'input' },
    { name: 'logits', dtype: 'f32', shape: [1, 4], role: 'output' },
    ...Object.entries(bufs).map(([name, b]): BufferDecl => ({ name, dtype: 'f32', shape: [b.data.length / b.width, b.width], role: 'state' })),
  ];
  const prog = (maxT: number) => ({ maxT, kernels: [k], buffers, activationPeakBytes: 0 });
  return {
    format: 'rwkvc-plan', version: 1, model: 'kernel-test',
    config: { nLayer: 1, nEmbd: 0, headSize: 64, nHead: 0, dimFfn: 0, vocabSize: 0, loraMix: 0, loraDecay: 0 },
    weights, decode: prog(1), prefill: prog(T0),
  };
}

const decl = (name: string, shape: number[], dtype: WeightDType = 'f32'): WeightDecl =>
  ({ name, shape, dtype, source: { tensor: name, stored: shape } });

function randArr(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

interface Case {
  k: Kernel; bufs: Bufs; weights: WeightDecl[]; values: Record<string, Float32Array>; T0: number; tokens?: Int32Array;
  schedule?: Partial<LinearSchedule>;
}

/** Run the case on the reference (f64) and on the WASM target; returns both sets of buffers. */
async function runCase(c: Case, program: 'decode' | 'prefill', threads: number) {
  const T = program === 'decode' ? 1 : c.T0;
  const plan = kernelPlan(c.k, c.bufs, c.weights, c.T0);
  const provider = (d: WeightDecl) => c.values[d.name];
  const m = await loadWasmArtifact(compileWasm(plan, { relaxed: false, schedule: c.schedule }), provider, { threads });
  try {
    await m.writeState(Object.fromEntries(Object.entries(c.bufs).map(([n, b]) => [n, b.data])));
    const tokens = c.tokens ? c.tokens.subarray(0, T) : new Int32Array(T);
    await m.run(program, tokens);
    const got = await m.readState();
    const ref = new Map(Object.entries(c.bufs).map(([n, b]) => [n, Float64Array.from(b.data)]));
    const deq = new Map(c.weights.map((d) => [d.name, dequantize(c.values[d.name], d.shape[d.shape.length - 1], d.dtype)]));
    const env: KernelEnv = {
      T,
      buf: (n) => {
        // the reference sizes buffers by T: hand it the first T rows (state-shaped buffers whole)
        const b = ref.get(n)!, w = c.bufs[n].width, rows = b.length / w;
        return rows === c.T0 && rows !== T ? b.subarray(0, T * w) : b;
      },
      tokens: () => tokens,
      weight: (n) => deq.get(n)!,
    };
    runKernel(c.k, env);
    return { got, ref };
  } finally {
    m.dispose();
  }
}

function expectClose(got: Float32Array, ref: Float64Array, tol: number, what: string, extra = 0): void {
  let scale = 0, worst = 0, at = -1;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    if (!(e <= worst)) { worst = e; at = i; }
  }
  expect(worst, `${what}: worst |Δ| ${worst} at ${at} (got ${got[at]}, want ${ref[at]}, scale ${scale})`).toBeLessThanOrEqual(tol * Math.max(scale, 1e-3) + extra);
}

/**
 * What rounding x to 16 bits can move an int8 matvec output by: max over rows of Σ|w|·max|x|/65534,
 * ×1.1 for the steepest epilogue used here (silu' ≤ 1.1). 0 for other dtypes.
 */
function quantBound(c: Case): number {
  if (c.k.kind !== 'linear' || !c.weights.some((w) => w.dtype === 'int8')) return 0;
  let xmax = 0;
  for (const v of c.bufs.x.data) xmax = Math.max(xmax, Math.abs(v));
  let worst = 0;
  for (const w of c.weights) {
    const [O, I] = w.shape, v = dequantize(c.values[w.name], I, w.dtype);
    for (let o = 0; o < O; o++) {
      let s = 0;
      for (let i = 0; i < I; i++) s += Math.abs(v[o * I + i]);
      worst = Math.max(worst, s);
    }
  }
  return 1.1 * worst * xmax / 65534;
}

async function check(c: Case, tol = 2e-5): Promise<void> {
  for (const program of ['decode', 'prefill'] as const) {
    const { got, ref } = await runCase(c, program, 1);
    for (const [n, r] of ref) expectClose(got[n], r, tol, `${c.k.kind} ${program} ${n}`, quantBound(c));
    // 2 and 3 threads: bit-identical to 1 thread
    for (const th of [2, 3]) {
      const other = await runCase(c, program, th);
      for (const n of Object.keys(got)) expect(Buffer.from(other.got[n].buffer).equals(Buffer.from(got[n].buffer)), `${program} ${n} with ${th} threads`).toBe(true);
    }
  }
}

const acc: Expr = { op: 'acc' }, x: Expr = { op: 'x' };
const ld = (buf: string): Expr => ({ op: 'load', buf });
const un = (op: 'neg' | 'tanh' | 'exp' | 'sigmoid' | 'silu' | 'relu' | 'square', a: Expr): Expr => ({ op, args: [a] });
const bin = (op: 'add' | 'sub' | 'mul', a: Expr, b: Expr): Expr => ({ op, args: [a, b] });

function linearCase(seed: number, O: number, I: number, T0: number, dtype: WeightDType, opts: { prologue?: Expr; epilogue?: Expr; rows?: 'all' | 'last'; groups?: number } = {}): Case {
  const r = rng(seed);
  const rows = opts.rows ?? 'all', G = opts.groups ?? 1;
  const bufs: Bufs = { x: { width: I, data: randArr(r, T0 * I) }, a: { width: I, data: randArr(r, T0 * I) } };
  const weights: WeightDecl[] = [], values: Record<string, Float32Array> = {};
  const groups = Array.from({ length: G }, (_, g) => {
    const Og = O + 3 * g;
    bufs[`y${g}`] = { width: Og, data: new Float32Array((rows === 'last' ? 1 : T0) * Og) };
    bufs[`b${g}`] = { width: Og, data: randArr(r, (rows === 'last' ? 1 : T0) * Og) };
    weights.push(decl(`W${g}`, [Og, I], dtype));
    values[`W${g}`] = randArr(r, Og * I, -1 / Math.sqrt(I), 1 / Math.sqrt(I));
    const epi = opts.epilogue && JSON.parse(JSON.stringify(opts.epilogue).replaceAll('"b"', `"b${g}"`));
    return { x: 'x', w: `W${g}`, y: `y${g}`, prologue: opts.prologue, epilogue: epi };
  });
  return { k: { kind: 'linear', name: 'lin', layer: 0, src: [], rows, groups }, bufs, weights, values, T0 };
}

describe('wasm math library', () => {
  const text = `(module (import "env" "memory" (memory 1 65536 shared))
${mathlib()}
${['exp', 'tanh', 'sigmoid', 'silu'].map((f) => `(func (export "${f}") (param f32) (result f32) (f32x4.extract_lane 0 (call $${f} (f32x4.splat (local.get 0)))))`).join('\n')})`;
  const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const ex = new WebAssembly.Instance(new WebAssembly.Module(assemble(text)), { env: { memory: mem } }).exports as Record<string, (v: number) => number>;
  const ref: Record<string, (v: number) => number> = {
    exp: Math.exp, tanh: Math.tanh, sigmoid: (v) => 1 / (1 + Math.exp(-v)), silu: (v) => v / (1 + Math.exp(-v)),
  };
  it.each(['exp', 'tanh', 'sigmoid', 'silu'])('%s is within a few ulp', (f) => {
    const pts: number[] = [0, -0, 1e-30, -1e-8, 0.39999, 0.4, 0.40001, -0.4, 20, -20, 87, -87];
    const r = rng(11);
    for (let i = 0; i < 20000; i++) pts.push((r() - 0.5) * (f === 'exp' ? 170 : 40));
    for (let i = 0; i < 2000; i++) pts.push((r() - 0.5) * 2);
    for (const v of pts) {
      const want = ref[f](Math.fround(v)), got = ex[f](v);
      const tol = 1.2e-6 * Math.abs(want) + (f === 'exp' ? 1e-37 : 1e-37);
      expect(Math.abs(got - want), `${f}(${v}) = ${got}, want ${want}`).toBeLessThanOrEqual(tol);
    }
    expect(Number.isNaN(ex[f](NaN))).toBe(true);
  });
});

describe('wasm linear', () => {
  it.each([
    [1, 1, 1], [5, 3, 2], [16, 7, 3], [37, 33, 5], [64, 64, 4], [17, 100, 3],
  ])('f32 O=%i I=%i T=%i', async (O, I, T0) => {
    await check(linearCase(O * 131 + I, O, I, T0, 'f32'));
  });

  it.each(['bf16', 'f16', 'int8'] as const)('%s weights against dequantised reference', async (dtype) => {
    await check(linearCase(7, 37, 64, 3, dtype));
    await check(linearCase(8, 16, 96, 5, dtype, { epilogue: un('silu', acc) }));
  });

  it.each(['f32', 'bf16', 'f16', 'int8'] as const)('other loop shapes (schedule) give the same results, %s', async (dtype) => {
    const schedule = { tileT: 3, unroll: 3, mvUnroll: 2, int8Unroll: 4, mvPanels: 1 };
    await check({ ...linearCase(61, 37, 96, 7, dtype, { epilogue: bin('add', acc, ld('b')) }), schedule });
  });

  it('several groups in one kernel, rows last', async () => {
    await check(linearCase(21, 20, 48, 4, 'f32', { groups: 3, epilogue: bin('add', acc, ld('b')) }));
    await check(linearCase(22, 20, 48, 4, 'f32', { rows: 'last', prologue: bin('mul', x, ld('a')), epilogue: bin('add', acc, ld('b')) }));
    await check(linearCase(23, 33, 64, 5, 'int8', { rows: 'last', groups: 2 }));
  });

  it('int8: a zero row gives exact zeros, a NaN or an infinity in x is not lost in the rounding to i16', async () => {
    for (const [bad, what] of [[0, 'zero'], [NaN, 'NaN'], [Infinity, 'inf']] as const) {
      const c = linearCase(31, 20, 64, 1, 'int8');
      if (bad === 0) c.bufs.x.data.fill(0);
      else c.bufs.x.data[5] = bad;
      for (const program of ['decode', 'prefill'] as const) {
        const { got } = await runCase(c, program, 1);
        for (const v of got.y0) {
          if (bad === 0) expect(Object.is(v, 0) || Object.is(v, -0), `${what} ${program}`).toBe(true);
          else expect(Number.isFinite(v), `${what} ${program}`).toBe(false);
        }
      }
    }
  });

  // the expression printer on every op, in prologues and epilogues
  const prologues: Expr[] = [
    bin('mul', x, un('sigmoid', ld('a'))),
    bin('add', un('square', x), un('tanh', ld('a'))),
    bin('sub', un('relu', x), un('exp', un('neg', x))),
    un('silu', bin('add', x, { op: 'const', value: 0.25 })),
  ];
  const epilogues: Expr[] = [
    bin('add', un('silu', acc), bin('mul', ld('b'), un('sigmoid', acc))),
    bin('sub', un('square', un('relu', acc)), un('exp', un('neg', un('tanh', acc)))),
    bin('mul', { op: 'const', value: 0.5 }, bin('add', acc, ld('b'))),
  ];
  it.each(prologues.map((p, i) => [i, p]))('prologue %i', async (i, p) => {
    await check(linearCase(40 + (i as number), 19, 13, 3, 'f32', { prologue: p as Expr }));
  });
  it.each(epilogues.map((e, i) => [i, e]))('epilogue %i', async (i, e) => {
    await check(linearCase(50 + (i as number), 21, 24, 3, 'f32', { epilogue: e as Expr }));
  });
});

function layerNormCase(seed: number, C: number, T0: number, rows: 'all' | 'last'): Case {
  const r = rng(seed);
  const bufs: Bufs = { x: { width: C, data: randArr(r, T0 * C, -2, 3) }, out: { width: C, data: new Float32Array((rows === 'last' ? 1 : T0) * C) } };
  return {
    k: { kind: 'layernorm', name: 'ln', layer: 0, src: [], rows, x: 'x', w: 'w', b: 'b', eps: 1e-5, out: 'out' },
    bufs, weights: [decl('w', [C]), decl('b', [C])], values: { w: randArr(r, C, 0.5, 1.5), b: randArr(r, C, -0.2, 0.2) }, T0,
  };
}

function embedCase(seed: number, V: number, C: number, T0: number, dtype: WeightDType = 'f32'): Case {
  const r = rng(seed);
  const E = randArr(r, V * C);
  E[3] = 1e-6; E[4] = -3e-7; E[5] = 0; // f16 subnormals and zero
  return {
    k: { kind: 'embed', name: 'emb', layer: null, src: [], tokens: 'tokens', table: 'E', out: 'out' },
    bufs: { out: { width: C, data: new Float32Array(T0 * C) } }, weights: [decl('E', [V, C], dtype)], values: { E }, T0,
    tokens: Int32Array.from({ length: T0 }, () => Math.floor(r() * V)),
  };
}

function tokenShiftCase(seed: number, C: number, T0: number, S: number, lora: number | null, ln: boolean, alias: boolean): Case {
  const r = rng(seed);
  const bufs: Bufs = { x: { width: C, data: randArr(r, T0 * C, -2, 2) }, sin: { width: C, data: randArr(r, C) } };
  if (!alias) bufs.sout = { width: C, data: new Float32Array(C) };
  const outs = Array.from({ length: S }, (_, s) => { bufs[`o${s}`] = { width: C, data: new Float32Array(T0 * C) }; return `o${s}`; });
  const weights = [decl('lnw', [C]), decl('lnb', [C]), ...outs.map((_, s) => decl(`mix${s}`, [C]))];
  const values: Record<string, Float32Array> = { lnw: randArr(r, C, 0.5, 1.5), lnb: randArr(r, C, -0.2, 0.2) };
  outs.forEach((_, s) => { values[`mix${s}`] = randArr(r, C, 0, 1); });
  if (lora) {
    weights.push(decl('mu', [C]), decl('A', [S * lora, C]), decl('B', [S, C, lora]));
    values.mu = randArr(r, C, 0, 1);
    values.A = randArr(r, S * lora * C, -0.5 / Math.sqrt(C), 0.5 / Math.sqrt(C));
    values.B = randArr(r, S * C * lora, -0.5, 0.5);
  }
  return {
    k: {
      kind: 'token_shift', name: 'ts', layer: 0, src: [], x: 'x', ln: ln ? { w: 'lnw', b: 'lnb', eps: 1e-5 } : null,
      shiftIn: 'sin', shiftOut: alias ? 'sin' : 'sout', mix: outs.map((_, s) => `mix${s}`),
      lora: lora ? { mu: 'mu', a: 'A', b: 'B', dim: lora } : null, outs,
    },
    bufs, weights, values, T0,
  };
}

function wkvCase(seed: number, H: number, N: number, T0: number, o: { lora: boolean; u: boolean; order: 'read_first' | 'update_first'; norm: boolean; gate: boolean; kds: boolean; rScale: number }): Case {
  const r = rng(seed), C = H * N, D = 16;
  const bufs: Bufs = {
    r: { width: C, data: randArr(r, T0 * C) }, k: { width: C, data: randArr(r, T0 * C) }, v: { width: C, data: randArr(r, T0 * C) },
    S: { width: N * N, data: randArr(r, H * N * N, -0.5, 0.5) }, out: { width: C, data: new Float32Array(T0 * C) },
    g: { width: C, data: randArr(r, T0 * C) }, z: { width: D, data: randArr(r, T0 * D) }, wi: { width: C, data: randArr(r, T0 * C, 0.05, 0.999) },
  };
  const weights = [decl('u', [C]), decl('nw', [C]), decl('nb', [C]), decl('base', [C]), decl('B', [C, D])];
  const values = { u: randArr(r, C, -0.5, 0.5), nw: randArr(r, C, 0.5, 1.5), nb: randArr(r, C, -0.2, 0.2), base: randArr(r, C, -5, 1), B: randArr(r, C * D, -0.3, 0.3) };
  return {
    k: {
      kind: 'wkv', name: 'wkv', layer: 0, src: [], headSize: N, r: 'r', k: 'k', v: 'v',
      decay: o.lora ? { kind: 'lora', z: 'z', b: 'B', base: 'base', dim: D } : { kind: 'direct', w: 'wi' },
      u: o.u ? 'u' : null, order: o.order, kDecayScale: o.kds, rScale: o.rScale, state: 'S',
      norm: o.norm ? { w: 'nw', b: 'nb', eps: 64e-5 } : null, gate: o.gate ? 'g' : null, out: 'out',
    },
    bufs, weights, values, T0,
  };
}

describe('wasm kernels', () => {
  it.each([[1, 1], [7, 3], [64, 2], [130, 5]])('layernorm C=%i T=%i', async (C, T0) => {
    await check(layerNormCase(C, C, T0, 'all'));
    await check(layerNormCase(C + 1, C, T0, 'last'));
  });

  it.each(['f32', 'bf16', 'f16', 'int8'] as const)('embed (%s table)', async (dtype) => {
    await check(embedCase(3, 50, dtype === 'int8' ? 32 : 13, 4, dtype), 0);
    const c = embedCase(4, 7, 6, 3, dtype === 'int8' ? 'f32' : dtype);
    c.tokens = Int32Array.of(0, 0, 0); // row 0 holds the subnormals
    await check(c, 0);
  });

  it.each([
    [12, 3, 2, null, true, true], [13, 4, 1, null, false, false], [64, 5, 5, 8, true, true], [37, 3, 2, 4, true, false], [1, 2, 1, null, true, true],
  ] as const)('token_shift C=%i T=%i S=%i lora=%s ln=%s alias=%s', async (C, T0, S, lora, ln, alias) => {
    await check(tokenShiftCase(C * 7 + T0, C, T0, S, lora, ln, alias));
  });

  it.each([
    ['finch', { lora: true, u: true, order: 'read_first', norm: true, gate: true, kds: false, rScale: 1 }],
    ['direct decay', { lora: false, u: true, order: 'read_first', norm: false, gate: false, kds: false, rScale: 1 }],
    ['qrwkv6', { lora: false, u: false, order: 'update_first', norm: false, gate: true, kds: true, rScale: 0.125 }],
  ] as const)('wkv head 64 (%s)', async (_, o) => {
    await check(wkvCase(5, 3, 64, 4, o));
  });
  it('wkv head 16, 5 heads', async () => {
    await check(wkvCase(6, 5, 16, 3, { lora: true, u: true, order: 'read_first', norm: true, gate: true, kds: false, rScale: 1 }));
  });
  it('rejects a head size that is not a multiple of 16', () => {
    const c = wkvCase(6, 2, 8, 2, { lora: false, u: true, order: 'read_first', norm: false, gate: false, kds: false, rScale: 1 });
    expect(() => compileWasm(kernelPlan(c.k, c.bufs, c.weights, c.T0))).toThrow(/head size .*got 8/);
  });
  it('rejects int8 rows that are not a multiple of 32', () => {
    const c = linearCase(1, 4, 40, 1, 'int8');
    expect(() => compileWasm(kernelPlan(c.k, c.bufs, c.weights, c.T0))).toThrow(/multiple of 32/);
  });
});

describe('wasm target end to end (compiled Finch, 2 layers)', () => {
  const small = { nLayer: 2, nEmbd: 128, dimFfn: 448, vocabSize: 300, prefillT: 8 };
  async function compare(dtype: WeightDType, threads: number) {
    const plan = modelPlan({ ...small, dtype });
    const w = randomWeights(plan.config, 5);
    const m = await loadPlan('wasm', plan, w, { threads }) as WasmTargetModel;
    const ref = await loadPlanTarget(plan, w);
    const out: Float32Array[] = [];
    try {
      for (const t of [3, 77, 299]) {
        const a = await m.run('decode', Int32Array.of(t)), b = await ref.run('decode', Int32Array.of(t));
        expectClose(a, Float64Array.from(b), 2e-4, `${dtype} decode ${t}`);
        out.push(a);
      }
      const prompt = Int32Array.from([5, 8, 13, 21, 34, 55, 89]);
      const a = await m.run('prefill', prompt), b = await ref.run('prefill', prompt);
      expectClose(a, Float64Array.from(b), 2e-4, `${dtype} prefill`);
      out.push(a);
      const sa = await m.readState(), sb = await ref.readState();
      for (const k of Object.keys(sb)) expectClose(sa[k], Float64Array.from(sb[k]), 2e-4, `${dtype} state ${k}`);
      for (const k of Object.keys(sb)) out.push(sa[k]);
      // writeState round trip
      await m.writeState(sb);
      const back = await m.readState();
      for (const k of Object.keys(sb)) expect(back[k]).toEqual(sb[k]);
    } finally {
      m.dispose();
    }
    return out;
  }
  it.each(['f32', 'bf16', 'f16', 'int8'] as const)('%s: decode, prefill and state match the plan target; 1 and 2 threads identical', async (dtype) => {
    const one = await compare(dtype, 1), two = await compare(dtype, 2);
    one.forEach((a, i) => expect(Buffer.from(two[i].buffer).equals(Buffer.from(a.buffer))).toBe(true));
  });

  it('an artifact written to files loads without the compiler and runs the same', async () => {
    const plan = modelPlan(small);
    const art = compileWasm(plan);
    const dir = mkdtempSync(join(tmpdir(), 'rwkvc-wasm-'));
    const names = Object.entries(wasmCodegen.files(art)).map(([f, data]) => (writeFileSync(join(dir, f), data), f));
    const back = wasmRuntime.open(Object.fromEntries(names.map((f) => [f, new Uint8Array(readFileSync(join(dir, f)))])));
    expect(back.layout).toEqual(art.layout);
    const w = randomWeights(plan.config, 2);
    const a = await loadWasmArtifact(art, w, { threads: 1 }), b = await loadWasmArtifact(back, w, { threads: 1 });
    try {
      const la = await a.run('prefill', Int32Array.of(1, 2, 3)), lb = await b.run('prefill', Int32Array.of(1, 2, 3));
      expect(lb).toEqual(la);
      await expect(a.run('decode', Int32Array.of(300))).rejects.toThrow(/vocabulary/);
      await expect(a.run('prefill', new Int32Array(9))).rejects.toThrow(/1\.\.8/);
    } finally {
      a.dispose(); b.dispose();
    }
  });
});

describe('wasm relaxed-SIMD variant', () => {
  it('runs (where the engine has relaxed SIMD) and matches the plan target', async () => {
    // Node 20 needs a flag for relaxed SIMD: run the check in a child process that has it.
    const { spawnSync } = await import('node:child_process');
    const code = `
      import { modelPlan } from './bench/model-plan.ts';
      import { randomWeights } from './runtime/random-model.ts';
      import { loadPlan } from './driver/targets.ts';
      import { loadPlanTarget } from './targets/plan/runtime.ts';
      const plan = modelPlan({ nLayer: 2, nEmbd: 128, dimFfn: 448, vocabSize: 300, prefillT: 8 });
      const w = randomWeights(plan.config, 5);
      const m = await loadPlan('wasm', plan, w, { threads: 2 }), ref = await loadPlanTarget(plan, w);
      let err = 0, scale = 0;
      for (const [p, t] of [['prefill', [1, 2, 3, 4, 5]], ['decode', [7]]]) {
        const a = await m.run(p, Int32Array.from(t)), b = await ref.run(p, Int32Array.from(t));
        for (let i = 0; i < a.length; i++) { err = Math.max(err, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
      }
      console.log(JSON.stringify({ variant: m.variant, err, scale }));
      m.dispose();
      process.exit(0);`;
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', '--input-type=module', '-e', code],
      { cwd: join(import.meta.dirname, '..'), encoding: 'utf8', timeout: 100_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.variant).toBe('relaxed');
    expect(out.err).toBeLessThanOrEqual(2e-4 * out.scale);
  });
});

describe('wasm batch program', () => {
  it('decodes B sequences together like B single decodes (and like the plan target)', async () => {
    const plan = modelPlan({ nLayer: 2, nEmbd: 128, dimFfn: 448, vocabSize: 300, prefillT: 8, batch: 3 });
    const w = randomWeights(plan.config, 9);
    for (const threads of [1, 2]) {
      const m = await loadPlan('wasm', plan, w, { threads }), ref = await loadPlanTarget(plan, w);
      try {
        // three sequences with different histories
        const states = [];
        const zero = Object.fromEntries(Object.entries(await m.readState()).map(([k, v]) => [k, new Float32Array(v.length)]));
        for (const prompt of [[1, 2], [7], [4, 4, 4]]) {
          await m.writeState(zero);
          await m.run('prefill', Int32Array.from(prompt));
          states.push(await m.readState());
        }
        const tokens = Int32Array.of(10, 20, 30);
        const got = await m.runBatch!(tokens, states);
        const want = await ref.runBatch!(tokens, states);
        expectClose(got.logits, Float64Array.from(want.logits), 2e-4, 'batch logits');
        got.states.forEach((s, b) => { for (const k of Object.keys(s)) expectClose(s[k], Float64Array.from(want.states[b][k]), 2e-4, `batch state ${b} ${k}`); });
        // row b equals a single decode of sequence b
        for (let b = 0; b < 3; b++) {
          await m.writeState(states[b]);
          const one = await m.run('decode', tokens.subarray(b, b + 1));
          const V = one.length;
          expectClose(got.logits.subarray(b * V, (b + 1) * V), Float64Array.from(one), 1e-5, `batch row ${b} vs decode`);
        }
      } finally {
        m.dispose();
      }
    }
  });
});
