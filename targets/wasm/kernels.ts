/**
 * Lowering of each plan kernel to phases: WAT function bodies separated by a barrier. A phase splits
 * its work (panels, rows or heads) across threads; every element is written by one thread.
 *
 *   embed        1 phase (rows)
 *   layernorm    1 phase (rows)
 *   linear       1 phase (panels of all groups)
 *   token_shift  LN rows → lerps → [lora: z = tanh(A·xxx) → m_s = B_s·z_s fused with the lerp]
 *   wkv          [lora: w = exp(−exp(base + B·z)) as a linear] → recurrence per head (+ norm, gate)
 */
import { exprLoads } from '../../kernels/expr.ts';
import type { EmbedKernel, Expr, Kernel, LayerNormKernel, LinearKernel, TokenShiftKernel, WkvKernel } from '../../kernels/plan.ts';
import { LinearRenderer, type LinearSchedule, type LinTask, type LoadRef, type PanelWeight } from './linear.ts';
import { f4, get, i32, ld, Locals, madd, Params, set, splat, st, storeLanes } from './wat.ts';

/** A phase: one function every thread calls; a barrier follows unless `barrier` is false. */
export interface Phase { body: string; params: Params; locals: Locals; barrier?: boolean }

export interface LowerEnv {
  relaxed: boolean;
  matmul: boolean;
  maxT: number;
  buf(name: string): number;
  width(name: string): number;
  raw(weight: string): number;
  /** An embedding table: f32, or kept as bf16/f16 (rows widened when read). */
  table(weight: string): { addr: number; dtype: 'f32' | 'bf16' | 'f16' };
  panel(key: string): PanelWeight;
  shape(weight: string): number[];
  /** Shared scratch of the program (kernel temporaries, sized for maxT). */
  scratch: number;
  stageOff: number;
  panelOff: number;
  /** Offset in the thread scratch of a decode token_shift's private rows (prev, a, xxx). */
  shiftOff: number;
  schedule?: LinearSchedule;
}

/** Panel key of slice s of a weight (the token-shift LoRA B is [S, C, D]: slice s is one [C, D] matrix). */
export const sliceKey = (w: string, s: number) => `${w}#${s}`;

export function lowerKernel(k: Kernel, env: LowerEnv): Phase[] {
  switch (k.kind) {
    case 'embed': return [embed(k, env)];
    case 'layernorm': return [layerNorm(k, env)];
    case 'linear': return [linear(k, env)];
    case 'token_shift': return tokenShift(k, env);
    case 'wkv': return wkv(k, env);
  }
}

function linearPhase(tasks: LinTask[], env: LowerEnv, P = new Params()): Phase {
  const r = new LinearRenderer(P, { relaxed: env.relaxed, matmul: env.matmul, stageOff: env.stageOff, panelOff: env.panelOff, schedule: env.schedule });
  const body = r.render(tasks);
  return { body, params: P, locals: r.L };
}

function linear(k: LinearKernel, env: LowerEnv): Phase {
  const tasks = k.groups.map((g): LinTask => {
    const w = env.panel(g.w);
    const loads: Record<string, LoadRef> = Object.fromEntries([...exprLoads(g.prologue), ...exprLoads(g.epilogue)]
      .map((b) => [b, { addr: env.buf(b), stride: env.width(b) }]));
    return {
      w, x: env.buf(g.x), xStride: w.I, y: env.buf(g.y), yStride: w.O,
      prologue: g.prologue, epilogue: g.epilogue, loads, last: k.rows === 'last',
    };
  });
  return linearPhase(tasks, env);
}

