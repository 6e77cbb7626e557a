/**
 * Conformance, kernel by kernel: every registered plan target (hidden ones too) against the reference
 * semantics (kernels/reference.ts, f64) on one table of cases (CASES): each kernel kind and variant,
 * each weight format, odd sizes. A new target is tested by adding it to targets/registry.ts; a target
 * that cannot run on this machine (no GPU adapter, no compiler) skips with the reason printed, and one
 * that refuses a case for a documented limit of its own (PER_TARGET.refuses) skips that case, saying so.
 *
 * How a case runs. Its plan holds the one kernel in every program, and every buffer the kernel touches
 * is a 'state' buffer, so the public TargetModel interface (writeState, run, readState) sets and reads
 * all of them: a buffer with a row per token is declared with the prefill program's maxT rows (a call
 * at T tokens uses the first T; the rest must come back untouched). Each case runs decode (T = 1),
 * prefill at each of its T, and for batch cases the batch program (B sequences of one token, each with
 * its own state row; then B − 1). Quantised weights are compared with the reference run on
 * dequantize(…) of the same values (the values every target computes with), so their rounding is not
 * part of the error.
 *
 * Tolerances come from test/helpers/conformance.ts (one table, per target, with why). A target that
 * takes threads must give bit-identical results at 1 and 3 threads (each output computed by one thread,
 * in a fixed order), so its results do not depend on the machine. 3, not 2: the fewest threads with one
 * that is neither first nor last (a slice both of whose ends are computed); 2 threads against 1 are
 * golden.test.ts's check, on whole models in every weight format.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { dequantize, isBlockFormat } from '../../kernels/dtype.ts';
import { evalExpr, exprLoads } from '../../kernels/expr.ts';
import type { BufferDecl, Expr, Kernel, KernelPlan, Program, WeightDType } from '../../kernels/plan.ts';
import { runKernel, type KernelEnv } from '../../kernels/reference.ts';
import { seededRandom } from '../../runtime/random-model.ts';
import type { StateTensors, TargetModel } from '../../targets/backend.ts';
import { expectClose, loadOrSkip, perTarget, releaseTargets, sameBits, suiteTargets, takesThreads } from '../helpers/conformance.ts';

// ---------------------------------------------------------------------------------------------------
// What a case is

/** A buffer: `width` values per row; rows: one per token ('T') or a fixed number (state, a 'last' output). */
interface BufSpec { width: number; rows: 'T' | number; lo?: number; hi?: number }
/** A weight: uniform in [lo, hi], stored as dtype (default f32). */
interface WeightSpec { shape: number[]; dtype?: WeightDType; lo: number; hi: number }

interface KernelCase {
  name: string;
  kernel: Kernel;
  bufs: Record<string, BufSpec>;
  weights: Record<string, WeightSpec>;
  /** Prefill calls at these T (the program's maxT is the largest); decode (T = 1) always runs. */
  prefill: number[];
  /** Also the batch program for this many sequences (the kernel with batch: true); prefill is then 1 token. */
  batch?: number;
  /** Rows of the embedding table (tokens are drawn from them, the first is 0); else tokens are 0. */
  vocab?: number;
  /** Values are copied, not computed: the result must be exact. */
  exact?: boolean;
  /** Plant particular values (e.g. f16 subnormals) after the random ones. */
  tweak?: (weights: Record<string, Float32Array>) => void;
}

// ---------------------------------------------------------------------------------------------------
// The cases

const acc: Expr = { op: 'acc' }, x: Expr = { op: 'x' };
const ld = (buf: string): Expr => ({ op: 'load', buf });
const cst = (value: number): Expr => ({ op: 'const', value });
const un = (op: 'neg' | 'tanh' | 'exp' | 'sigmoid' | 'silu' | 'relu' | 'square', a: Expr): Expr => ({ op, args: [a] });
const bin = (op: 'add' | 'sub' | 'mul', a: Expr, b: Expr): Expr => ({ op, args: [a, b] });
const common = { layer: 0, src: [] as string[] };
const FORMATS = ['f32', 'bf16', 'f16', 'int8', 'q4_0', 'q4_1'] as const;

