/**
 * The linear kernel: y[t, o] = epilogue(Σ_i W[o, i]·prologue(x)[t, i]) for one or more matrices in one
 * phase, output rows split across threads in panels of 16.
 *
 * Weights are stored in panels [ceil(O/16)][I][16] (see pack.ts): for each input i the 16 weights of
 * a panel's outputs are adjacent, so
 *   - decode (matvec) streams each panel once, front to back, with one broadcast x[i] per 16 weights,
 *     four independent f32x4 accumulators and no horizontal sums;
 *   - prefill (matmul) keeps a 2-token × 16-output register tile (8 accumulators) and reuses every
 *     weight vector for both tokens; bf16/f16/int8 panels are first widened once into an f32 copy in
 *     the thread's scratch, so the hot loop is the same for every dtype.
 * Each output is computed by one thread with a summation order that depends only on I, so any
 * thread count gives bit-identical results.
 */
import type { Expr, WeightDType } from '../../kernels/plan.ts';
import { PANEL } from './abi.ts';
import { printExpr } from './expr.ts';
import { f4, get, i32, i4, ld, Locals, madd, Params, set, splat, st, storeLanes } from './wat.ts';
import { q4BlockBytes } from './pack.ts';

export interface PanelWeight {
  addr: number;
  dtype: WeightDType;
  O: number;
  I: number;
}

/** A buffer an expression loads: element (row, col) is at addr + (row·stride + col)·4; stride 0 = broadcast row. */
export interface LoadRef {
  addr: number;
  stride: number;
  /** addr is an offset in the calling thread's scratch (a per-thread copy), not an absolute address. */
  scratch?: boolean;
}

export interface LinTask {
  w: PanelWeight;
  x: number;
  xStride: number;
  /** x is at this offset in the calling thread's scratch instead of at `x`. */
  xScratch?: number;
  y: number;
  yStride: number;
  prologue?: Expr;
  epilogue?: Expr;
  loads: Record<string, LoadRef>;
  /** rows 'last': only x row T−1, written to y row 0 (epilogue loads use row 0 too, as the reference). */
  last: boolean;
}

/**
 * Loop shapes of the linear kernel (the schedule, apart from the algorithm). The defaults were
 * measured best with V8 on x64: its scheduler hoists every load of an unrolled iteration to the
 * top, so wider unrolls or tiles spill (15 usable xmm registers).
 */
export interface LinearSchedule {
  /** Tokens per matmul register tile (× 16 outputs): 2 → 8 accumulators. */
  tileT: number;
  /** Inputs per matmul loop iteration. */
  unroll: number;
  /** Inputs per matvec loop iteration (f32/bf16/f16). */
  mvUnroll: number;
  /** int8 matvec: input pairs per inner iteration (divides 16, the pairs of a 32-input block). */
  int8Unroll: number;
  /**
   * Panels an f32 or bf16 matvec streams side by side (1 or 2): two streams keep more cache-line
   * fetches in flight than one, and each broadcast x serves both (decode −13 % time). f16 and int8
   * stream one: f16's widening temporaries and int8's address registers (V8 gives every load8x8_s
   * offset its own) spill with two (measured: f16 even, int8 +10 %).
   */
  mvPanels: number;
}
export const DEFAULT_SCHEDULE: LinearSchedule = { tileT: 2, unroll: 1, mvUnroll: 1, int8Unroll: 2, mvPanels: 2 };

export interface LinOptions {
  relaxed: boolean;
  schedule?: LinearSchedule;
  /** true: T is a runtime parameter and rows go through the 2-row matmul tile; false: T = 1. */
  matmul: boolean;
  /** Byte offsets inside the thread scratch ($ts) of the prologue staging area and the widened panel. */
  stageOff: number;
  panelOff: number;
}

/**
 * Bytes of one panel (int8: blocks of 32 inputs, each 512 weight bytes and 16 f16 scales; q4: 256
 * nibble bytes, 16 f16 d and, for q4_1, 16 f16 minimums).
 */
export const panelBytes = (dtype: WeightDType, I: number): number => {
  switch (dtype) {
    case 'f32': return I * PANEL * 4;
    case 'bf16': case 'f16': return I * PANEL * 2;
    case 'int8': return (I / 32) * (32 * PANEL + PANEL * 2);
    case 'q4_0': case 'q4_1': return (I / 32) * q4BlockBytes(dtype);
  }
};

/** Formats whose matvec rounds x to i16 first and runs integer dot products per 32-input block. */
const INT_DOT = new Set<WeightDType>(['int8', 'q4_0', 'q4_1']);
type FloatFormat = 'f32' | 'bf16' | 'f16';

