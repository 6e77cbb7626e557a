/**
 * A hand-built RWKV-6 KernelPlan with the kernels the compiler emits per layer, and random weights for
 * it: enough to benchmark and test a target before (and independently of) the real compiler.
 *
 * Per layer: token_shift(att: ln1, ddlerp LoRA, 5 outputs w k v r g) → linear [r, k, v, g (silu),
 * decay-LoRA A (tanh)] → wkv (decay LoRA, u, read_first, GroupNorm 64e-5, gate g) → linear Wo
 * (+ residual, into a new buffer) → token_shift(ffn: ln2, 2 outputs) → linear [k (relu²), r (sigmoid)]
 * → linear Wv (x + r·acc). Then layernorm → head (rows 'last' in prefill).
 * The embedding is the table with ln0 already folded in (as the compiler does).
 */
import type { BufferDecl, Expr, Kernel, KernelPlan, Program, WeightDecl, WeightDType } from '../kernels/plan.ts';
import type { ModelConfig } from '../kernels/config.ts';
import type { WeightProvider } from '../targets/backend.ts';

export interface SyntheticOptions extends Partial<ModelConfig> {
  /** Storage dtype of the big matrices (projections, head); vectors and LoRAs stay f32. */
  dtype?: WeightDType;
  /** dtype of the LoRA matrices (default f32). */
  loraDtype?: WeightDType;
  prefillT?: number;
  /** Also a batch program decoding this many sequences together (state buffers [B, …]). */
  batch?: number;
}

/** bench-0.1b: 12 layers, width 768, ffn 2688, vocab 65536, head 64, LoRA 32/64. */
export const BENCH_01B: ModelConfig = {
  nLayer: 12, nEmbd: 768, headSize: 64, nHead: 12, dimFfn: 2688, vocabSize: 65536, loraMix: 32, loraDecay: 64,
};

const acc: Expr = { op: 'acc' };
const load = (buf: string): Expr => ({ op: 'load', buf });