function embedCase(dtype: WeightDType, V: number, C: number): KernelCase {
  return {
    name: `embed ${dtype} table [${V}, ${C}]`,
    kernel: { ...common, layer: null, kind: 'embed', name: 'emb', tokens: 'tokens', table: 'E', out: 'y' },
    bufs: { y: { width: C, rows: 'T' } },
    weights: { E: { shape: [V, C], dtype, lo: -1, hi: 1 } },
    prefill: [1, 4], vocab: V, exact: true,
    tweak: (w) => { w.E[3] = 1e-6; w.E[4] = -3e-7; w.E[5] = 0; }, // row 0 (the first token): f16 subnormals and zero
  };
}

function layerNormCase(C: number, rows: 'all' | 'last'): KernelCase {
  return {
    name: `layernorm rows ${rows}, C ${C}`,
    kernel: { ...common, kind: 'layernorm', name: 'ln', rows, x: 'x', w: 'w', b: 'b', eps: 1e-5, out: 'y' },
    bufs: { x: { width: C, rows: 'T', lo: -2, hi: 3 }, y: { width: C, rows: rows === 'last' ? 1 : 'T' } },
    weights: { w: { shape: [C], lo: 0.5, hi: 1.5 }, b: { shape: [C], lo: -0.2, hi: 0.2 } },
    prefill: [1, 3, 5],
  };
}

interface TokenShiftOpts { C: number; S: number; D?: number; ln: boolean; alias: boolean; dtype?: WeightDType; batch?: number; prefill?: number[]; note?: string }
function tokenShiftCase(o: TokenShiftOpts): KernelCase {
  const { C, S, D = 0 } = o;
  const outs = Array.from({ length: S }, (_, s) => `o${s}`), mix = outs.map((_, s) => `mix${s}`);
  const bufs: Record<string, BufSpec> = { x: { width: C, rows: 'T', lo: -2, hi: 2 }, shift: { width: C, rows: 1 } };
  if (!o.alias) bufs.shift2 = { width: C, rows: 1 };
  for (const n of outs) bufs[n] = { width: C, rows: 'T' };
  const weights: Record<string, WeightSpec> = Object.fromEntries(mix.map((m) => [m, { shape: [C], lo: 0, hi: 1 }]));
  if (o.ln) Object.assign(weights, { lnw: { shape: [C], lo: 0.5, hi: 1.5 }, lnb: { shape: [C], lo: -0.2, hi: 0.2 } });
  if (D) {
    const a = 0.5 / Math.sqrt(C);
    Object.assign(weights, {
      mu: { shape: [C], lo: 0, hi: 1 },
      A: { shape: [S * D, C], dtype: o.dtype, lo: -a, hi: a },
      B: { shape: [S, C, D], dtype: o.dtype, lo: -0.5, hi: 0.5 },
    });
  }
  const what = [o.ln ? 'LN' : 'no LN', D ? `LoRA ${o.dtype ?? 'f32'} (${S} outputs, D ${D})` : `${S} lerp${S > 1 ? 's' : ''}`,
    `C ${C}`, o.alias ? 'shiftOut = shiftIn' : '', o.batch ? `batch ${o.batch}` : '', o.note ?? ''];
  return {
    name: `token_shift ${what.filter(Boolean).join(', ')}`,
    kernel: {
      ...common, kind: 'token_shift', name: 'ts', x: 'x', ln: o.ln ? { w: 'lnw', b: 'lnb', eps: 1e-5 } : null,
      shiftIn: 'shift', shiftOut: o.alias ? 'shift' : 'shift2', mix, lora: D ? { mu: 'mu', a: 'A', b: 'B', dim: D } : null, outs,
    },
    bufs, weights, prefill: o.batch ? [1] : o.prefill ?? [1, 4], batch: o.batch,
  };
}