const HI16 = 0xffff0000 | 0;
const F16_MASK = 0x8fffe000 | 0;

/**
 * The four f32x4 weight vectors (outputs 4v..4v+3 of the panel) of input column at byte `off` from
 * the pointer local `wp`. `pre` loads the raw vector(s) into locals; f16 values come out scaled by
 * 2^-112 (fixed by the caller: x·2^64 and acc·2^48).
 */
function weightVectors(dtype: FloatFormat, wp: string, off: number): { pre: string; w: string[] } {
  const A = get('wa'), B = get('wb');
  switch (dtype) {
    case 'f32':
      return { pre: '', w: [0, 1, 2, 3].map((v) => ld(get(wp), off + 16 * v)) };
    case 'bf16':
      return {
        pre: set('wa', ld(get(wp), off)) + set('wb', ld(get(wp), off + 16)),
        w: [`(i32x4.shl ${A} (i32.const 16))`, `(v128.and ${A} ${i4(HI16)})`,
          `(i32x4.shl ${B} (i32.const 16))`, `(v128.and ${B} ${i4(HI16)})`],
      };
    case 'f16': {
      const even = (v: string) => `(v128.and (i32x4.shr_s (i32x4.shl ${v} (i32.const 16)) (i32.const 3)) ${i4(F16_MASK)})`;
      const odd = (v: string) => `(v128.and (i32x4.shr_s ${v} (i32.const 3)) ${i4(F16_MASK)})`;
      return { pre: set('wa', ld(get(wp), off)) + set('wb', ld(get(wp), off + 16)), w: [even(A), odd(A), even(B), odd(B)] };
    }
  }
}

/** Byte stride per input column inside a panel (f32, bf16, f16). */
const colBytes = (dtype: FloatFormat) => (dtype === 'f32' ? 64 : 32);

/**
 * The block's four scale vectors (outputs 4v..4v+3) from its 16 f16 scales at byte `off` of `wp`,
 * times 2^-24 (what the int8 kernels expect): f16 bits << 13 read as f32 are the value · 2^-112 for
 * every positive f16, subnormals included, so one multiply by 2^88 finishes it exactly.
 */
const int8Scales = (wp: string, off: number): string[] => [0, 1, 2, 3].map((v) =>
  `(f32x4.mul (i32x4.shl (i32x4.extend_${v & 1 ? 'high' : 'low'}_i16x8_u ${ld(get(wp), off + 16 * (v >> 1))}) (i32.const 13)) ${f4(2 ** 88)})`);

/**
 * Eight signed f16 at byte `off` of `wp` as four f32x4 (outputs 4v..4v+3) times `mul`: the f16 bits
 * moved to the top of an i32 lane and shifted right arithmetically by 3 are the value · 2^-112 with its
 * sign (q4_0's d and q4_1's minimum may be negative; subnormals exact); mul 2^112 gives the value, 2^88
 * the value · 2^-24 the integer kernels expect.
 */
const signedF16 = (wp: string, off: number, mul: number): string[] => [0, 1, 2, 3].map((v) =>
  `(f32x4.mul (v128.and (i32x4.shr_s (i32x4.shl (i32x4.extend_${v & 1 ? 'high' : 'low'}_i16x8_u ${ld(get(wp), off + 16 * (v >> 1))}) (i32.const 16)) (i32.const 3)) ${i4(F16_MASK)}) ${f4(mul)})`);

/** Formats whose matvec may stream two panels at once (LinearSchedule.mvPanels). */
const TWO_STREAM = new Set<WeightDType>(['f32', 'bf16']);

/** Accumulators of the k-th panel a matvec streams (outputs 4v..4v+3 in the v-th). */
const accNames = (k: number): string[] => [0, 1, 2, 3].map((v) => (k ? `e${v}` : `c${v}`));

/** i8x16.swizzle indices putting bytes b0..b3 at the top of the four i32 lanes (index −128 gives 0). */
const toTop = (b: number[]) => `(v128.const i8x16 ${b.map((j) => `-128 -128 -128 ${j}`).join(' ')})`;

export class LinearRenderer {
  readonly L = new Locals();
  private readonly s: LinearSchedule;
  constructor(readonly P: Params, readonly o: LinOptions) {
    this.s = o.schedule ?? DEFAULT_SCHEDULE;
    if (16 % this.s.int8Unroll || ![1, 2].includes(this.s.mvPanels) || this.s.tileT < 1 || this.s.unroll < 1 || this.s.mvUnroll < 1) throw new Error(`bad linear schedule ${JSON.stringify(this.s)}`);
    for (const n of ['lo', 'hi', 'pa', 'pb', 'p', 'wp', 'wq', 'xp', 'xe', 'x0', 't', 'k', 'yp', 'row']) this.L.add(n, 'i32');
    for (const n of ['wa', 'wb', 'xs', 'ev']) this.L.add(n, 'v128');
  }

