/**
 * The QRWKV6 time-mix (RWKV6.md §5): the same DSL and the same recurrence op as Finch, with other
 * attributes: no bonus, update before read, k ⊙ (1 − w), r scaled by N^-½, sigmoid gate, no GroupNorm,
 * and k/v projected to fewer heads and repeated (grouped like GQA).
 */
import { Builder, type Graph } from '../ir/dsl.ts';

export interface QrwkvConfig {
  nEmbd: number; // C = nHead · headSize
  nHead: number;
  nKvHead: number;
  headSize: number;
  loraMix: number;
  loraDecay: number;
}

export default function qrwkv6TimeMix(cfg: QrwkvConfig): Graph {
  const m = new Builder('qrwkv6-timemix');
  const { nEmbd: C, nHead: H, nKvHead: KV, headSize: N, loraMix: D, loraDecay: Dd } = cfg;
  const vec = (name: string) => m.weight(name, [C], [1, 1, C]);
  const a = m.input('x', 'state', 'f32', ['T', C]); // the RMS-normed hidden state
  const shift = m.input('state.att_shift', 'state', 'f32', [C]);
  const S = m.input('state.wkv', 'state', 'f32', [H, N, N]);

  const dx = m.shift(a, shift).sub(a);
  const z = m.matmul(a.add(dx.mul(vec('time_maa_x'))), m.weight('time_maa_w1', [C, 5 * D])).tanh();
  const w2 = m.weight('time_maa_w2', [5, D, C]);
  const [xw, xk, xv, xr, xg] = ['w', 'k', 'v', 'r', 'g'].map((s, i) =>
    a.add(dx.mul(vec(`time_maa_${s}`).add(m.matmul(m.slice(z, i * D, D), m.index(w2, i))))));

  const r = m.linear(xr, m.weight('receptance.weight', [C, C]));
  const k = m.repeat(m.linear(xk, m.weight('key.weight', [KV * N, C])), N, H / KV);
  const v = m.repeat(m.linear(xv, m.weight('value.weight', [KV * N, C])), N, H / KV);
  const g = m.linear(xg, m.weight('gate.weight', [C, C])).sigmoid();
  const d = vec('time_decay').add(m.matmul(m.matmul(xw, m.weight('time_decay_w1', [C, Dd])).tanh(), m.weight('time_decay_w2', [Dd, C])));
  const w = d.exp().neg().exp();

  const [y, newState] = m.wkv(r, k, v, w, null, S, { headSize: N, order: 'update_first', kDecayScale: true, rScale: N ** -0.5 });
  m.output('out', m.linear(y.mul(g), m.weight('output.weight', [C, C])));
  m.output('state.att_shift', m.last(a));
  m.output('state.wkv', newState);
  return m.build();
}