interface WkvOpts {
  H: number; N: number; decay: 'lora' | 'direct'; D?: number; u: boolean; order: 'read_first' | 'update_first';
  norm: boolean; gate: boolean; kds?: boolean; rScale?: number; dtype?: WeightDType; batch?: number; prefill?: number[]; note?: string;
}
function wkvCase(o: WkvOpts): KernelCase {
  const { H, N, D = 0 } = o, C = H * N;
  const bufs: Record<string, BufSpec> = {
    r: { width: C, rows: 'T' }, k: { width: C, rows: 'T' }, v: { width: C, rows: 'T' },
    S: { width: N * N, rows: H, lo: -0.5, hi: 0.5 }, y: { width: C, rows: 'T' },
  };
  if (o.gate) bufs.g = { width: C, rows: 'T' };
  if (o.decay === 'lora') bufs.z = { width: D, rows: 'T' };
  else bufs.w = { width: C, rows: 'T', lo: 0.05, hi: 0.999 };
  const weights: Record<string, WeightSpec> = {};
  if (o.u) weights.u = { shape: [C], lo: -0.5, hi: 0.5 };
  if (o.norm) Object.assign(weights, { nw: { shape: [C], lo: 0.5, hi: 1.5 }, nb: { shape: [C], lo: -0.2, hi: 0.2 } });
  if (o.decay === 'lora') Object.assign(weights, { base: { shape: [C], lo: -5, hi: 1 }, B: { shape: [C, D], dtype: o.dtype, lo: -0.3, hi: 0.3 } });
  const rScale = o.rScale ?? 1;
  const what = [o.note, `N ${N}, ${H} heads`, o.decay === 'lora' ? `LoRA decay ${o.dtype ?? 'f32'} (D ${D})` : 'direct decay', o.order,
    o.u ? 'u' : '', o.norm ? 'GroupNorm' : '', o.gate ? 'gate' : '', o.kds ? 'k·(1−w)' : '', rScale !== 1 ? `r·${+rScale.toFixed(3)}` : '',
    o.batch ? `batch ${o.batch}` : ''];
  return {
    name: `wkv ${what.filter(Boolean).join(', ')}`,
    kernel: {
      ...common, kind: 'wkv', name: 'wkv', headSize: N, r: 'r', k: 'k', v: 'v',
      decay: o.decay === 'lora' ? { kind: 'lora', z: 'z', b: 'B', base: 'base', dim: D } : { kind: 'direct', w: 'w' },
      u: o.u ? 'u' : null, order: o.order, kDecayScale: !!o.kds, rScale, state: 'S',
      norm: o.norm ? { w: 'nw', b: 'nb', eps: 64e-5 } : null, gate: o.gate ? 'g' : null, out: 'y',
    },
    bufs, weights, prefill: o.batch ? [1] : o.prefill ?? [1, 4], batch: o.batch,
  };
}

/** A group: y{g} = epilogue(W{g} · prologue(x)); x defaults to 'x' (groups may share it). */
interface GroupSpec { x?: string; O: number; I: number; prologue?: Expr; epilogue?: Expr }
function linearCase(name: string, groups: GroupSpec[], o: { rows?: 'all' | 'last'; dtype?: WeightDType; prefill: number[] }): KernelCase {
  const rows = o.rows ?? 'all', dtype = o.dtype ?? 'f32';
  const bufs: Record<string, BufSpec> = {}, weights: Record<string, WeightSpec> = {};
  const yRows = rows === 'last' ? 1 : 'T';
  const gs = groups.map((g, i) => {
    const xName = g.x ?? 'x', y = `y${i}`, w = `W${i}`;
    bufs[xName] = { width: g.I, rows: 'T' };
    for (const b of exprLoads(g.prologue)) bufs[b] ??= { width: g.I, rows: 'T' };
    bufs[y] = { width: g.O, rows: yRows };
    for (const b of exprLoads(g.epilogue)) bufs[b] ??= { width: g.O, rows: yRows };
    const s = 1 / Math.sqrt(g.I);
    weights[w] = { shape: [g.O, g.I], dtype, lo: -s, hi: s };
    return { x: xName, w, y, prologue: g.prologue, epilogue: g.epilogue };
  });
  return { name: `linear ${name}`, kernel: { ...common, kind: 'linear', name: 'lin', rows, groups: gs }, bufs, weights, prefill: o.prefill };
}