/** Thread's share [lo, hi) of n rows (n: WAT i32). */
function rowRange(n: string): string {
  return `${set('lo', `(call $lo ${n} (local.get $tid) (local.get $nth))`)}
${set('hi', `(call $lo ${n} (i32.add (local.get $tid) (i32.const 1)) (local.get $nth))`)}`;
}
function rowLoop(body: string): string {
  return `${set('t', get('lo'))}
(block $rd (loop $rl (br_if $rd (i32.ge_s ${get('t')} ${get('hi')}))
${body}
${set('t', `(i32.add ${get('t')} (i32.const 1))`)} (br $rl)))`;
}
function newPhase(): { P: Params; L: Locals } {
  const L = new Locals();
  for (const n of ['lo', 'hi', 't', 'c']) L.add(n, 'i32');
  return { P: new Params(), L };
}

/**
 * for c in 0..C step 4: `body(store)` where the body reads at byte offset $c and writes through
 * store(addrWat, v); the last partial vector stores only its lanes (rows are packed, so a full
 * store would spill into the next row).
 */
function vecLoop(C: number, body: (store: (addr: string, v: string) => string) => string): string {
  const main = C - (C % 4), tail = C % 4;
  let s = `${set('c', i32(0))}`;
  if (main > 0)
    s += `\n(loop $cl\n${body((a, v) => st(a, v))}\n${set('c', `(i32.add ${get('c')} (i32.const 16))`)} (br_if $cl (i32.lt_u ${get('c')} ${i32(main * 4)})))`;
  if (tail) s += `\n${body((a, v) => storeLanes(a, v, tail))}`;
  return s;
}
const at = (base: string, ...offs: string[]) => offs.reduce((a, o) => `(i32.add ${a} ${o})`, base);

function embed(k: EmbedKernel, env: LowerEnv): Phase {
  const { P, L } = newPhase();
  const C = env.width(k.out), tab = env.table(k.table);
  const token = `(i32.load (i32.add ${P.addr(env.buf(k.tokens))} (i32.shl ${get('t')} (i32.const 2))))`;
  const dst = `(i32.add ${P.addr(env.buf(k.out))} (i32.mul ${get('t')} ${i32(C * 4)}))`;
  if (tab.dtype === 'f32') {
    const body = `${rowRange('(local.get $T)')}
${rowLoop(`(memory.copy ${dst} (i32.add ${P.addr(tab.addr)} (i32.mul ${token} ${i32(C * 4)})) ${i32(C * 4)})`)}`;
    return { body, params: P, locals: L };
  }
  // 16-bit table: four values at a time, zero-extended to i32 lanes, then widened exactly
  L.add('src', 'i32'); L.add('dst', 'i32'); L.add('h', 'v128');
  const h = get('h');
  const widen = tab.dtype === 'bf16'
    ? `(i32x4.shl ${h} (i32.const 16))`
    : `(v128.or (f32x4.mul (i32x4.shl (v128.and ${h} (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13)) ${f4(2 ** 112)})
         (i32x4.shl (v128.and ${h} (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16)))`;
  const row = `${set('src', `(i32.add ${P.addr(tab.addr)} (i32.mul ${token} ${i32(C * 2)}))`)}
${set('dst', dst)}
${vecLoop(C, (store) => `${set('h', `(v128.load16x4_u (i32.add ${get('src')} (i32.shr_u ${get('c')} (i32.const 1))))`)}
${store(`(i32.add ${get('dst')} ${get('c')})`, widen)}`)}`;
  return { body: `${rowRange('(local.get $T)')}\n${rowLoop(row)}`, params: P, locals: L };
}

function layerNorm(k: LayerNormKernel, env: LowerEnv): Phase {
  const { P, L } = newPhase();
  const C = env.shape(k.w).reduce((a, b) => a * b, 1);
  const last = k.rows === 'last';
  const xRow = last ? `(i32.sub (local.get $T) (i32.const 1))` : get('t');
  const body = `${rowRange(last ? i32(1) : '(local.get $T)')}
${rowLoop(`(call ${k.b ? '$ln_row' : '$rms_row'} (i32.add ${P.addr(env.buf(k.x))} (i32.mul ${xRow} ${i32(C * 4)}))
  (i32.add ${P.addr(env.buf(k.out))} (i32.mul ${get('t')} ${i32(C * 4)}))
  ${P.addr(env.raw(k.w))} ${k.b ? P.addr(env.raw(k.b)) : ''} ${i32(C)} (f32.const ${k.eps}))`)}`;
  return { body, params: P, locals: L };
}

