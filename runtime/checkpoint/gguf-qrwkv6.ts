/**
 * QRWKV6 for llama.cpp: the tensors and metadata of architecture `rwkv6qwen2`, as llama.cpp's converter
 * writes them (convert_hf_to_gguf.py RWKV6Qwen2Model over Rwkv6Model.modify_tensors; docs/qrwkv6.md's
 * table): the ddlerp A matrix and both decay LoRA matrices transposed, the ddlerp B matrices [5][C][D], the
 * LoRA slots permuted from the checkpoint's r, k, v, w, g to llama.cpp's w, k, v, r, g, the five lerp
 * vectors stacked as time_mix_lerp_fused [w, k, v, r, g], [1, 1, C] vectors squeezed. gguf-write.ts writes
 * the file; this module only says what goes in it.
 */
import type { AnyModelConfig, ModelConfig } from '../../kernels/config.ts';

type Read = (name: string) => Float32Array;
/** gguf-write.ts's emitters: a vector (F32) and a matrix in the chosen storage, both with ggml ne (fastest first). */
type Vec = (name: string, v: Float32Array, ne?: number[]) => void;
type Mat = (name: string, v: Float32Array, ne: number[]) => void;

/** The checkpoint's LoRA slot order and llama.cpp's: GGUF slot s holds checkpoint slot PERM[s]. */
const HF_SLOTS = ['r', 'k', 'v', 'w', 'g'];
const PERM = ['w', 'k', 'v', 'r', 'g'].map((s) => HF_SLOTS.indexOf(s)); // [3, 1, 2, 0, 4]

function transpose(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  return out;
}

/** Blocks of `block` values reordered: output block s is input block PERM[s]. */
function permuteBlocks(v: Float32Array, block: number): Float32Array {
  const out = new Float32Array(v.length);
  PERM.forEach((from, s) => out.set(v.subarray(from * block, (from + 1) * block), s * block));
  return out;
}

export function qrwkv6GgufTensors(config: ModelConfig, read: Read, vec: Vec, mat: Mat, onLayer?: (done: number, total: number) => void): void {
  const cfg = config as AnyModelConfig;
  const { nLayer, nEmbd: C, headSize: N, dimFfn: F, vocabSize: V, loraMix: D, loraDecay: Dd } = cfg;
  const KV = (cfg.nKvHead ?? cfg.nHead) * N;
  mat('token_embd.weight', read('model.embed_tokens.weight'), [C, V]);
  for (let l = 0; l < nLayer; l++) {
    onLayer?.(l, nLayer);
    const p = `model.layers.${l}.`, a = `${p}self_attn.`, g = `blk.${l}.`;
    vec(`${g}attn_norm.weight`, read(`${p}input_layernorm.weight`));
    // [C, 5·D] → [5·D, C] (rows in slot blocks of D), slots permuted
    mat(`${g}time_mix_w1.weight`, permuteBlocks(transpose(read(`${a}time_maa_w1`), C, 5 * D), D * C), [C, 5 * D]);
    // [5][D][C] → [5][C][D], slots permuted
    const w2 = read(`${a}time_maa_w2`), w2t = new Float32Array(w2.length);
    for (let k = 0; k < 5; k++) w2t.set(transpose(w2.subarray(k * D * C, (k + 1) * D * C), D, C), k * D * C);
    mat(`${g}time_mix_w2.weight`, permuteBlocks(w2t, C * D), [D, C, 5]);
    vec(`${g}time_mix_lerp_x.weight`, read(`${a}time_maa_x`), [C, 1, 1]);
    const fused = new Float32Array(5 * C);
    ['w', 'k', 'v', 'r', 'g'].forEach((s, k) => fused.set(read(`${a}time_maa_${s}`), k * C));
    vec(`${g}time_mix_lerp_fused.weight`, fused, [C, 1, 1, 5]);
    vec(`${g}time_mix_decay.weight`, read(`${a}time_decay`), [C]);
    mat(`${g}time_mix_decay_w1.weight`, transpose(read(`${a}time_decay_w1`), C, Dd), [C, Dd]);
    mat(`${g}time_mix_decay_w2.weight`, transpose(read(`${a}time_decay_w2`), Dd, C), [Dd, C]);
    mat(`${g}time_mix_receptance.weight`, read(`${a}q_proj.weight`), [C, C]);
    mat(`${g}time_mix_key.weight`, read(`${a}k_proj.weight`), [C, KV]);
    mat(`${g}time_mix_value.weight`, read(`${a}v_proj.weight`), [C, KV]);
    mat(`${g}time_mix_gate.weight`, read(`${a}gate.weight`), [C, C]);
    mat(`${g}time_mix_output.weight`, read(`${a}o_proj.weight`), [C, C]);
    vec(`${g}ffn_norm.weight`, read(`${p}post_attention_layernorm.weight`));
    mat(`${g}ffn_gate.weight`, read(`${p}mlp.gate_proj.weight`), [C, F]);
    mat(`${g}ffn_up.weight`, read(`${p}mlp.up_proj.weight`), [C, F]);
    mat(`${g}ffn_down.weight`, read(`${p}mlp.down_proj.weight`), [F, C]);
  }
  vec('output_norm.weight', read('model.norm.weight'));
  mat('output.weight', read('lm_head.weight'), [C, V]);
  onLayer?.(nLayer, nLayer);
}

/** The `rwkv6qwen2.*` keys (set_gguf_parameters of RWKV6Qwen2Model): [key, type, value]. */
export function qrwkv6GgufKeys(config: ModelConfig): [string, 'u32' | 'f32', number][] {
  const cfg = config as AnyModelConfig, arch = 'rwkv6qwen2';
  return [
    [`${arch}.context_length`, 'u32', 1048576],
    [`${arch}.embedding_length`, 'u32', cfg.nEmbd],
    [`${arch}.block_count`, 'u32', cfg.nLayer],
    [`${arch}.feed_forward_length`, 'u32', cfg.dimFfn],
    [`${arch}.wkv.head_size`, 'u32', cfg.headSize],
    [`${arch}.time_mix_extra_dim`, 'u32', cfg.loraMix],
    [`${arch}.time_decay_extra_dim`, 'u32', cfg.loraDecay],
    [`${arch}.attention.layer_norm_rms_epsilon`, 'f32', cfg.normEps ?? 1e-6],
    [`${arch}.token_shift_count`, 'u32', 1],
    [`${arch}.attention.head_count_kv`, 'u32', cfg.nKvHead ?? cfg.nHead],
    [`${arch}.attention.head_count`, 'u32', 0], // required by llama.cpp, unused
  ];
}