const CASES: KernelCase[] = [
  // embed: each table format; odd widths (int8 rows are whole 32-blocks). Not q4: the weights pass keeps
  // tables f16 under 4-bit storage (a GPU target would widen a q4 table on the host, see gpu/lower.ts)
  ...FORMATS.filter((f) => f !== 'q4_0' && f !== 'q4_1').map((f) => embedCase(f, 50, isBlockFormat(f) ? 96 : 13)),

  // layernorm: every row or the last only; widths from 1 to more than a workgroup's threads
  ...(['all', 'last'] as const).flatMap((rows) => [1, 7, 130, 1100].map((C) => layerNormCase(C, rows))),

  // token_shift: with and without LN and the ddlerp LoRA, shiftOut aliasing shiftIn or not, odd widths,
  // the LoRA factors in each format, batch
  tokenShiftCase({ C: 12, S: 2, ln: true, alias: true, prefill: [1, 3] }),
  tokenShiftCase({ C: 13, S: 1, ln: false, alias: false }),
  tokenShiftCase({ C: 1, S: 1, ln: true, alias: true, prefill: [1, 2] }),
  tokenShiftCase({ C: 70, S: 2, ln: false, alias: false }),
  tokenShiftCase({ C: 128, S: 2, ln: true, alias: true, note: 'ChannelMix' }),
  tokenShiftCase({ C: 37, S: 2, D: 4, ln: true, alias: false, prefill: [1, 3] }),
  tokenShiftCase({ C: 64, S: 5, D: 8, ln: true, alias: true, prefill: [1, 5] }),
  tokenShiftCase({ C: 64, S: 3, D: 4, ln: false, alias: true }),
  tokenShiftCase({ C: 128, S: 5, D: 8, ln: true, alias: false }),
  tokenShiftCase({ C: 1088, S: 5, D: 32, ln: true, alias: true, note: 'wider than one staging pass' }),
  ...FORMATS.map((dtype) => tokenShiftCase({ C: 64, S: 5, D: 32, ln: true, alias: false, dtype, prefill: [1, 3] })),
  tokenShiftCase({ C: 64, S: 5, D: 32, ln: true, alias: true, batch: 3 }),
  tokenShiftCase({ C: 64, S: 5, D: 32, ln: true, alias: false, dtype: 'int8', batch: 3 }),
  tokenShiftCase({ C: 70, S: 2, ln: false, alias: false, batch: 3 }),

  // wkv: both orders, LoRA and direct decay, with and without u, GroupNorm, gate, k·(1−w), r scaling;
  // head sizes 16, 32, 64; the decay LoRA in each format; batch
  wkvCase({ note: 'Finch', H: 2, N: 64, decay: 'lora', D: 16, u: true, order: 'read_first', norm: true, gate: true, prefill: [1, 4, 6] }),
  wkvCase({ H: 3, N: 64, decay: 'direct', u: true, order: 'read_first', norm: false, gate: false }),
  wkvCase({ note: 'QRWKV6', H: 3, N: 32, decay: 'direct', u: false, order: 'update_first', norm: false, gate: true, kds: true, rScale: 1 / Math.sqrt(32), prefill: [1, 6] }),
  wkvCase({ H: 3, N: 16, decay: 'direct', u: true, order: 'read_first', norm: false, gate: true, prefill: [1, 6] }),
  wkvCase({ H: 5, N: 16, decay: 'lora', D: 16, u: true, order: 'read_first', norm: true, gate: true, prefill: [1, 3] }),
  wkvCase({ H: 1, N: 64, decay: 'lora', D: 8, u: false, order: 'update_first', norm: true, gate: false, rScale: 0.5, prefill: [1, 6] }),
  ...FORMATS.map((dtype) => wkvCase({ note: 'Finch', H: 2, N: 64, decay: 'lora', D: 32, u: true, order: 'read_first', norm: true, gate: true, dtype })),
  wkvCase({ note: 'Finch', H: 2, N: 64, decay: 'lora', D: 32, u: true, order: 'read_first', norm: true, gate: true, batch: 3 }),
  wkvCase({ note: 'Finch', H: 2, N: 64, decay: 'lora', D: 32, u: true, order: 'read_first', norm: true, gate: true, dtype: 'int8', batch: 3 }),
  wkvCase({ note: 'QRWKV6', H: 3, N: 32, decay: 'direct', u: false, order: 'update_first', norm: false, gate: true, kds: true, rScale: 1 / Math.sqrt(32), batch: 3 }),

  // linear: odd shapes (matvec in decode, the matmul at each prefill T)
  ...([[1, 1, 1], [5, 3, 2], [16, 7, 3], [37, 33, 5], [64, 64, 4], [17, 100, 3]] as const).map(([O, I, T]) =>
    linearCase(`f32 [${O}×${I}], T ≤ ${T}`, [{ O, I }], { prefill: [1, T] })),
  // each format, rows all and last: two groups with their own inputs (rows not a multiple of 4, except
  // int8's whole 32-blocks), one epilogue reading the group's own output; prefill past a matmul tile
  ...FORMATS.flatMap((dtype) => (['all', 'last'] as const).map((rows) => {
    const I0 = isBlockFormat(dtype) ? 96 : 70, I1 = isBlockFormat(dtype) ? 160 : 161;
    return linearCase(`${dtype}, rows ${rows}: [37×${I0}] silu, [130×${I1}] + own output`, [
      { x: 'x0', O: 37, I: I0, epilogue: un('silu', acc) },
      { x: 'x1', O: 130, I: I1, epilogue: bin('add', acc, ld('y1')) },
    ], { rows, dtype, prefill: [1, 5, 37] });
  })),
  linearCase('three groups of one input, epilogues reading their own buffers', [20, 23, 26].map((O, g) =>
    ({ O, I: 48, epilogue: bin('add', acc, ld(`b${g}`)) })), { prefill: [1, 4] }),
  linearCase('rows last with a prologue and an epilogue', [{ O: 20, I: 48, prologue: bin('mul', x, ld('a')), epilogue: bin('add', acc, ld('b')) }],
    { rows: 'last', prefill: [1, 4] }),
  linearCase('long rows: f16 [75×1100], relu', [{ O: 75, I: 1100, epilogue: un('relu', acc) }], { dtype: 'f16', prefill: [1, 3] }),
  // every Expr op, in prologues and epilogues: six groups of one kernel …
  linearCase('every Expr op (six groups, each with a prologue and an epilogue)', [
    [bin('add', x, bin('mul', ld('p'), cst(2))), bin('add', bin('mul', un('silu', acc), cst(0.5)), ld('e'))],
    [un('tanh', bin('sub', x, ld('p'))), bin('sub', un('tanh', bin('mul', acc, cst(3))), un('neg', ld('e')))],
    [un('exp', un('neg', un('square', x))), un('sigmoid', bin('mul', acc, cst(2)))],
    [un('silu', bin('mul', x, ld('p2'))), un('square', un('relu', acc))],
    [un('relu', bin('sub', x, cst(0.25))), un('exp', bin('mul', acc, cst(-0.25)))],
    [un('sigmoid', bin('add', x, cst(1e-3))), bin('add', ld('e'), bin('mul', ld('e2'), acc))], // ChannelMix's value epilogue
  ].map(([prologue, epilogue]) => ({ O: 40, I: 64, prologue, epilogue })), { prefill: [1, 3] }),
  // … and nested the other ways round, on odd sizes
  linearCase('every Expr op, nested otherwise (odd sizes)', [
    [bin('mul', x, un('sigmoid', ld('a'))), bin('add', un('silu', acc), bin('mul', ld('b'), un('sigmoid', acc)))],
    [bin('add', un('square', x), un('tanh', ld('a'))), bin('sub', un('square', un('relu', acc)), un('exp', un('neg', un('tanh', acc))))],
    [bin('sub', un('relu', x), un('exp', un('neg', x))), bin('mul', cst(0.5), bin('add', acc, ld('b')))],
    [un('silu', bin('add', x, cst(0.25))), undefined],
  ].map(([prologue, epilogue]) => ({ O: 21, I: 13, prologue, epilogue })), { prefill: [1, 3] }),
];