  /** Body of a phase function over all tasks (params $tid $nth $T in scope). */
  render(tasks: LinTask[]): string {
    const units = tasks.map((t) => Math.ceil(t.w.O / PANEL));
    const total = units.reduce((a, b) => a + b, 0);
    const out: string[] = [
      set('lo', `(call $lo ${i32(total)} (local.get $tid) (local.get $nth))`),
      set('hi', `(call $lo ${i32(total)} (i32.add (local.get $tid) (i32.const 1)) (local.get $nth))`),
    ];
    let base = 0;
    tasks.forEach((t, g) => {
      out.push(`;; task ${g}: ${t.w.O}×${t.w.I} ${t.w.dtype}`);
      out.push(set('pa', `(i32.sub ${get('lo')} ${i32(base)})`));
      out.push(`(if (i32.lt_s ${get('pa')} (i32.const 0)) (then ${set('pa', i32(0))}))`);
      out.push(set('pb', `(i32.sub ${get('hi')} ${i32(base)})`));
      out.push(`(if (i32.gt_s ${get('pb')} ${i32(units[g])}) (then ${set('pb', i32(units[g]))}))`);
      out.push(`(if (i32.lt_s ${get('pa')} ${get('pb')}) (then\n${this.task(t)}))`);
      base += units[g];
    });
    return out.join('\n');
  }

  /** One task over the panels [pa, pb) given as i32 WAT (a caller's own split, e.g. by heads). */
  renderRange(t: LinTask, pa: string, pb: string): string {
    return `${set('pa', pa)} ${set('pb', pb)}\n(if (i32.lt_s ${get('pa')} ${get('pb')}) (then\n${this.task(t)}))`;
  }

  private task(t: LinTask): string {
    const { I } = t.w;
    const out: string[] = [];
    // Row of x the matvec reads: row 0 at decode, row T−1 for rows 'last'.
    let x = t.xScratch !== undefined ? `(i32.add (global.get $ts) ${i32(t.xScratch)})` : this.P.addr(t.x);
    if (t.last) x = `(i32.add ${x} (i32.mul (i32.sub (local.get $T) (i32.const 1)) ${i32(t.xStride * 4)}))`;
    let xStride = t.xStride;
    if (t.prologue) {
      if (t.xStride !== I) throw new Error('a prologue needs x rows of width I');
      out.push(this.stage(t, x));
      x = `(i32.add (global.get $ts) ${i32(this.o.stageOff)})`;
      xStride = I;
    }
    out.push(set('x0', x));
    const matmul = this.o.matmul && !t.last;
    const f32Panels = t.w.dtype === 'f32';
    out.push(set('p', get('pa')));
    const panel: string[] = [];
    const panelAt = (ptr: string, p: string) => set(ptr, `(i32.add ${this.P.addr(t.w.addr)} (i32.mul ${p} ${i32(panelBytes(t.w.dtype, I))}))`);
    if (!matmul) {
      if (INT_DOT.has(t.w.dtype)) {
        out.push(this.quantizeX(I, get('x0'), t.w.dtype !== 'int8'));
        out.push(set('x0', `(i32.add (global.get $ts) ${i32(this.o.panelOff)})`));
      }
      const one = [panelAt('wp', get('p')), this.matvec(t, t.w.dtype, get('x0'), 1), this.stores(t, accNames(0), i32(0))].join('\n');
      if (this.s.mvPanels === 1 || !TWO_STREAM.has(t.w.dtype)) panel.push(one);
      else panel.push(`(if (i32.lt_s (i32.add ${get('p')} (i32.const 1)) ${get('pb')}) (then
${panelAt('wp', get('p'))} ${panelAt('wq', `(i32.add ${get('p')} (i32.const 1))`)}
${this.matvec(t, t.w.dtype, get('x0'), 2)}
${this.stores(t, accNames(0), i32(0))}
${set('p', `(i32.add ${get('p')} (i32.const 1))`)}
${this.stores(t, accNames(1), i32(0))})
(else
${one}))`);
    } else {
      panel.push(panelAt('wp', get('p')));
      if (!f32Panels) {
        panel.push(this.widen(t));
        panel.push(set('wp', `(i32.add (global.get $ts) ${i32(this.o.panelOff)})`));
      }
      panel.push(this.matmulRows(t, xStride));
    }
    out.push(`(block $pd (loop $pl (br_if $pd (i32.ge_s ${get('p')} ${get('pb')}))\n${panel.join('\n')}\n${set('p', `(i32.add ${get('p')} (i32.const 1))`)} (br $pl)))`);
    return out.join('\n');
  }

