/**
 * RWKV-6 "Finch" (x060), exactly as ../shared/RWKV6.md §2 states it. Each layer is an ordinary
 * function; weight names are the official `.pth` names (the loader maps Hugging Face names to these).
 */
import { Builder, type Graph, type ModelConfig, type Tensor } from '../ir/dsl.ts';

const LN_EPS = 1e-5;
const GROUPNORM_EPS = 64e-5;

/** a + (prev − a) ⊙ μ: the token-shift lerp. */
const lerp = (a: Tensor, dx: Tensor, mu: Tensor) => a.add(dx.mul(mu));

function timeMix(m: Builder, cfg: ModelConfig, l: number, a: Tensor, shift: Tensor, wkvState: Tensor) {
  const C = cfg.nEmbd, D = cfg.loraMix, Dd = cfg.loraDecay, H = cfg.nHead, N = cfg.headSize;
  const p = `blocks.${l}.att.`;
  const vec = (name: string) => m.weight(p + name, [C], [1, 1, C]);

  const dx = m.shift(a, shift).sub(a);
  // ddlerp: one LoRA on a + dx⊙μ_x gives a data-dependent offset for each of the five lerps
  const xxx = lerp(a, dx, vec('time_maa_x'));
  const z = m.matmul(xxx, m.weight(p + 'time_maa_w1', [C, 5 * D])).tanh();
  const w2 = m.weight(p + 'time_maa_w2', [5, D, C]);
  const [xw, xk, xv, xr, xg] = ['w', 'k', 'v', 'r', 'g'].map((s, i) =>
    lerp(a, dx, vec(`time_maa_${s}`).add(m.matmul(m.slice(z, i * D, D), m.index(w2, i)))));

  const r = m.linear(xr, m.weight(p + 'receptance.weight', [C, C]));
  const k = m.linear(xk, m.weight(p + 'key.weight', [C, C]));
  const v = m.linear(xv, m.weight(p + 'value.weight', [C, C]));
  const g = m.linear(xg, m.weight(p + 'gate.weight', [C, C])).silu();
  const decayLora = m.matmul(m.matmul(xw, m.weight(p + 'time_decay_w1', [C, Dd])).tanh(), m.weight(p + 'time_decay_w2', [Dd, C]));
  const w = vec('time_decay').add(decayLora).exp().neg().exp();

  const u = m.weight(p + 'time_faaaa', [C], [H, N]);
  const [y, newState] = m.wkv(r, k, v, w, u, wkvState, { headSize: N, order: 'read_first', kDecayScale: false, rScale: 1 });
  const o = m.groupNorm(y, m.weight(p + 'ln_x.weight', [C]), m.weight(p + 'ln_x.bias', [C]), H, GROUPNORM_EPS);
  const out = m.linear(o.mul(g), m.weight(p + 'output.weight', [C, C]));
  return { out, shift: m.last(a), wkv: newState };
}

function channelMix(m: Builder, cfg: ModelConfig, l: number, b: Tensor, shift: Tensor) {
  const C = cfg.nEmbd, F = cfg.dimFfn, p = `blocks.${l}.ffn.`;
  const dx = m.shift(b, shift).sub(b);
  const xk = lerp(b, dx, m.weight(p + 'time_maa_k', [C], [1, 1, C]));
  const xr = lerp(b, dx, m.weight(p + 'time_maa_r', [C], [1, 1, C]));
  const k = m.linear(xk, m.weight(p + 'key.weight', [F, C])).relu().square();
  const out = m.linear(xr, m.weight(p + 'receptance.weight', [C, C])).sigmoid().mul(m.linear(k, m.weight(p + 'value.weight', [C, F])));
  return { out, shift: m.last(b) };
}

const layerNorm = (m: Builder, x: Tensor, prefix: string, C: number) =>
  m.layerNorm(x, m.weight(prefix + '.weight', [C]), m.weight(prefix + '.bias', [C]), LN_EPS);

export default function finch(cfg: ModelConfig): Graph {
  const m = new Builder('finch');
  const C = cfg.nEmbd, H = cfg.nHead, N = cfg.headSize;
  const tokens = m.input('tokens', 'tokens', 'i32', ['T']);
  let x = layerNorm(m, m.embed(tokens, m.weight('emb.weight', [cfg.vocabSize, C])), 'blocks.0.ln0', C);
  for (let l = 0; l < cfg.nLayer; l++) {
    const s = `state.${l}.`;
    const att = timeMix(m, cfg, l, layerNorm(m, x, `blocks.${l}.ln1`, C),
      m.input(s + 'att_shift', 'state', 'f32', [C]), m.input(s + 'wkv', 'state', 'f32', [H, N, N]));
    x = x.add(att.out);
    const ffn = channelMix(m, cfg, l, layerNorm(m, x, `blocks.${l}.ln2`, C), m.input(s + 'ffn_shift', 'state', 'f32', [C]));
    x = x.add(ffn.out);
    m.output(s + 'att_shift', att.shift);
    m.output(s + 'wkv', att.wkv);
    m.output(s + 'ffn_shift', ffn.shift);
  }
  m.output('logits', m.linear(layerNorm(m, x, 'ln_out', C), m.weight('head.weight', [cfg.vocabSize, C])));
  return m.build();
}
