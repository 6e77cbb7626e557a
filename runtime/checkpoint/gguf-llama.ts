/**
 * Node only: a seeded random LLaMA-architecture transformer as a GGUF file (architecture `llama`), of
 * the same width, depth, feed-forward size and vocabulary as an RWKV-6 config. `rwkvc bench --context`
 * runs it in llama.cpp beside our RWKV-6 to measure what attention costs per token as the context grows
 * (its KV cache) against RWKV's fixed-size state.
 *
 * The GGUF container, tensor encodings and byte-level tokenizer entries are gguf-write.ts's. Tensor names and layouts are
 * llama.cpp's LLM_ARCH_LLAMA ones: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
 * ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output. The tokenizer entries are the byte-level
 * `rwkv` ones gguf-write.ts writes without a vocabulary (llama.cpp's vocabulary loader is independent of
 * the architecture), so token ids map 1:1 and no merges table is needed.
 */
import type { ModelConfig } from '../../kernels/config.ts';
import { INT8_BLOCK } from '../../kernels/dtype.ts';
import { seededRandom } from '../random-model.ts';
import { ALIGN, encode, FILE_TYPE, vocabEntries, writeGgufFile, type GgufTensor as Tensor, type GgufWeights, type Kv } from './gguf-write.ts';

/** The llama tensors with seeded uniform values (matrices ±√3/√fan_in, norms 1): finite activations at any depth. */
function llamaTensors(cfg: ModelConfig, weights: GgufWeights, seed: number): Tensor[] {
  const { nLayer, nEmbd: C, dimFfn: F, vocabSize: V } = cfg;
  const rnd = seededRandom(seed);
  const out: Tensor[] = [];
  const ones = (name: string) => out.push({ name, ne: [C], type: 'f32', data: encode(new Float32Array(C).fill(1), 'f32', 0) });
  // ne = [fan_in, rows]: ggml multiplies x (fan_in) by each row
  const mat = (name: string, ne: [number, number], scale = 1 / Math.sqrt(ne[0])) => {
    const v = new Float32Array(ne[0] * ne[1]), s = scale * Math.sqrt(3);
    for (let i = 0; i < v.length; i++) v[i] = (2 * rnd() - 1) * s;
    const type = weights === 'q8_0' && ne[0] % INT8_BLOCK ? 'f16' : weights;
    out.push({ name, ne, type, data: encode(v, type, ne[0]) });
  };
  mat('token_embd.weight', [C, V], 0.5);
  for (let i = 0; i < nLayer; i++) {
    const g = `blk.${i}.`;
    ones(`${g}attn_norm.weight`);
    for (const m of ['attn_q', 'attn_k', 'attn_v', 'attn_output']) mat(`${g}${m}.weight`, [C, C]);
    ones(`${g}ffn_norm.weight`);
    mat(`${g}ffn_gate.weight`, [C, F]);
    mat(`${g}ffn_up.weight`, [C, F]);
    mat(`${g}ffn_down.weight`, [F, C]);
  }
  ones('output_norm.weight');
  mat('output.weight', [C, V]);
  return out;
}

export interface LlamaGgufOptions { seed?: number; name?: string; contextLength?: number }

/**
 * A random LLaMA of `cfg`'s width (nEmbd), depth (nLayer), feed-forward (dimFfn), vocabulary and head
 * size (nHead = nEmbd / headSize heads, as many KV heads: plain multi-head attention), matrices in
 * `weights`, written whole or not at all.
 */
export function writeLlamaGguf(path: string, cfg: ModelConfig, weights: GgufWeights, o: LlamaGgufOptions = {}): void {
  const arch = 'llama', V = cfg.vocabSize, heads = cfg.nEmbd / cfg.headSize;
  const kvs: Kv[] = [
    ['general.architecture', 'str', arch],
    ['general.name', 'str', o.name ?? 'rwkvc random llama'],
    ['general.file_type', 'u32', FILE_TYPE[weights]],
    ['general.alignment', 'u32', ALIGN],
    [`${arch}.context_length`, 'u32', o.contextLength ?? 32768],
    [`${arch}.embedding_length`, 'u32', cfg.nEmbd],
    [`${arch}.block_count`, 'u32', cfg.nLayer],
    [`${arch}.feed_forward_length`, 'u32', cfg.dimFfn],
    [`${arch}.attention.head_count`, 'u32', heads],
    [`${arch}.attention.head_count_kv`, 'u32', heads],
    [`${arch}.attention.layer_norm_rms_epsilon`, 'f32', 1e-5],
    [`${arch}.rope.dimension_count`, 'u32', cfg.headSize],
    [`${arch}.rope.freq_base`, 'f32', 10000],
    [`${arch}.vocab_size`, 'u32', V],
    // id 0 <s> (control), ids 1..256 the single bytes (as the World vocabulary has them), the rest placeholders
    ...vocabEntries(V),
  ];
  writeGgufFile(path, kvs, llamaTensors(cfg, weights, o.seed ?? 1));
}
