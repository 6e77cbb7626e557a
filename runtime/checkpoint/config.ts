/**
 * Model hyper-parameters, inferred from tensor shapes (checkpoints carry no config), and a check that a
 * checkpoint holds exactly the tensors an RWKV-6 model of that config needs (shapes per RWKV6.md §1).
 */
import { inputError } from './errors.ts';
import { shapeStr } from './dtypes.ts';
import type { Checkpoint } from './checkpoint.ts';
import type { ModelConfig } from '../../kernels/config.ts';

export type { ModelConfig };

/** Every tensor of the model, name → shape, in the official order. */
export function expectedTensors(cfg: ModelConfig): Map<string, number[]> {
  const { nLayer: L, nEmbd: C, nHead: H, headSize: N, dimFfn: F, vocabSize: V, loraMix: Dm, loraDecay: Dd } = cfg;
  const m = new Map<string, number[]>();
  m.set('emb.weight', [V, C]);
  for (let i = 0; i < L; i++) {
    const b = `blocks.${i}.`;
    const lns = i === 0 ? ['ln0', 'ln1', 'ln2'] : ['ln1', 'ln2'];
    for (const ln of lns) for (const p of ['weight', 'bias']) m.set(`${b}${ln}.${p}`, [C]);
    for (const mu of ['x', 'w', 'k', 'v', 'r', 'g']) m.set(`${b}att.time_maa_${mu}`, [1, 1, C]);
    m.set(`${b}att.time_maa_w1`, [C, 5 * Dm]);
    m.set(`${b}att.time_maa_w2`, [5, Dm, C]);
    m.set(`${b}att.time_decay`, [1, 1, C]);
    m.set(`${b}att.time_decay_w1`, [C, Dd]);
    m.set(`${b}att.time_decay_w2`, [Dd, C]);
    m.set(`${b}att.time_faaaa`, [H, N]);
    for (const w of ['receptance', 'key', 'value', 'gate', 'output']) m.set(`${b}att.${w}.weight`, [C, C]);
    m.set(`${b}att.ln_x.weight`, [C]);
    m.set(`${b}att.ln_x.bias`, [C]);
    m.set(`${b}ffn.time_maa_k`, [1, 1, C]);
    m.set(`${b}ffn.time_maa_r`, [1, 1, C]);
    m.set(`${b}ffn.key.weight`, [F, C]);
    m.set(`${b}ffn.receptance.weight`, [C, C]);
    m.set(`${b}ffn.value.weight`, [C, F]);
  }
  m.set('ln_out.weight', [C]);
  m.set('ln_out.bias', [C]);
  m.set('head.weight', [V, C]);
  return m;
}

export function inferConfig(ckpt: Checkpoint): ModelConfig {
  const dims = (name: string, rank: number, what: string): number[] => {
    const { shape } = ckpt.info(name);
    if (shape.length !== rank) throw inputError(ckpt.path, name, `expected shape ${what}, got ${shapeStr(shape)}`);
    return shape;
  };
  const layers = ckpt.names().map((n) => /^blocks\.(\d+)\./.exec(n)?.[1]).filter((x) => x !== undefined).map(Number);
  if (layers.length === 0) throw inputError(ckpt.path, undefined, 'no blocks.N.* tensors: not an RWKV-6 checkpoint');
  // The layer count comes from the highest index; a gap (or a corrupt huge index) is an error, not layers.
  const present = new Set(layers);
  const nLayer = Math.max(...present) + 1;
  for (let i = 0; i < nLayer; i++) {
    if (!present.has(i)) throw inputError(ckpt.path, `blocks.${i}`, `missing, but there are tensors for blocks.${nLayer - 1}`);
  }

  const [vocabSize, nEmbd] = dims('emb.weight', 2, '[V, C]') as [number, number];
  const [nHead, headSize] = dims('blocks.0.att.time_faaaa', 2, '[H, N]') as [number, number];
  if (nHead * headSize !== nEmbd) {
    throw inputError(ckpt.path, 'blocks.0.att.time_faaaa', `heads × head size = ${nHead} × ${headSize} ≠ n_embd ${nEmbd}`);
  }
  const mix = dims('blocks.0.att.time_maa_w1', 2, '[C, 5·D]')[1]!;
  if (mix % 5 !== 0) throw inputError(ckpt.path, 'blocks.0.att.time_maa_w1', `second dimension ${mix} is not a multiple of 5`);
  return {
    nLayer,
    nEmbd,
    headSize,
    nHead,
    dimFfn: dims('blocks.0.ffn.key.weight', 2, '[F, C]')[0]!,
    vocabSize,
    loraMix: mix / 5,
    loraDecay: dims('blocks.0.att.time_decay_w1', 2, '[C, D]')[1]!,
  };
}

/** Throws one UserError listing every missing, unknown, wrongly shaped or non-float tensor. */
export function validateCheckpoint(ckpt: Checkpoint, cfg: ModelConfig): void {
  const expected = expectedTensors(cfg);
  const present = new Set(ckpt.names());
  const problems: string[] = [];
  for (const name of expected.keys()) {
    if (!present.has(name)) problems.push(`${name}: missing`);
  }
  for (const name of present) {
    // State tuning: an optional initial wkv state per layer.
    const optional = /^blocks\.(\d+)\.att\.time_state$/.exec(name);
    const want = expected.get(name) ?? (optional && Number(optional[1]) < cfg.nLayer ? [cfg.nHead, cfg.headSize, cfg.headSize] : undefined);
    const { shape, dtype } = ckpt.info(name);
    if (!want) problems.push(`${name}: unknown tensor`);
    else if (shapeStr(shape) !== shapeStr(want)) problems.push(`${name}: wrong shape ${shapeStr(shape)} (expected ${shapeStr(want)})`);
    else if (!['f32', 'f16', 'bf16'].includes(dtype)) problems.push(`${name}: dtype ${dtype} is not a float type`);
  }
  if (problems.length === 0) return;
  const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
  throw inputError(ckpt.path, undefined, `${problems.length} problem(s) with this RWKV-6 checkpoint: ${shown}`);
}