  /** prologue(x) of the needed rows into the thread's staging area (every thread stages its own copy). */
  private stage(t: LinTask, xRow: string): string {
    const I = t.w.I;
    const n = t.last ? i32(I * 4) : `(i32.mul (local.get $T) ${i32(I * 4)})`;
    const rowOff = (r: LoadRef) => (t.last ? `(i32.mul (i32.sub (local.get $T) (i32.const 1)) ${i32(r.stride * 4)})` : i32(0));
    const e = printExpr(t.prologue!, {
      x: ld(`(i32.add ${xRow} ${get('k')})`),
      load: (b) => {
        const r = t.loads[b];
        if (!r) throw new Error(`prologue loads unknown buffer '${b}'`);
        if (r.stride !== I) throw new Error(`prologue load '${b}' must have rows of width I`);
        return ld(`(i32.add (i32.add ${this.P.addr(r.addr)} ${rowOff(r)}) ${get('k')})`);
      },
    });
    // Whole vectors: the staging area has room past the end, and loads past a buffer's end stay in memory.
    return `${set('k', i32(0))}
(block $sd (loop $sl (br_if $sd (i32.ge_u ${get('k')} ${n}))
  ${st(`(i32.add (i32.add (global.get $ts) ${i32(this.o.stageOff)}) ${get('k')})`, e)}
  ${set('k', `(i32.add ${get('k')} (i32.const 16))`)} (br $sl)))`;
  }

  /**
   * x row → i16 at the thread's panel area (free at decode), with $sx = max|x|/32767 · 2^24 so that
   * x ≈ q·$sx·2^-24 (int8Scales carry the 2^-24). 16 bits keep the rounding of x well
   * under that of the int8 weights (Q8_0 rounds x to 8 bits per 32). Every thread quantises its own
   * copy, in the same order, so results do not depend on the thread count.
   */
  private quantizeX(I: number, xRow: string, sums: boolean): string {
    this.L.add('sx', 'f32'); this.L.add('qi', 'f32');
    const q = (off: number) => `(i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul ${ld(`(i32.add ${xRow} ${get('k')})`, off)} (f32x4.splat ${get('qi')}))))`;
    const lane = (n: number) => `(f32x4.extract_lane ${n} ${get('xs')})`;
    return `${set('xs', f4(0))} ${set('k', i32(0))}
(loop $qm ${set('xs', `(f32x4.max ${get('xs')} (f32x4.abs ${ld(`(i32.add ${xRow} ${get('k')})`)}))`)}
  ${set('k', `(i32.add ${get('k')} (i32.const 16))`)} (br_if $qm (i32.lt_u ${get('k')} ${i32(I * 4)})))
${set('sx', `(f32.max (f32.max ${lane(0)} ${lane(1)}) (f32.max ${lane(2)} ${lane(3)}))`)}
${set('qi', `(select (f32.div (f32.const 32767) ${get('sx')}) (f32.const 0) (f32.gt ${get('sx')} (f32.const 0)))`)}
${set('sx', `(f32.mul ${get('sx')} (f32.const ${2 ** 24 / 32767}))`)}
${set('k', i32(0))}
(loop $qs ${st(`(i32.add (i32.add (global.get $ts) ${i32(this.o.panelOff)}) (i32.shr_u ${get('k')} (i32.const 1)))`, `(i16x8.narrow_i32x4_s ${q(0)} ${q(16)})`)}
  ${set('k', `(i32.add ${get('k')} (i32.const 32))`)} (br_if $qs (i32.lt_u ${get('k')} ${i32(I * 4)})))${sums ? '\n' + this.blockSums(I) : ''}`;
  }

  /**
   * The i32 sum of each 32-block of the i16 x row (after it, at panelOff + 2I): the q4 kernels take
   * their offset (q4_0's −8·d, q4_1's m) once per block as offset · Σx instead of once per weight.
   */
  private blockSums(I: number): string {
    const at = `(i32.add (global.get $ts) ${i32(this.o.panelOff)})`;
    const part = (off: number) => `(i32x4.extadd_pairwise_i16x8_s ${ld(`(i32.add ${at} ${get('k')})`, off)})`;
    const lane = (n: number) => `(i32x4.extract_lane ${n} ${get('xs')})`;
    return `${set('k', i32(0))}
(loop $qb ${set('xs', `(i32x4.add (i32x4.add ${part(0)} ${part(16)}) (i32x4.add ${part(32)} ${part(48)}))`)}
  (i32.store offset=${I * 2} (i32.add ${at} (i32.shr_u ${get('k')} (i32.const 4))) (i32.add (i32.add ${lane(0)} ${lane(1)}) (i32.add ${lane(2)} ${lane(3)})))
  ${set('k', `(i32.add ${get('k')} (i32.const 64))`)} (br_if $qb (i32.lt_u ${get('k')} ${i32(I * 2)})))`;
  }