// ---------------------------------------------------------------------------------------------------
// Running a case

const seedOf = (s: string) => [...s].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 0x9e3779b1), 0x811c9dc5) >>> 0;
const uniform = (r: () => number, n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());

/** The case made concrete: its plan, weight values, initial buffers (per sequence) and tokens. */
interface Prepared {
  plan: KernelPlan;
  values: Record<string, Float32Array>;
  /** Each buffer as a model's state holds it (decode/prefill: maxT rows; a batch case: one sequence's). */
  init: StateTensors;
  /** Sequence b's buffers, for the batch program. */
  seqs: StateTensors[];
  tokens: Int32Array;
}

function prepare(c: KernelCase): Prepared {
  const r = seededRandom(seedOf(c.name));
  const maxT = c.batch ? 1 : Math.max(...c.prefill);
  const rowsOf = (b: BufSpec) => (b.rows === 'T' ? maxT : b.rows);
  const decls = (B: number): BufferDecl[] => [
    { name: 'tokens', dtype: 'i32', shape: ['T'], role: 'input' },
    { name: 'logits', dtype: 'f32', shape: [1, 4], role: 'output' },
    ...Object.entries(c.bufs).map(([name, b]): BufferDecl => ({ name, dtype: 'f32', shape: [B * rowsOf(b), b.width], role: 'state' })),
  ];
  const program = (T: number, kernel: Kernel, B = 1): Program => ({ maxT: T, kernels: [kernel], buffers: decls(B), activationPeakBytes: 0 });
  const values = Object.fromEntries(Object.entries(c.weights).map(([n, w]) => [n, uniform(r, w.shape.reduce((a, b) => a * b, 1), w.lo, w.hi)]));
  c.tweak?.(values);
  const plan: KernelPlan = {
    format: 'rwkvc-plan', version: 1, model: 'conformance',
    config: { nLayer: 1, nEmbd: 64, headSize: 64, nHead: 1, dimFfn: 64, vocabSize: c.vocab ?? 1, loraMix: 8, loraDecay: 8 },
    weights: Object.entries(c.weights).map(([name, w]) => ({ name, shape: w.shape, dtype: w.dtype ?? 'f32', source: { tensor: name, stored: w.shape } })),
    decode: program(1, c.kernel),
    prefill: program(maxT, c.kernel),
    ...(c.batch ? { batch: program(c.batch, { ...c.kernel, batch: true } as Kernel, c.batch) } : {}),
  };
  const fill = () => Object.fromEntries(Object.entries(c.bufs).map(([n, b]) => [n, uniform(r, rowsOf(b) * b.width, b.lo, b.hi)]));
  const init = fill();
  const seqs = Array.from({ length: c.batch ?? 0 }, fill);
  const n = Math.max(maxT, c.batch ?? 0);
  const tokens = Int32Array.from({ length: n }, (_, i) => (c.vocab && i > 0 ? Math.floor(r() * c.vocab) : 0));
  return { plan, values, init, seqs, tokens };
}