/**
 * Shared scratch of a token_shift: A = [prev; a_0..a_{T−1}] (T+1 rows), X = xxx, Z = tanh(A·xxx), and
 * for a batch (T sequences of one token) Pv = a copy of the T shift-state rows.
 */
export function tokenShiftScratch(k: TokenShiftKernel, C: number, maxT: number) {
  const A = 0, X = A + (maxT + 1) * C * 4 + 64;
  const Z = X + (k.lora ? maxT * C * 4 + 64 : 0);
  const Pv = Z + (k.lora ? maxT * k.outs.length * k.lora.dim * 4 + 64 : 0);
  const end = Pv + (k.batch ? maxT * C * 4 + 64 : 0);
  return { A, X, Z, Pv, end };
}

/**
 * Decode (T = 1) token shift with fewer barriers: the LayerNorm and lerps of one row cost less than a
 * barrier, so every thread computes them into its own scratch (no LoRA: thread 0 alone does all).
 *   lora:  [private prev, a, xxx] → z = tanh(A·xxx) (panels split) ─barrier→ B_s·z_s with the lerp,
 *          thread 0 writes shiftOut (every thread read shiftIn before the barrier) ─barrier→
 *   plain: thread 0: prev, a, outs, shiftOut ─barrier→
 */
function tokenShiftDecode(k: TokenShiftKernel, env: LowerEnv, C: number): Phase[] {
  const S = k.outs.length;
  const A0 = env.shiftOff, A1 = A0 + C * 4 + 64, X = A1 + C * 4 + 64;
  const { P, L } = newPhase();
  L.add('a', 'v128'); L.add('d', 'v128');
  const ts = (off: number) => `(i32.add (global.get $ts) ${i32(off)})`;
  const prep = [
    `(memory.copy ${ts(A0)} ${P.addr(env.buf(k.shiftIn))} ${i32(C * 4)})`,
    k.ln
      ? `(call ${k.ln.b ? '$ln_row' : '$rms_row'} ${P.addr(env.buf(k.x))} ${ts(A1)} ${P.addr(env.raw(k.ln.w))} ${k.ln.b ? P.addr(env.raw(k.ln.b)) : ''} ${i32(C)} (f32.const ${k.ln.eps}))`
      : `(memory.copy ${ts(A1)} ${P.addr(env.buf(k.x))} ${i32(C * 4)})`,
    vecLoop(C, (store) => {
      const s = [set('a', ld(at(ts(A1), get('c')))), set('d', `(f32x4.sub ${ld(at(ts(A0), get('c')))} ${get('a')})`)];
      const lerp = (mix: number) => `(f32x4.add ${get('a')} (f32x4.mul ${get('d')} ${ld(at(P.addr(mix), get('c')))}))`;
      if (k.lora) s.push(store(at(ts(X), get('c')), lerp(env.raw(k.lora.mu))));
      else k.outs.forEach((o, s_) => s.push(store(at(P.addr(env.buf(o)), get('c')), lerp(env.raw(k.mix[s_])))));
      return s.join('\n');
    }),
  ].join('\n');
  const shiftOut = (Pn: Params) => `(if (i32.eqz (local.get $tid)) (then (memory.copy ${Pn.addr(env.buf(k.shiftOut))} ${ts(A1)} ${i32(C * 4)})))`;
  if (!k.lora) return [{ body: `(if (i32.eqz (local.get $tid)) (then ${prep}\n${shiftOut(P)}))`, params: P, locals: L }];
  const D = k.lora.dim;
  const Z = env.scratch + tokenShiftScratch(k, C, 1).Z;
  const first = linearPhase([{
    w: env.panel(k.lora.a), x: 0, xScratch: X, xStride: C, y: Z, yStride: S * D,
    epilogue: { op: 'tanh', args: [{ op: 'acc' }] }, loads: {}, last: false,
  }], env, P);
  first.body = `${prep}\n${first.body}`;
  first.locals.merge(L);
  const second = linearPhase(k.outs.map((o, s): LinTask => ({
    w: env.panel(sliceKey(k.lora!.b, s)), x: Z + s * D * 4, xStride: S * D, y: env.buf(o), yStride: C,
    epilogue: lerpEpilogue, last: false,
    loads: { '%a': { addr: A1, stride: C, scratch: true }, '%prev': { addr: A0, stride: C, scratch: true }, '%mix': { addr: env.raw(k.mix[s]), stride: 0 } },
  })), env);
  second.body += `\n${shiftOut(second.params)}`;
  return [first, second];
}