  /**
   * The 16 dot products of each of `np` panels (at $wp, then $wq) with the x row at `xRow`, any dtype,
   * into accNames(k): every panel's sums are formed in the same order whatever `np` is, so pairing
   * panels (or not, at a thread's odd last one) never changes a result.
   */
  private matvec(t: LinTask, dtype: WeightDType, xRow: string, np: 1 | 2): string {
    const I = t.w.I, R = this.o.relaxed;
    const ks = np === 2 ? [0, 1] : [0];
    const ptr = (k: number) => (k ? 'wq' : 'wp');
    const bump = (by: number) => ks.map((k) => set(ptr(k), `(i32.add ${get(ptr(k))} ${i32(by)})`)).join(' ');
    const out: string[] = [];
    for (const k of ks) for (const c of accNames(k)) { this.L.add(c, 'v128'); out.push(set(c, f4(0))); }
    out.push(set('xp', xRow));
    const xsOf = (off: number) => (dtype === 'f16' ? `(f32x4.mul ${splat(get('xp'), off)} ${f4(2 ** 64)})` : splat(get('xp'), off));
    if (dtype === 'int8') {
      // x was rounded to i16 (quantizeX). Per input pair the panel holds 16 outputs × 2 inputs, so
      // i32x4.dot_i16x8_s of the widened weights with the broadcast pair (x[2j], x[2j+1]) adds both
      // products of four outputs at once; the block's exact i32 sums are scaled once per 32 inputs.
      if (np !== 1) throw new Error('the int8 matvec streams one panel at a time');
      const U = this.s.int8Unroll, c = accNames(0), d = c.map((n) => `i${n}`);
      for (const n of d) this.L.add(n, 'v128');
      const step: string[] = [];
      for (let u = 0; u < U; u++) {
        step.push(set('xs', `(v128.load32_splat offset=${4 * u} ${get('xp')})`));
        // v128.load8x8_s loads 8 weights sign-extended to i16 in one instruction (pmovsxbw)
        d.forEach((n, v) => step.push(set(n, `(i32x4.add ${get(n)} (i32x4.dot_i16x8_s (v128.load8x8_s offset=${32 * u + 8 * v} ${get('wp')}) ${get('xs')}))`)));
      }
      out.push(set('xe', `(i32.add ${get('xp')} ${i32(I * 2)})`));
      out.push(`(loop $blk
  ${d.map((n) => set(n, i4(0))).join(' ')}
  ${set('k', i32(16 / U))}
  (loop $in
    ${step.join('\n    ')}
    ${bump(32 * U)} ${set('xp', `(i32.add ${get('xp')} ${i32(4 * U)})`)}
    ${set('k', `(i32.sub ${get('k')} (i32.const 1))`)} (br_if $in ${get('k')}))
  ${int8Scales('wp', 0).map((sv, v) => set(c[v], madd(R, `(f32x4.convert_i32x4_s ${get(d[v])})`, sv, get(c[v])))).join('\n  ')}
  ${bump(32)}
  (br_if $blk (i32.lt_u ${get('xp')} ${get('xe')})))`);
      for (const n of c) out.push(set(n, `(f32x4.mul ${get(n)} (f32x4.splat ${get('sx')}))`));
      return out.join('\n');
    }
    if (dtype === 'q4_0' || dtype === 'q4_1') {
      // As int8, with the pair's 32 nibbles in one 16-byte load, laid out (pack.ts) so that nibble v of
      // its i16 lane 2l+u is output 4v+l, input u: an AND, or a shift and an AND, of the i16 lanes gives
      // the i16 pairs of outputs 4v..4v+3 that i32x4.dot_i16x8_s takes with the broadcast x pair, no
      // widening (7 operations per 32 weights; int8's byte order cost an i8 shift and four widenings).
      // The block's nibble sums Σq·x are exact in i32 (< 2^24, so exact in f32 too); the offset enters
      // once per block: q4_0 Σ(q − 8)·x = Σq·x − 8·Σx, q4_1 adds m·Σx.
      if (np !== 1) throw new Error('the q4 matvec streams one panel at a time');
      this.L.add('sp', 'i32'); this.L.add('nm', 'v128');
      const U = this.s.int8Unroll, c = accNames(0), d = c.map((n) => `i${n}`);
      for (const n of d) this.L.add(n, 'v128');
      const step: string[] = [];
      // the mask in a local: V8 would materialise a constant operand inside the loop
      out.push(set('nm', `(v128.const i16x8 ${Array(8).fill(15).join(' ')})`));
      const W = get('wa'), M = get('nm');
      const nibbles = [`(v128.and ${W} ${M})`, `(v128.and (i16x8.shr_u ${W} (i32.const 4)) ${M})`,
        `(v128.and (i16x8.shr_u ${W} (i32.const 8)) ${M})`, `(i16x8.shr_u ${W} (i32.const 12))`];
      for (let u = 0; u < U; u++) {
        step.push(set('xs', `(v128.load32_splat offset=${4 * u} ${get('xp')})`));
        step.push(set('wa', ld(get('wp'), 16 * u)));
        d.forEach((n, v) => step.push(set(n, `(i32x4.add ${get(n)} (i32x4.dot_i16x8_s ${nibbles[v]} ${get('xs')}))`)));
      }
      const sum = `(v128.load32_splat ${get('sp')})`;
      const blockEnd = dtype === 'q4_0'
        ? [set('xs', `(i32x4.shl ${sum} (i32.const 3))`),
          ...signedF16('wp', 0, 2 ** 88).map((sv, v) => set(c[v], madd(R, `(f32x4.convert_i32x4_s (i32x4.sub ${get(d[v])} ${get('xs')}))`, sv, get(c[v]))))]
        : [set('xs', `(f32x4.convert_i32x4_s ${sum})`),
          ...signedF16('wp', 0, 2 ** 88).map((sv, v) => set(c[v], madd(R, `(f32x4.convert_i32x4_s ${get(d[v])})`, sv, get(c[v])))),
          ...signedF16('wp', 32, 2 ** 88).map((mv, v) => set(c[v], madd(R, get('xs'), mv, get(c[v]))))];
      out.push(set('xe', `(i32.add ${get('xp')} ${i32(I * 2)})`));
      out.push(set('sp', get('xe')));
      out.push(`(loop $blk
  ${d.map((n) => set(n, i4(0))).join(' ')}
  ${set('k', i32(16 / U))}
  (loop $in
    ${step.join('\n    ')}
    ${bump(16 * U)} ${set('xp', `(i32.add ${get('xp')} ${i32(4 * U)})`)}
    ${set('k', `(i32.sub ${get('k')} (i32.const 1))`)} (br_if $in ${get('k')}))
  ${blockEnd.join('\n  ')}
  ${bump(dtype === 'q4_0' ? 32 : 64)} ${set('sp', `(i32.add ${get('sp')} (i32.const 4))`)}
  (br_if $blk (i32.lt_u ${get('xp')} ${get('xe')})))`);
      for (const n of c) out.push(set(n, `(f32x4.mul ${get(n)} (f32x4.splat ${get('sx')}))`));
      return out.join('\n');
    }
    const cb = colBytes(dtype);
    const U = this.s.mvUnroll;
    const main = Math.floor(I / U), rest = I % U;
    const step = (u: number) => {
      const s: string[] = [set('xs', xsOf(4 * u))];
      for (const k of ks) {
        const { pre, w } = weightVectors(dtype, ptr(k), cb * u);
        s.push(pre, ...w.map((wv, v) => set(accNames(k)[v], madd(R, get('xs'), wv, get(accNames(k)[v])))));
      }
      return s.join(' ');
    };
    if (main > 0) {
      out.push(set('xe', `(i32.add ${get('xp')} ${i32(main * U * 4)})`));
      const body: string[] = [];
      for (let u = 0; u < U; u++) body.push(step(u));
      out.push(`(loop $mv\n  ${body.join('\n  ')}
  ${bump(cb * U)} ${set('xp', `(i32.add ${get('xp')} ${i32(4 * U)})`)}
  (br_if $mv (i32.lt_u ${get('xp')} ${get('xe')})))`);
    }
    for (let u = 0; u < rest; u++) out.push(step(u));
    if (dtype === 'f16') for (const k of ks) for (const c of accNames(k)) out.push(set(c, `(f32x4.mul ${get(c)} ${f4(2 ** 48)})`));
    return out.join('\n');
  }