type Run = { program: 'decode' | 'prefill' | 'batch'; T: number };
const runsOf = (c: KernelCase): Run[] =>
  [{ program: 'decode', T: 1 }, ...c.prefill.map((T): Run => ({ program: 'prefill', T })),
    ...(c.batch ? [c.batch, c.batch - 1].map((T): Run => ({ program: 'batch', T })) : [])]; // batch: all sequences, and fewer

/** A batch call's buffers: sequence b's rows one after another. */
const concat = (seqs: StateTensors[], name: string) => {
  const parts = seqs.map((s) => s[name]);
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
};

/** The reference (f64) after one run, every buffer as the target returns it. */
function reference(c: KernelCase, p: Prepared, run: Run): Record<string, Float64Array> {
  const batch = run.program === 'batch';
  const bufs = Object.fromEntries(Object.keys(c.bufs).map((n) => [n, Float64Array.from(batch ? concat(p.seqs.slice(0, run.T), n) : p.init[n])]));
  const deq = Object.fromEntries(p.plan.weights.map((d) => [d.name, dequantize(p.values[d.name], d.shape[d.shape.length - 1], d.dtype)]));
  const env: KernelEnv = {
    T: run.T,
    // a buffer with a row per token is handed over at T rows (the reference sizes rows by T)
    buf: (n) => (c.bufs[n].rows === 'T' ? bufs[n].subarray(0, run.T * c.bufs[n].width) : bufs[n]),
    tokens: () => p.tokens.subarray(0, run.T),
    weight: (n) => deq[n],
  };
  runKernel(batch ? ({ ...c.kernel, batch: true } as Kernel) : c.kernel, env);
  return bufs;
}