/** out_s = a + (prev − a)⊙(mix_s + acc): the LoRA B product with the token-shift lerp as its epilogue. */
const lerpEpilogue: Expr = {
  op: 'add',
  args: [{ op: 'load', buf: '%a' }, {
    op: 'mul',
    args: [{ op: 'sub', args: [{ op: 'load', buf: '%prev' }, { op: 'load', buf: '%a' }] }, { op: 'add', args: [{ op: 'load', buf: '%mix' }, { op: 'acc' }] }],
  }],
};

function tokenShift(k: TokenShiftKernel, env: LowerEnv): Phase[] {
  const C = env.shape(k.mix[0]).reduce((a, b) => a * b, 1);
  if (!env.matmul && !k.batch) return tokenShiftDecode(k, env, C);
  const S = k.outs.length;
  const sc = tokenShiftScratch(k, C, env.maxT);
  const A = env.scratch + sc.A, X = env.scratch + sc.X, Z = env.scratch + sc.Z;
  // prev_t: row t of A (row 0 the shift state, then a_{t−1}); in a batch, row t of the state copy Pv
  const prevBase = k.batch ? env.scratch + sc.Pv : A;
  const phases: Phase[] = [];
  {
    // a_t = LN(x_t) into rows 1..T of A; the shift state is copied (every read of shiftIn happens here,
    // before the barrier, so shiftOut may alias it)
    const { P, L } = newPhase();
    const row = (base: number, r: string) => `(i32.add ${P.addr(base)} (i32.mul ${r} ${i32(C * 4)}))`;
    const one = k.ln
      ? `(call ${k.ln.b ? '$ln_row' : '$rms_row'} ${row(env.buf(k.x), get('t'))} ${row(A + C * 4, get('t'))} ${P.addr(env.raw(k.ln.w))} ${k.ln.b ? P.addr(env.raw(k.ln.b)) : ''} ${i32(C)} (f32.const ${k.ln.eps}))`
      : `(memory.copy ${row(A + C * 4, get('t'))} ${row(env.buf(k.x), get('t'))} ${i32(C * 4)})`;
    const copyIn = k.batch
      ? rowLoop(`(memory.copy ${row(prevBase, get('t'))} ${row(env.buf(k.shiftIn), get('t'))} ${i32(C * 4)})`)
      : `(if (i32.eqz (local.get $tid)) (then (memory.copy ${P.addr(A)} ${P.addr(env.buf(k.shiftIn))} ${i32(C * 4)})))`;
    const body = `${rowRange('(local.get $T)')}
${rowLoop(one)}
${copyIn}`;
    phases.push({ body, params: P, locals: L });
  }
  {
    // lerps: dx = prev − a; lora: xxx = a + dx⊙μ_x, else out_s = a + dx⊙mix_s. shiftOut = a_{T−1}.
    const { P, L } = newPhase();
    L.add('a', 'v128'); L.add('d', 'v128');
    const rowA = `(i32.add ${P.addr(A + C * 4)} (i32.mul ${get('t')} ${i32(C * 4)}))`;
    const rowPrev = `(i32.add ${P.addr(prevBase)} (i32.mul ${get('t')} ${i32(C * 4)}))`;
    const outRow = (b: number) => `(i32.add ${P.addr(b)} (i32.mul ${get('t')} ${i32(C * 4)}))`;
    const loop = vecLoop(C, (store) => {
      const s = [set('a', ld(at(rowA, get('c')))), set('d', `(f32x4.sub ${ld(at(rowPrev, get('c')))} ${get('a')})`)];
      const lerp = (mix: number) => `(f32x4.add ${get('a')} (f32x4.mul ${get('d')} ${ld(at(P.addr(mix), get('c')))}))`;
      if (k.lora) s.push(store(at(outRow(X), get('c')), lerp(env.raw(k.lora.mu))));
      else k.outs.forEach((o, s_) => s.push(store(at(outRow(env.buf(o)), get('c')), lerp(env.raw(k.mix[s_])))));
      return s.join('\n');
    });
    // shiftOut = a_{T−1} (a batch: every row's a_t)
    const copyOut = k.batch
      ? `(memory.copy ${outRow(env.buf(k.shiftOut))} ${rowA} ${i32(C * 4)})`
      : '';
    const body = `${rowRange('(local.get $T)')}
${rowLoop(`${loop}\n${copyOut}`)}
${k.batch ? '' : `(if (i32.eqz (local.get $tid)) (then (memory.copy ${P.addr(env.buf(k.shiftOut))} (i32.add ${P.addr(A)} (i32.mul (local.get $T) ${i32(C * 4)})) ${i32(C * 4)})))`}`;
    phases.push({ body, params: P, locals: L });
  }
  if (k.lora) {
    const D = k.lora.dim;
    phases.push(linearPhase([{
      w: env.panel(k.lora.a), x: X, xStride: C, y: Z, yStride: S * D,
      epilogue: { op: 'tanh', args: [{ op: 'acc' }] }, loads: {}, last: false,
    }], env));
    phases.push(linearPhase(k.outs.map((o, s): LinTask => ({
      w: env.panel(sliceKey(k.lora!.b, s)), x: Z + s * D * 4, xStride: S * D, y: env.buf(o), yStride: C,
      epilogue: lerpEpilogue, last: false,
      loads: { '%a': { addr: A + C * 4, stride: C }, '%prev': { addr: prevBase, stride: C }, '%mix': { addr: env.raw(k.mix[s]), stride: 0 } },
    })), env));
  }
  return phases;
}

