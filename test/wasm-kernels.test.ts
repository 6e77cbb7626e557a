/**
 * What only the WASM-SIMD target has, against the reference semantics (kernels/reference.ts): its math
 * library (exp/tanh/sigmoid/silu polynomials), its linear loop shapes (schedule variants), its int8
 * matvec's rounding of x to 16 bits (zeros stay zeros, NaN and infinity survive), its shape limits, and the
 * relaxed-SIMD variant. Every kernel kind, format and size, and the whole models on the official
 * fixtures, are the conformance suite's (test/targets/), which runs this target like every other.
 *
 * Tolerance: as the conformance suite's for WASM (test/helpers/conformance.ts): 2e-5 of the buffer's
 * largest magnitude, plus for int8 what rounding x to 16 bits can move a dot product by (quantBound).
 * Thread counts must give bit-identical results: each output is computed by one thread in a fixed order.
 */
import { describe, expect, it } from 'vitest';
import type { BufferDecl, Expr, Kernel, KernelPlan, WeightDecl, WeightDType } from '../kernels/plan.ts';
import { runKernel, type KernelEnv } from '../kernels/reference.ts';
import { dequantize } from '../kernels/dtype.ts';
import { compileWasm } from '../targets/wasm/codegen.ts';
import type { LinearSchedule } from '../targets/wasm/linear.ts';
import { mathlib } from '../targets/wasm/mathlib.ts';
import { assemble } from '../targets/wasm/assemble.ts';
import { loadWasmArtifact } from '../targets/wasm/runtime.ts';
import { seededRandom as rng } from '../runtime/random-model.ts';
import { expectClose, perTarget } from './helpers/conformance.ts';
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

async function check(c: Case): Promise<void> {
  for (const program of ['decode', 'prefill'] as const) {
    const { got, ref } = await runCase(c, program, 1);
    for (const [n, r] of ref) expectClose(got[n], r, perTarget('wasm').kernel, `${c.k.kind} ${program} ${n}`, { extra: quantBound(c), elementwise: true });
    // 2 and 3 threads: bit-identical to 1 thread
    for (const th of [2, 3]) {
      const other = await runCase(c, program, th);
      for (const n of Object.keys(got)) expect(Buffer.from(other.got[n].buffer).equals(Buffer.from(got[n].buffer)), `${program} ${n} with ${th} threads`).toBe(true);
    }
  }
}

const acc: Expr = { op: 'acc' };
const ld = (buf: string): Expr => ({ op: 'load', buf });
const bin = (op: 'add' | 'sub' | 'mul', a: Expr, b: Expr): Expr => ({ op, args: [a, b] });

function linearCase(seed: number, O: number, I: number, T0: number, dtype: WeightDType, opts: { epilogue?: Expr; rows?: 'all' | 'last'; groups?: number } = {}): Case {
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
    return { x: 'x', w: `W${g}`, y: `y${g}`, epilogue: epi };
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
  it.each(['f32', 'bf16', 'f16', 'int8'] as const)('other loop shapes (schedule) give the same results, %s', async (dtype) => {
    const schedule = { tileT: 3, unroll: 3, mvUnroll: 2, int8Unroll: 4, mvPanels: 1 };
    await check({ ...linearCase(61, 37, 96, 7, dtype, { epilogue: bin('add', acc, ld('b')) }), schedule });
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
});

describe('wasm shape limits', () => {
  it('rejects a head size that is not a multiple of 16', () => {
    const C = 16, row = { width: C, data: new Float32Array(2 * C) };
    const k: Kernel = {
      kind: 'wkv', name: 'wkv', layer: 0, src: [], headSize: 8, r: 'r', k: 'k', v: 'v', decay: { kind: 'direct', w: 'w' }, u: null,
      order: 'read_first', kDecayScale: false, rScale: 1, state: 'S', norm: null, gate: null, out: 'out',
    };
    const bufs: Bufs = { r: row, k: row, v: row, w: row, out: row, S: { width: 64, data: new Float32Array(2 * 64) } };
    expect(() => compileWasm(kernelPlan(k, bufs, [], 2))).toThrow(/head size .*got 8/);
  });
  it('rejects int8 rows that are not a multiple of 32', () => {
    const c = linearCase(1, 4, 40, 1, 'int8');
    expect(() => compileWasm(kernelPlan(c.k, c.bufs, c.weights, c.T0))).toThrow(/multiple of 32/);
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