/** One run on a loaded model: every buffer after it. */
async function runOn(m: TargetModel, p: Prepared, run: Run): Promise<Record<string, Float32Array>> {
  const tokens = p.tokens.subarray(0, run.T);
  if (run.program === 'batch') {
    const { states } = await m.runBatch!(tokens, p.seqs.slice(0, run.T));
    return Object.fromEntries(Object.keys(p.init).map((n) => [n, concat(states, n)]));
  }
  await m.writeState(p.init);
  await m.run(run.program, tokens);
  return m.readState();
}

/**
 * What a target that rounds an int8 matvec's input to `bits` bits (one scale per row) can move each
 * output buffer by, beyond its f32 tolerance: a dot product moves by up to Σ|w|·max|x| / (2^bits − 2).
 *   linear:      that, ×1.1 for the steepest epilogue of the int8 cases (silu' ≤ 1.1)
 *   token_shift: z = tanh(A·xxx) moves by eA = max_o Σ|A_o|·max|xxx| / (2^bits − 2) (tanh' ≤ 1), and B·z
 *                rounds z (|z| ≤ 1) too: m moves by max Σ_d|B|·(eA + 1 / (2^bits − 2)), the outputs by
 *                max|dx| times that
 */
function int8InputBound(c: KernelCase, p: Prepared, bits: number | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  const k = c.kernel;
  if (!bits) return out;
  const q = 2 ** bits - 2;
  const decl = (n: string) => p.plan.weights.find((w) => w.name === n)!;
  const deq = (n: string) => { const d = decl(n); return dequantize(p.values[n], d.shape[d.shape.length - 1], d.dtype); };
  const maxRowSum = (n: string) => {
    const d = decl(n), I = d.shape[d.shape.length - 1], w = deq(n);
    let m = 0;
    for (let o = 0; o < w.length / I; o++) {
      let s = 0;
      for (let i = 0; i < I; i++) s += Math.abs(w[o * I + i]);
      m = Math.max(m, s);
    }
    return m;
  };
  const maxAbs = (v: ArrayLike<number>) => Array.from(v).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const all = (n: string) => [p.init[n], ...p.seqs.map((s) => s[n])].flatMap((v) => Array.from(v));

  if (k.kind === 'linear')
    for (const g of k.groups) {
      if (!isBlockFormat(decl(g.w).dtype)) continue;
      const xs = p.init[g.x];
      let xmax = 0;
      for (let i = 0; i < xs.length; i++)
        xmax = Math.max(xmax, Math.abs(g.prologue ? evalExpr(g.prologue, 0, xs[i], (b) => p.init[b][i]) : xs[i]));
      out[g.y] = (1.1 * maxRowSum(g.w) * xmax) / q;
    }

  if (k.kind === 'token_shift' && k.lora && (isBlockFormat(decl(k.lora.a).dtype) || isBlockFormat(decl(k.lora.b).dtype))) {
    // a = LN(x) (or x), row by row, computed through the kernel itself
    const C = c.bufs[k.x].width, xs = all(k.x), a = new Float64Array(xs.length);
    if (k.ln) {
      const T = xs.length / C, ln: Kernel = { ...common, kind: 'layernorm', name: 'ln', rows: 'all', x: 'x', w: 'w', b: k.ln.b ? 'b' : null, rms: k.ln.rms, eps: k.ln.eps, out: 'a' };
      const w = deq(k.ln.w), b = k.ln.b ? deq(k.ln.b) : w, x64 = Float64Array.from(xs);
      runKernel(ln, { T, buf: (n) => (n === 'x' ? x64 : a), tokens: () => new Int32Array(T), weight: (n) => (n === 'w' ? w : b) });
    } else a.set(xs);
    const amax = maxAbs(a), dmax = Math.max(amax, maxAbs(all(k.shiftIn))) + amax;
    const eA = isBlockFormat(decl(k.lora.a).dtype) ? (maxRowSum(k.lora.a) * (amax + dmax * maxAbs(deq(k.lora.mu)))) / q : 0;
    const eZ = isBlockFormat(decl(k.lora.b).dtype) ? 1 / q : 0;
    for (const o of k.outs) out[o] = dmax * maxRowSum(k.lora.b) * (eA + eZ);
  }
  return out;
}