export function wkvScratch(k: WkvKernel, C: number, maxT: number) {
  return { W: 0, end: k.decay.kind === 'lora' ? maxT * C * 4 + 64 : 0 };
}

function wkv(k: WkvKernel, env: LowerEnv): Phase[] {
  const N = k.headSize, C = env.width(k.r), H = C / N, R = env.relaxed;
  if (N % 16 || C % N) throw new Error(`wkv '${k.name}': head size ${N} must be a multiple of 16 dividing C = ${C}`);
  const { P, L } = newPhase();
  // Decay LoRA: w = exp(−exp(base + B·z)) as a linear over the panels of this thread's heads (a head is
  // N/16 panels), written to scratch that only this thread reads back: no barrier before the recurrence.
  let wSrc: number, decay = '';
  if (k.decay.kind === 'lora') {
    wSrc = env.scratch + wkvScratch(k, C, env.maxT).W;
    const epi: Expr = { op: 'exp', args: [{ op: 'neg', args: [{ op: 'exp', args: [{ op: 'add', args: [{ op: 'load', buf: '%base' }, { op: 'acc' }] }] }] }] };
    const lr = new LinearRenderer(P, { relaxed: env.relaxed, matmul: env.matmul, stageOff: env.stageOff, panelOff: env.panelOff, schedule: env.schedule });
    decay = lr.renderRange({
      w: env.panel(k.decay.b), x: env.buf(k.decay.z), xStride: k.decay.dim, y: wSrc, yStride: C,
      epilogue: epi, loads: { '%base': { addr: env.raw(k.decay.base), stride: 0 } }, last: false,
    }, `(i32.mul ${get('lo')} ${i32(N / 16)})`, `(i32.mul ${get('hi')} ${i32(N / 16)})`);
    L.merge(lr.L);
  } else wSrc = env.buf(k.decay.w);
  for (const n of ['h', 'sp', 'i', 'row', 'q', 'qr']) L.add(n, 'i32');
  for (const n of ['rr', 'kk', 'ww', 'av', 'rs', 'ks', 'ws', 's', 'v0', 'v1', 'v2', 'v3', 'y0', 'y1', 'y2', 'y3']) L.add(n, 'v128');
  L.add('A', 'f32');
  const ts = (off: number) => `(i32.add (global.get $ts) ${i32(off)})`;
  const R_OFF = 0, K_OFF = N * 4, W_OFF = 2 * N * 4;
  // element (t, h·N + q) of a [T, C] buffer, q a byte offset
  const el = (b: number) => `(i32.add ${P.addr(b)} (i32.add ${get('row')} ${get('q')}))`;
  const useU = k.order === 'read_first' && k.u !== null;
  const prep: string[] = [
    set('rr', k.rScale === 1 ? ld(el(env.buf(k.r))) : `(f32x4.mul ${ld(el(env.buf(k.r)))} ${f4(k.rScale)})`),
    set('ww', ld(el(wSrc))),
    set('kk', k.kDecayScale ? `(f32x4.mul ${ld(el(env.buf(k.k)))} (f32x4.sub ${f4(1)} ${get('ww')}))` : ld(el(env.buf(k.k)))),
    st(`(i32.add ${ts(R_OFF)} ${get('qr')})`, get('rr')),
    st(`(i32.add ${ts(K_OFF)} ${get('qr')})`, get('kk')),
    st(`(i32.add ${ts(W_OFF)} ${get('qr')})`, get('ww')),
  ];
  // the bonus term Σ_i r_i·u_i·k_i is the same for every value channel: one scalar per (t, head)
  if (useU) prep.push(set('av', madd(R, `(f32x4.mul ${get('rr')} ${ld(`(i32.add ${P.addr(env.raw(k.u!))} ${get('q')})`)})`, get('kk'), get('av'))));
  const vq = [0, 1, 2, 3];
  const inner: string[] = [
    set('rs', splat(`(i32.add ${ts(R_OFF)} ${get('i')})`)),
    set('ks', splat(`(i32.add ${ts(K_OFF)} ${get('i')})`)),
    set('ws', splat(`(i32.add ${ts(W_OFF)} ${get('i')})`)),
  ];
  for (const j of vq) {
    inner.push(set('s', ld(get('sp'), 16 * j)));
    if (k.order === 'read_first') {
      inner.push(set(`y${j}`, madd(R, get('rs'), get('s'), get(`y${j}`))));
      inner.push(st(get('sp'), madd(R, get('ws'), get('s'), `(f32x4.mul ${get('ks')} ${get(`v${j}`)})`), 16 * j));
    } else {
      inner.push(set('s', madd(R, get('ws'), get('s'), `(f32x4.mul ${get('ks')} ${get(`v${j}`)})`)));
      inner.push(st(get('sp'), get('s'), 16 * j));
      inner.push(set(`y${j}`, madd(R, get('rs'), get('s'), get(`y${j}`))));
    }
  }
  const outEl = (jOff: string) => `(i32.add ${P.addr(env.buf(k.out))} (i32.add ${get('row')} ${jOff}))`;
  const block = `
${vq.map((j) => set(`v${j}`, ld(`(i32.add ${P.addr(env.buf(k.v))} (i32.add ${get('row')} ${get('q')}))`, 16 * j))).join(' ')}
${vq.map((j) => set(`y${j}`, f4(0))).join(' ')}
${set('sp', `(i32.add (i32.add ${P.addr(env.buf(k.state))} (i32.mul ${k.batch ? `(i32.add (i32.mul ${get('t')} ${i32(H)}) ${get('h')})` : get('h')} ${i32(N * N * 4)})) ${get('qr')})`)}
${set('i', i32(0))}
(loop $il
  ${inner.join('\n  ')}
  ${set('sp', `(i32.add ${get('sp')} ${i32(N * 4)})`)}
  ${set('i', `(i32.add ${get('i')} (i32.const 4))`)}
  (br_if $il (i32.lt_u ${get('i')} ${i32(N * 4)})))
${vq.map((j) => st(outEl(get('q')), useU ? madd(R, get('av'), get(`v${j}`), get(`y${j}`)) : get(`y${j}`), 16 * j)).join('\n')}`;
  const gate = k.gate
    ? `${set('q', `(i32.mul ${get('h')} ${i32(N * 4)})`)}
(block $gd (loop $gl (br_if $gd (i32.ge_u ${get('q')} (i32.mul (i32.add ${get('h')} (i32.const 1)) ${i32(N * 4)})))
  ${st(outEl(get('q')), `(f32x4.mul ${ld(outEl(get('q')))} ${ld(el(env.buf(k.gate)))})`)}
  ${set('q', `(i32.add ${get('q')} (i32.const 16))`)} (br $gl)))`
    : '';
  const norm = k.norm
    ? `(call $ln_row ${outEl(`(i32.mul ${get('h')} ${i32(N * 4)})`)} ${outEl(`(i32.mul ${get('h')} ${i32(N * 4)})`)}
   (i32.add ${P.addr(env.raw(k.norm.w))} (i32.mul ${get('h')} ${i32(N * 4)})) (i32.add ${P.addr(env.raw(k.norm.b))} (i32.mul ${get('h')} ${i32(N * 4)}))
   ${i32(N)} (f32.const ${k.norm.eps}))`
    : '';
  // q runs over the head's channels as a byte offset from the row start (h·N·4 .. (h+1)·N·4);
  // qr = q − h·N·4 is the same offset inside the head (state columns, per-head scratch)
  const headQ = (body: string, step: number) => `${set('q', `(i32.mul ${get('h')} ${i32(N * 4)})`)}
(block $qd (loop $ql (br_if $qd (i32.ge_u ${get('q')} (i32.mul (i32.add ${get('h')} (i32.const 1)) ${i32(N * 4)})))
${set('qr', `(i32.sub ${get('q')} (i32.mul ${get('h')} ${i32(N * 4)}))`)}
${body}
${set('q', `(i32.add ${get('q')} ${i32(step)})`)} (br $ql)))`;
  const body = `${rowRange(i32(H))}
${decay}
${set('h', get('lo'))}
(block $hd (loop $hl (br_if $hd (i32.ge_s ${get('h')} ${get('hi')}))
  ${set('t', i32(0))}
  (block $td (loop $tl (br_if $td (i32.ge_s ${get('t')} (local.get $T)))
    ${set('row', `(i32.mul ${get('t')} ${i32(C * 4)})`)}
    ${set('av', f4(0))}
    ${headQ(prep.join('\n'), 16)}
    ${set('A', `(call $hsum ${get('av')})`)} ${set('av', `(f32x4.splat ${get('A')})`)}
    ${headQ(block, 64)}
    ${norm}
    ${gate}
    ${set('t', `(i32.add ${get('t')} (i32.const 1))`)} (br $tl)))
  ${set('h', `(i32.add ${get('h')} (i32.const 1))`)} (br $hl)))`;
  return [{ body, params: P, locals: L }];
}

