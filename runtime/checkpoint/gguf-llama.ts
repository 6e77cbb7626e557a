/**
 * Node only: a seeded random LLaMA-architecture transformer as a GGUF file (architecture `llama`), of
 * the same width, depth, feed-forward size and vocabulary as an RWKV-6 config. `rwkvc bench --context`
 * runs it in llama.cpp beside our RWKV-6 to measure what attention costs per token as the context grows
 * (its KV cache) against RWKV's fixed-size state.
 *
 * GGUF v3 as in gguf-write.ts (kept separate so the two writers change independently): header, key/values,
 * tensor infos (ggml dimensions fastest first), data aligned to 32 bytes. Tensor names and layouts are
 * llama.cpp's LLM_ARCH_LLAMA ones: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
 * ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output. The tokenizer entries are the byte-level
 * `rwkv` ones gguf-write.ts writes without a vocabulary (llama.cpp's vocabulary loader is independent of
 * the architecture), so token ids map 1:1 and no merges table is needed.
 */
import type { ModelConfig } from '../../kernels/config.ts';
import { f32ToF16, toBf16, toF16, toInt8, INT8_BLOCK } from '../../kernels/dtype.ts';
import { seededRandom } from '../random-model.ts';
import { writeFileAtomic } from './fileio.ts';
import type { GgufWeights } from './gguf-write.ts';

const GGML_TYPE = { f32: 0, f16: 1, q8_0: 8, bf16: 30 } as const;
const FILE_TYPE = { f32: 0, f16: 1, q8_0: 7, bf16: 32 } as const;
const ALIGN = 32;

interface Tensor { name: string; ne: number[]; type: keyof typeof GGML_TYPE; data: Uint8Array }

function encode(v: Float32Array, type: Tensor['type'], rowLen: number): Uint8Array {
  switch (type) {
    case 'f32': return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    case 'f16': return new Uint8Array(toF16(v).buffer);
    case 'bf16': return new Uint8Array(toBf16(v).buffer);
    case 'q8_0': {
      const { q, scales } = toInt8(v, rowLen);
      const out = new Uint8Array(scales.length * (2 + INT8_BLOCK));
      const dv = new DataView(out.buffer);
      for (let b = 0; b < scales.length; b++) {
        dv.setUint16(b * 34, f32ToF16(scales[b]), true);
        out.set(new Uint8Array(q.buffer, b * INT8_BLOCK, INT8_BLOCK), b * 34 + 2);
      }
      return out;
    }
  }
}

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

class Bytes {
  private chunks: Uint8Array[] = [];
  private push(b: Uint8Array) { this.chunks.push(b); }
  private num(n: number, set: (d: DataView) => void) { const b = new Uint8Array(n); set(new DataView(b.buffer)); this.push(b); }
  u32(v: number) { this.num(4, (d) => d.setUint32(0, v, true)); }
  i32(v: number) { this.num(4, (d) => d.setInt32(0, v, true)); }
  u64(v: number) { this.num(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  f32(v: number) { this.num(4, (d) => d.setFloat32(0, v, true)); }
  str(s: string) { const b = new TextEncoder().encode(s); this.u64(b.length); this.push(b); }
  bytes() { return Buffer.concat(this.chunks); }
}

const KT = { u32: 4, i32: 5, f32: 6, str: 8, arr: 9 } as const;
type Kv = [string, 'u32' | 'f32' | 'str', number | string] | [string, 'strs', string[]] | [string, 'i32s', number[]];

export interface LlamaGgufOptions { seed?: number; name?: string; contextLength?: number }

/**
 * A random LLaMA of `cfg`'s width (nEmbd), depth (nLayer), feed-forward (dimFfn), vocabulary and head
 * size (nHead = nEmbd / headSize heads, as many KV heads: plain multi-head attention), matrices in
 * `weights`, written whole or not at all.
 */
export function writeLlamaGguf(path: string, cfg: ModelConfig, weights: GgufWeights, o: LlamaGgufOptions = {}): void {
  const arch = 'llama', V = cfg.vocabSize, heads = cfg.nEmbd / cfg.headSize;
  const tokens: string[] = [], types: number[] = [];
  for (let i = 0; i < V; i++) {
    // id 0 <s> (control), ids 1..256 the single bytes (as the World vocabulary has them), the rest placeholders
    tokens.push(i === 0 ? '<s>' : i <= 256 ? escapeByte(i - 1) : `<${i}>`);
    types.push(i === 0 ? 3 : 1);
  }
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
    ['tokenizer.ggml.model', 'str', 'rwkv'],
    ['tokenizer.ggml.tokens', 'strs', tokens],
    ['tokenizer.ggml.token_type', 'i32s', types],
  ];
  const tensors = llamaTensors(cfg, weights, o.seed ?? 1);
  const h = new Bytes();
  h.u32(0x46554747); // "GGUF"
  h.u32(3);
  h.u64(tensors.length);
  h.u64(kvs.length);
  for (const [key, type, value] of kvs) {
    h.str(key);
    if (type === 'strs') { h.u32(KT.arr); h.u32(KT.str); h.u64(value.length); for (const s of value) h.str(s); }
    else if (type === 'i32s') { h.u32(KT.arr); h.u32(KT.i32); h.u64(value.length); for (const v of value) h.i32(v); }
    else { h.u32(KT[type]); if (type === 'str') h.str(value as string); else if (type === 'u32') h.u32(value as number); else h.f32(value as number); }
  }
  const pad = (n: number) => (ALIGN - (n % ALIGN)) % ALIGN;
  let offset = 0;
  for (const t of tensors) {
    h.str(t.name);
    h.u32(t.ne.length);
    for (const d of t.ne) h.u64(d);
    h.u32(GGML_TYPE[t.type]);
    h.u64(offset);
    offset += t.data.length + pad(t.data.length);
  }
  const head = h.bytes();
  writeFileAtomic(path, (function* () {
    yield head;
    yield new Uint8Array(pad(head.length));
    for (const t of tensors) { yield t.data; yield new Uint8Array(pad(t.data.length)); }
  })());
}

/** One byte as llama.cpp's rwkv tokenizer reads it back (Python bytes-repr escapes, as gguf-write.ts). */
function escapeByte(c: number): string {
  if (c === 9) return '\\t';
  if (c === 10) return '\\n';
  if (c === 13) return '\\r';
  if (c === 92) return '\\\\';
  if (c >= 32 && c < 127) return String.fromCharCode(c);
  return `\\x${c.toString(16).padStart(2, '0')}`;
}