const prepared = new Map<string, { p: Prepared; refs: Record<string, Float64Array>[] }>();
function preparedCase(c: KernelCase) {
  let e = prepared.get(c.name);
  if (!e) {
    const p = prepare(c);
    prepared.set(c.name, (e = { p, refs: runsOf(c).map((run) => reference(c, p, run)) }));
  }
  return e;
}

// ---------------------------------------------------------------------------------------------------

afterAll(releaseTargets);

it('case names are unique', () => {
  const names = CASES.map((c) => c.name);
  expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
});

describe.each(suiteTargets({ withOracle: false }))('%s: kernels against kernels/reference.ts', (target) => {
  const allow = perTarget(target);

  it.for(CASES.map((c) => [c.name, c] as const))('%s', async ([, c], ctx) => {
    const { p, refs } = preparedCase(c);
    const runs = runsOf(c);
    const weights = (d: { name: string }) => p.values[d.name];
    const extra = int8InputBound(c, p, allow.int8InputBits);

    let first: Record<string, Float32Array>[] | null = null;
    for (const threads of [1, 3]) {
      const m = await loadOrSkip(ctx, target, p.plan, weights, { threads, runtime: allow.kernelLoad });
      try {
        const got: Record<string, Float32Array>[] = [];
        for (const run of runs) got.push(await runOn(m, p, run));
        if (!first) {
          runs.forEach((run, i) => {
            for (const [n, want] of Object.entries(refs[i])) {
              const what = `${run.program} T=${run.T} ${n}`;
              expectClose(got[i][n], want, c.exact ? 0 : allow.kernel, what, { extra: c.exact ? 0 : extra[n], elementwise: true });
            }
          });
          first = got;
          if (!(await takesThreads(target, m))) break;
        } else {
          runs.forEach((run, i) => {
            for (const n of Object.keys(refs[i]))
              expect(sameBits(got[i][n], first![i][n]), `${run.program} T=${run.T} ${n}: ${threads} threads differ from 1`).toBe(true);
          });
        }
      } finally {
        m.dispose();
      }
    }
  });
});