export function syntheticPlan(o: SyntheticOptions = {}): KernelPlan {
  const cfg: ModelConfig = { ...BENCH_01B, ...o };
  cfg.nHead = cfg.nEmbd / cfg.headSize;
  const { nLayer: L, nEmbd: C, headSize: N, nHead: H, dimFfn: F, vocabSize: V, loraMix: Dm, loraDecay: Dd } = cfg;
  const big = o.dtype ?? 'f32', lora = o.loraDtype ?? 'f32';
  const weights: WeightDecl[] = [];
  const W = (name: string, shape: number[], dtype: WeightDType = 'f32') => {
    weights.push({ name, shape, dtype, source: { tensor: name, stored: shape } });
    return name;
  };
  W('emb', [V, C]);
  const layers = Array.from({ length: L }, (_, l) => {
    const p = `blocks.${l}.`;
    return {
      ln1w: W(p + 'ln1.weight', [C]), ln1b: W(p + 'ln1.bias', [C]),
      ln2w: W(p + 'ln2.weight', [C]), ln2b: W(p + 'ln2.bias', [C]),
      maa: ['w', 'k', 'v', 'r', 'g'].map((s) => W(`${p}att.time_maa_${s}`, [C])),
      maaX: W(p + 'att.time_maa_x', [C]),
      maaA: W(p + 'att.time_maa_w1', [5 * Dm, C], lora), maaB: W(p + 'att.time_maa_w2', [5, C, Dm], lora),
      decay: W(p + 'att.time_decay', [C]),
      decA: W(p + 'att.time_decay_w1', [Dd, C], lora), decB: W(p + 'att.time_decay_w2', [C, Dd], lora),
      u: W(p + 'att.time_faaaa', [C]),
      wr: W(p + 'att.receptance.weight', [C, C], big), wk: W(p + 'att.key.weight', [C, C], big),
      wv: W(p + 'att.value.weight', [C, C], big), wg: W(p + 'att.gate.weight', [C, C], big),
      wo: W(p + 'att.output.weight', [C, C], big),
      lnxw: W(p + 'att.ln_x.weight', [C]), lnxb: W(p + 'att.ln_x.bias', [C]),
      fmk: W(p + 'ffn.time_maa_k', [C]), fmr: W(p + 'ffn.time_maa_r', [C]),
      fk: W(p + 'ffn.key.weight', [F, C], big), fr: W(p + 'ffn.receptance.weight', [C, C], big),
      fv: W(p + 'ffn.value.weight', [C, F], big),
    };
  });
  const lnOutW = W('ln_out.weight', [C]), lnOutB = W('ln_out.bias', [C]);
  const head = W('head.weight', [V, C], big);

  const program = (maxT: number, batch = false): Program => {
    const buffers: BufferDecl[] = [
      { name: 'tokens', dtype: 'i32', shape: ['T'], role: 'input' },
      { name: 'logits', dtype: 'f32', shape: [batch ? 'T' : 1, V], role: 'output' },
    ];
    const act = (name: string, width: number) => { buffers.push({ name, dtype: 'f32', shape: ['T', width], role: 'activation' }); return name; };
    const kernels: Kernel[] = [];
    const common = (name: string, layer: number | null) => ({ name, layer, src: [] as string[] });
    let x = act('x0', C);
    kernels.push({ kind: 'embed', ...common('embed', null), tokens: 'tokens', table: 'emb', out: x });
    layers.forEach((w, l) => {
      const st = (s: string, shape: number[]) => {
        buffers.push({ name: `state.${l}.${s}`, dtype: 'f32', shape: batch ? ['T', ...shape] : shape, role: 'state' });
        return `state.${l}.${s}`;
      };
      const attShift = st('att_shift', [C]), wkvState = st('wkv', [H, N, N]), ffnShift = st('ffn_shift', [C]);
      const [xw, xk, xv, xr, xg] = ['xw', 'xk', 'xv', 'xr', 'xg'].map((s) => act(`l${l}.${s}`, C));
      kernels.push({
        kind: 'token_shift', ...common(`l${l}.att_shift`, l), x, ln: { w: w.ln1w, b: w.ln1b, eps: 1e-5 },
        shiftIn: attShift, shiftOut: attShift, mix: w.maa, lora: { mu: w.maaX, a: w.maaA, b: w.maaB, dim: Dm }, outs: [xw, xk, xv, xr, xg], batch,
      });
      const [r, k, v, g] = ['r', 'k', 'v', 'g'].map((s) => act(`l${l}.${s}`, C));
      const z = act(`l${l}.z`, Dd);
      kernels.push({
        kind: 'linear', ...common(`l${l}.att_proj`, l), rows: 'all', groups: [
          { x: xr, w: w.wr, y: r }, { x: xk, w: w.wk, y: k }, { x: xv, w: w.wv, y: v },
          { x: xg, w: w.wg, y: g, epilogue: { op: 'silu', args: [acc] } },
          { x: xw, w: w.decA, y: z, epilogue: { op: 'tanh', args: [acc] } },
        ],
      });
      const att = act(`l${l}.att`, C);
      kernels.push({
        kind: 'wkv', ...common(`l${l}.wkv`, l), headSize: N, r, k, v,
        decay: { kind: 'lora', z, b: w.decB, base: w.decay, dim: Dd }, u: w.u, order: 'read_first', kDecayScale: false, rScale: 1,
        state: wkvState, norm: { w: w.lnxw, b: w.lnxb, eps: 64e-5 }, gate: g, out: att, batch,
      });
      const xm = act(`l${l}.xmid`, C);
      kernels.push({ kind: 'linear', ...common(`l${l}.att_out`, l), rows: 'all', groups: [
        { x: att, w: w.wo, y: xm, epilogue: { op: 'add', args: [acc, load(x)] } }] });
      const [fk, fr] = ['fk', 'fr'].map((s) => act(`l${l}.${s}`, C));
      kernels.push({
        kind: 'token_shift', ...common(`l${l}.ffn_shift`, l), x: xm, ln: { w: w.ln2w, b: w.ln2b, eps: 1e-5 },
        shiftIn: ffnShift, shiftOut: ffnShift, mix: [w.fmk, w.fmr], lora: null, outs: [fk, fr], batch,
      });
      const kk = act(`l${l}.kk`, F), rr = act(`l${l}.rr`, C);
      kernels.push({ kind: 'linear', ...common(`l${l}.ffn_in`, l), rows: 'all', groups: [
        { x: fk, w: w.fk, y: kk, epilogue: { op: 'square', args: [{ op: 'relu', args: [acc] }] } },
        { x: fr, w: w.fr, y: rr, epilogue: { op: 'sigmoid', args: [acc] } }] });
      const xn = act(`l${l}.xout`, C);
      kernels.push({ kind: 'linear', ...common(`l${l}.ffn_out`, l), rows: 'all', groups: [
        { x: kk, w: w.fv, y: xn, epilogue: { op: 'add', args: [load(xm), { op: 'mul', args: [load(rr), acc] }] } }] });
      x = xn;
    });
    const xo = act('xo', C);
    kernels.push({ kind: 'layernorm', ...common('ln_out', null), rows: 'all', x, w: lnOutW, b: lnOutB, eps: 1e-5, out: xo });
    kernels.push({ kind: 'linear', ...common('head', null), rows: batch ? 'all' : 'last', groups: [{ x: xo, w: head, y: 'logits' }] });
    // state buffers appear once per program (both programs name the same ones)
    return { maxT, kernels, buffers, activationPeakBytes: 0 };
  };
  return {
    format: 'rwkvc-plan', version: 1, model: `synthetic-${L}x${C}`, config: cfg, weights,
    decode: program(1), prefill: program(o.prefillT ?? 512),
    ...(o.batch ? { batch: program(o.batch, true) } : {}),
  };
}

/** Deterministic pseudo-random numbers (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random weights of a plausible scale for every weight of a synthetic plan (by name), so activations
 * stay O(1) through many layers: matrices ±1/√in, LN weights near 1, lerp mixes in [0, 1], decays
 * such that w = exp(−exp(d)) spreads over (0, 1).
 */
export function syntheticWeights(seed = 1): WeightProvider {
  return (d) => {
    const n = d.shape.reduce((a, b) => a * b, 1);
    let h = seed;
    for (const ch of d.name) h = Math.imul(h ^ ch.charCodeAt(0), 0x9e3779b1);
    const r = rng(h);
    const out = new Float32Array(n);
    const uni = (lo: number, hi: number) => { for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r(); };
    const name = d.name;
    if (/ln\d?\.weight|ln_x\.weight|ln_out\.weight/.test(name)) uni(0.8, 1.2);
    else if (/\.bias$/.test(name)) uni(-0.1, 0.1);
    else if (/time_maa_[wkvrgx]$/.test(name)) uni(0, 1);
    else if (/time_decay$/.test(name)) uni(-6, 1);
    else if (/time_faaaa/.test(name)) uni(-0.5, 0.5);
    else if (name === 'emb') uni(-1, 1);
    else {
      const fanIn = d.shape[d.shape.length - 1];
      const s = (/_w[12]$/.test(name) ? 0.5 : 1) / Math.sqrt(fanIn);
      uni(-s * Math.sqrt(3), s * Math.sqrt(3));
    }
    return out;
  };
}