  /** Widen panel $wp (bf16/f16/int8) to exact f32 values in the thread scratch, same [I][16] order. */
  private widen(t: LinTask): string {
    const { I, dtype } = t.w;
    const dst = `(i32.add (global.get $ts) ${i32(this.o.panelOff)})`;
    const out: string[] = [set('wq', dst), set('xe', `(i32.add ${get('wq')} ${i32(I * 64)})`)];
    const stores = (w: string[], scale: (v: number) => string) =>
      w.map((wv, v) => st(get('wq'), scale(v).replace('#', wv), 16 * v)).join(' ');
    if (dtype === 'int8') {
      // a pair group: 16 bytes = outputs 0..7 × inputs (2j, 2j+1), then outputs 8..15. Output 4v+l of
      // input u is byte 2(4(v&1)+l)+u of half v>>1; moved to the top of an i32 lane it is q·2^24
      // exactly, and int8Scales carry the 2^-24.
      for (let v = 0; v < 4; v++) this.L.add(`s${v}`, 'v128');
      const vec = (u: number, v: number) =>
        `(f32x4.convert_i32x4_s (i8x16.swizzle ${get(v < 2 ? 'wa' : 'wb')} ${toTop([0, 1, 2, 3].map((l) => 2 * (4 * (v & 1) + l) + u))}))`;
      const pair: string[] = [set('wa', ld(get('wp'))), set('wb', ld(get('wp'), 16))];
      for (let u = 0; u < 2; u++) for (let v = 0; v < 4; v++) pair.push(st(get('wq'), `(f32x4.mul ${vec(u, v)} ${get(`s${v}`)})`, 64 * u + 16 * v));
      out.push(`(loop $wb
  ${int8Scales('wp', 512).map((sv, v) => set(`s${v}`, sv)).join(' ')}
  ${set('k', i32(16))}
  (loop $wi ${pair.join(' ')}
    ${set('wp', `(i32.add ${get('wp')} (i32.const 32))`)} ${set('wq', `(i32.add ${get('wq')} (i32.const 128))`)}
    ${set('k', `(i32.sub ${get('k')} (i32.const 1))`)} (br_if $wi ${get('k')}))
  ${set('wp', `(i32.add ${get('wp')} (i32.const 32))`)}
  (br_if $wb (i32.lt_u ${get('wq')} ${get('xe')})))`);
    } else if (dtype === 'q4_0' || dtype === 'q4_1') {
      // Per pair: output 4v+l of input u is nibble v of i16 lane 2l+u, i.e. bits 16u+4v.. of i32 lane l:
      // one shift and an AND put it at the bottom of the lane. (q − 8)·d is exact in f32;
      // q·d + m is the one rounding dequantize() makes (mul, then add: no fused multiply-add).
      for (let v = 0; v < 4; v++) { this.L.add(`s${v}`, 'v128'); this.L.add(`m${v}`, 'v128'); }
      const q1 = dtype === 'q4_1';
      const vec = (u: number, v: number) => `(f32x4.convert_i32x4_s (v128.and (i32x4.shr_u ${get('wa')} (i32.const ${16 * u + 4 * v})) ${i4(15)}))`;
      const pair: string[] = [set('wa', ld(get('wp')))];
      for (let u = 0; u < 2; u++) for (let v = 0; v < 4; v++)
        pair.push(st(get('wq'), q1 ? `(f32x4.add (f32x4.mul ${vec(u, v)} ${get(`s${v}`)}) ${get(`m${v}`)})` : `(f32x4.mul (f32x4.sub ${vec(u, v)} ${f4(8)}) ${get(`s${v}`)})`, 64 * u + 16 * v));
      out.push(`(loop $wb
  ${signedF16('wp', 256, 2 ** 112).map((sv, v) => set(`s${v}`, sv)).join(' ')}
  ${q1 ? signedF16('wp', 288, 2 ** 112).map((mv, v) => set(`m${v}`, mv)).join(' ') : ''}
  ${set('k', i32(16))}
  (loop $wi ${pair.join(' ')}
    ${set('wp', `(i32.add ${get('wp')} (i32.const 16))`)} ${set('wq', `(i32.add ${get('wq')} (i32.const 128))`)}
    ${set('k', `(i32.sub ${get('k')} (i32.const 1))`)} (br_if $wi ${get('k')}))
  ${set('wp', `(i32.add ${get('wp')} ${i32(q1 ? 64 : 32)})`)}
  (br_if $wb (i32.lt_u ${get('wq')} ${get('xe')})))`);
    } else {
      const { pre, w } = weightVectors(dtype, 'wp', 0);
      const scale = dtype === 'f16' ? (_: number) => `(f32x4.mul # ${f4(2 ** 112)})` : () => '#';
      out.push(`(loop $wl ${pre} ${stores(w, scale)}
  ${set('wp', `(i32.add ${get('wp')} (i32.const 32))`)} ${set('wq', `(i32.add ${get('wq')} (i32.const 64))`)}
  (br_if $wl (i32.lt_u ${get('wq')} ${get('xe')})))`);
    }
    return out.join('\n');
  }

