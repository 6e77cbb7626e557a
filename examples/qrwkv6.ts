/**
 * QRWKV6 (RWKV6Qwen2, "RWKV6-32B"): Qwen2.5 with each attention replaced by the RWKV-6 time-mix, exactly
 * as docs/qrwkv6.md states it (llama.cpp's `rwkv6qwen2` graph). Weight names are the Hugging Face
 * checkpoint's. The same DSL and the same recurrence op as examples/finch.ts, with other attributes.
 */
import { Builder, type AnyModelConfig, type Graph, type ModelConfig, type Tensor } from '../ir/dsl.ts';

/** The ddlerp LoRA slots of w1/w2 in the HF checkpoint: r, k, v, w, g (llama.cpp permutes them to w, k, v, r, g). */
const SLOTS = ['r', 'k', 'v', 'w', 'g'] as const;

function timeMix(m: Builder, cfg: AnyModelConfig, l: number, a: Tensor, shift: Tensor, wkvState: Tensor) {
  const C = cfg.nEmbd, D = cfg.loraMix, Dd = cfg.loraDecay, H = cfg.nHead, N = cfg.headSize, KV = cfg.nKvHead ?? H;
  const p = `model.layers.${l}.self_attn.`;
  const vec = (name: string) => m.weight(p + name, [C], [1, 1, C]);

  const dx = m.shift(a, shift).sub(a);
  const z = m.matmul(a.add(dx.mul(vec('time_maa_x'))), m.weight(p + 'time_maa_w1', [C, 5 * D])).tanh();
  const w2 = m.weight(p + 'time_maa_w2', [5, D, C]);
  const x = Object.fromEntries(SLOTS.map((s, i) =>
    [s, a.add(dx.mul(m.matmul(m.slice(z, i * D, D), m.index(w2, i)).add(vec(`time_maa_${s}`))))])) as Record<(typeof SLOTS)[number], Tensor>;

  const r = m.linear(x.r, m.weight(p + 'q_proj.weight', [C, C]));
  // k and v have KV heads; each serves H/KV query heads (ggml_repeat of [N, 1, KV] into [N, H/KV, KV])
  const k = m.repeat(m.linear(x.k, m.weight(p + 'k_proj.weight', [KV * N, C])), N, H / KV);
  const v = m.repeat(m.linear(x.v, m.weight(p + 'v_proj.weight', [KV * N, C])), N, H / KV);
  const g = m.linear(x.g, m.weight(p + 'gate.weight', [C, C])).sigmoid();
  const decayLora = m.matmul(m.matmul(x.w, m.weight(p + 'time_decay_w1', [C, Dd])).tanh(), m.weight(p + 'time_decay_w2', [Dd, C]));
  const w = decayLora.add(vec('time_decay')).exp().neg().exp();

  // no bonus, update before read, k ⊙ (1 − w), r·N^-½, no GroupNorm
  const [y, newState] = m.wkv(r, k, v, w, null, wkvState, { headSize: N, order: 'update_first', kDecayScale: true, rScale: N ** -0.5 });
  const out = m.linear(y.mul(g), m.weight(p + 'o_proj.weight', [C, C]));
  return { out, shift: m.last(a), wkv: newState };
}

/** SwiGLU: down(silu(gate(b)) ⊙ up(b)). */
function mlp(m: Builder, cfg: ModelConfig, l: number, b: Tensor) {
  const C = cfg.nEmbd, F = cfg.dimFfn, p = `model.layers.${l}.mlp.`;
  const gate = m.linear(b, m.weight(p + 'gate_proj.weight', [F, C])).silu();
  const up = m.linear(b, m.weight(p + 'up_proj.weight', [F, C]));
  return m.linear(gate.mul(up), m.weight(p + 'down_proj.weight', [C, F]));
}

export default function qrwkv6(config: ModelConfig): Graph {
  const cfg = config as AnyModelConfig;
  const m = new Builder('qrwkv6');
  const C = cfg.nEmbd, H = cfg.nHead, N = cfg.headSize, eps = cfg.normEps ?? 1e-6;
  const rms = (x: Tensor, name: string) => m.rmsNorm(x, m.weight(name, [C]), eps);
  const tokens = m.input('tokens', 'tokens', 'i32', ['T']);
  let x = m.embed(tokens, m.weight('model.embed_tokens.weight', [cfg.vocabSize, C]));
  for (let l = 0; l < cfg.nLayer; l++) {
    const s = `state.${l}.`, p = `model.layers.${l}.`;
    const att = timeMix(m, cfg, l, rms(x, p + 'input_layernorm.weight'),
      m.input(s + 'att_shift', 'state', 'f32', [C]), m.input(s + 'wkv', 'state', 'f32', [H, N, N]));
    x = x.add(att.out);
    x = x.add(mlp(m, cfg, l, rms(x, p + 'post_attention_layernorm.weight')));
    m.output(s + 'att_shift', att.shift);
    m.output(s + 'wkv', att.wkv);
  }
  m.output('logits', m.linear(rms(x, 'model.norm.weight'), m.weight('lm_head.weight', [cfg.vocabSize, C])));
  return m.build();
}