  /** All T rows against the f32 panel at $wp: 2-row tiles, then a 1-row tail. */
  private matmulRows(t: LinTask, xStride: number): string {
    const I = t.w.I, R = this.o.relaxed;
    const tile = (rows: number) => {
      const acc = (r: number, v: number) => `m${r}_${v}`;
      for (let r = 0; r < rows; r++) for (let v = 0; v < 4; v++) this.L.add(acc(r, v), 'v128');
      for (let r = 0; r < rows; r++) this.L.add(`xs${r}`, 'v128');
      const init = [] as string[];
      for (let r = 0; r < rows; r++) for (let v = 0; v < 4; v++) init.push(set(acc(r, v), f4(0)));
      const step = (u: number) => {
        const s: string[] = [];
        for (let r = 0; r < rows; r++) s.push(set(`xs${r}`, splat(get('xp'), r * xStride * 4 + 4 * u)));
        for (let v = 0; v < 4; v++) {
          s.push(set('ev', ld(get('wq'), 64 * u + 16 * v)));
          for (let r = 0; r < rows; r++) s.push(set(acc(r, v), madd(R, get(`xs${r}`), get('ev'), get(acc(r, v)))));
        }
        return s.join(' ');
      };
      const main = Math.floor(I / this.s.unroll), rest = I % this.s.unroll;
      const body: string[] = [...init, set('wq', get('wp')),
        set('xp', `(i32.add ${get('x0')} (i32.mul ${get('t')} ${i32(xStride * 4)}))`)];
      if (main > 0) {
        const steps: string[] = [];
        for (let u = 0; u < this.s.unroll; u++) steps.push(step(u));
        body.push(set('xe', `(i32.add ${get('xp')} ${i32(main * this.s.unroll * 4)})`));
        body.push(`(loop $mm\n  ${steps.join('\n  ')}
  ${set('wq', `(i32.add ${get('wq')} ${i32(64 * this.s.unroll)})`)} ${set('xp', `(i32.add ${get('xp')} ${i32(4 * this.s.unroll)})`)}
  (br_if $mm (i32.lt_u ${get('xp')} ${get('xe')})))`);
      }
      for (let u = 0; u < rest; u++) body.push(step(u));
      for (let r = 0; r < rows; r++)
        body.push(this.stores(t, [0, 1, 2, 3].map((v) => acc(r, v)), `(i32.add ${get('t')} ${i32(r)})`));
      return body.join('\n');
    };
    return `${set('t', i32(0))}
(block $td (loop $tl (br_if $td (i32.gt_s (i32.add ${get('t')} ${i32(this.s.tileT)}) (local.get $T)))
${tile(this.s.tileT)}
${set('t', `(i32.add ${get('t')} ${i32(this.s.tileT)})`)} (br $tl)))
(block $rd (loop $rl (br_if $rd (i32.ge_s ${get('t')} (local.get $T)))
${tile(1)}
${set('t', `(i32.add ${get('t')} (i32.const 1))`)} (br $rl)))`;
  }

  /** Epilogue and store of panel $p's 16 outputs of row `row` (i32 WAT); the last panel may be partial. */
  private stores(t: LinTask, acc: string[], row: string): string {
    const O = t.w.O, np = Math.ceil(O / PANEL), partial = O % PANEL;
    const colOff = `(i32.mul ${get('p')} (i32.const 64))`;
    const at = (addr: number, stride: number, scratch = false) => {
      const base = scratch ? `(i32.add (global.get $ts) ${i32(addr)})` : this.P.addr(addr);
      return stride === 0
        ? `(i32.add ${base} ${colOff})`
        : `(i32.add (i32.add ${base} (i32.mul ${row} ${i32(stride * 4)})) ${colOff})`;
    };
    const lines: string[] = [set('yp', at(t.y, t.yStride))];
    const value = (v: number) => {
      if (!t.epilogue) return get(acc[v]);
      return printExpr(t.epilogue, {
        acc: get(acc[v]),
        load: (b) => {
          const r = t.loads[b];
          if (!r) throw new Error(`epilogue loads unknown buffer '${b}'`);
          return ld(at(r.addr, r.stride, r.scratch), 16 * v);
        },
      });
    };
    const full: string[] = [], part: string[] = [];
    for (let v = 0; v < 4; v++) {
      full.push(st(get('yp'), value(v), 16 * v));
      const n = Math.min(4, Math.max(0, partial - 4 * v));
      if (n > 0) part.push(set('ev', value(v)), storeLanes(`(i32.add ${get('yp')} ${i32(16 * v)})`, get('ev'), n));
    }
    if (!partial) return [...lines, ...full].join('\n');
    lines.push(`(if (i32.eq ${get('p')} ${i32(np - 1)}) (then ${part.join('\n')}) (else ${full.join('\n')}))`);
    return lines.join('\n');
  }
}
