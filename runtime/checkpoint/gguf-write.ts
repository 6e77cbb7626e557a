/**
 * Node only: an RWKV-6 checkpoint as a GGUF file for llama.cpp (architecture `rwkv6`), so the same
 * weights run in ggml: `rwkvc bench` measures llama.cpp beside our targets in the same run.
 *
 * GGUF v3: "GGUF", version, tensor count, key/value count; the key/values; per tensor its name,
 * dimensions (ggml order: fastest first, the reverse of the official shape), ggml type and data
 * offset; then the data, every tensor aligned to 32 bytes.
 *
 * The mapping follows llama.cpp's converter for RWKV-6 (convert_hf_to_gguf.py, Rwkv6Model):
 *   the ddlerp A matrix and both decay LoRA matrices are transposed, the ddlerp B matrices are
 *   [5][C][D], the five ddlerp μ vectors are stacked into one time_mix_lerp_fused [w, k, v, r, g],
 *   and [1, 1, C] vectors lose their unit dimensions. No layer rescaling (rescale_every_n_layers 0).
 */
import type { ModelConfig } from '../../kernels/config.ts';
import { f32ToF16, q4Bytes, toBf16, toF16, toInt8, toQ4, INT8_BLOCK, Q4_BLOCK } from '../../kernels/dtype.ts';
import { inputError } from './errors.ts';
import { familyOf } from '../../kernels/config.ts';
import { qrwkv6GgufKeys, qrwkv6GgufTensors } from './gguf-qrwkv6.ts';
import { writeFileAtomic } from './fileio.ts';

/** Storage of the 2-D and 3-D matrices (vectors stay F32, as in llama.cpp's converter). */
export type GgufWeights = 'f32' | 'f16' | 'bf16' | 'q8_0';
/** GgufWeights and ggml's 4-bit blocks (the RWKV writer; gguf-llama.ts's random LLaMA takes GgufWeights). */
export type GgufFormat = GgufWeights | 'q4_0' | 'q4_1';

// ggml_type and llama_ftype numbers (ggml.h, llama.h)
const GGML_TYPE = { f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 8, bf16: 30 } as const;
export const FILE_TYPE = { f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, bf16: 32 } as const;
export const ALIGN = 32;

export interface GgufTensor {
  name: string;
  /** ggml dimensions, fastest first */
  ne: number[];
  type: keyof typeof GGML_TYPE;
  data: Uint8Array;
}

/** Values of an official tensor, by name (f32). */
export type TensorReader = (name: string) => Float32Array;

/** Transpose a row-major [rows, cols] matrix. */
function transpose(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  return out;
}

/** Values in ggml's storage of `type` (rows of `rowLen` for the block formats). */
export function encode(v: Float32Array, type: GgufTensor['type'], rowLen: number): Uint8Array {
  switch (type) {
    case 'f32': return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    case 'f16': return new Uint8Array(toF16(v).buffer);
    case 'bf16': return new Uint8Array(toBf16(v).buffer);
    case 'q8_0': {
      // block_q8_0: an f16 scale, then 32 int8 — the same rounding as our own int8 (kernels/dtype.ts)
      const { q, scales } = toInt8(v, rowLen);
      const out = new Uint8Array(scales.length * (2 + INT8_BLOCK));
      const dv = new DataView(out.buffer);
      for (let b = 0; b < scales.length; b++) {
        dv.setUint16(b * 34, f32ToF16(scales[b]), true);
        out.set(new Uint8Array(q.buffer, b * INT8_BLOCK, INT8_BLOCK), b * 34 + 2);
      }
      return out;
    }
    case 'q4_0': case 'q4_1': {
      // block_q4_0 {d, qs[16]} (18 bytes) / block_q4_1 {d, m, qs[16]} (20 bytes): our own q4 rounding
      const q = toQ4(v, rowLen, type);
      const head = type === 'q4_0' ? 2 : 4, size = head + Q4_BLOCK / 2;
      const out = new Uint8Array(q.d.length * size);
      const dv = new DataView(out.buffer);
      for (let b = 0; b < q.d.length; b++) {
        dv.setUint16(b * size, q.dBits[b], true);
        if (type === 'q4_1') dv.setUint16(b * size + 2, q.mBits[b], true);
        q4Bytes(q.q, b, out, b * size + head);
      }
      return out;
    }
  }
}

/** The GGUF tensors of a model, in llama.cpp's names and layouts. */
function ggufTensors(cfg: ModelConfig, read: TensorReader, weights: GgufFormat, onLayer?: (done: number, total: number) => void): GgufTensor[] {
  const { nLayer, nEmbd: C, nHead: H, headSize: N, dimFfn: F, vocabSize: V, loraMix: Dm, loraDecay: Dd } = cfg;
  const out: GgufTensor[] = [];
  const vec = (name: string, v: Float32Array, ne = [v.length]) => out.push({ name, ne, type: 'f32', data: encode(v, 'f32', 0) });
  // a matrix of official shape [..., rows, cols] (ggml ne = [cols, rows, ...]); quantised along cols
  const mat = (name: string, v: Float32Array, ne: number[]) => {
    const block = weights === 'q8_0' || weights === 'q4_0' || weights === 'q4_1';
    const type = block && ne[0] % INT8_BLOCK ? 'f16' : weights;
    out.push({ name, ne, type, data: encode(v, type, ne[0]) });
  };
  if (familyOf(cfg) === 'qrwkv6') {
    qrwkv6GgufTensors(cfg, read, vec, mat, onLayer); // architecture rwkv6qwen2 (gguf-qrwkv6.ts)
    return out;
  }
  // Under 4 bits the embedding stays f16, as ours does (read one row per token: memory, not bandwidth).
  if (weights === 'q4_0' || weights === 'q4_1') out.push({ name: 'token_embd.weight', ne: [C, V], type: 'f16', data: encode(read('emb.weight'), 'f16', C) });
  else mat('token_embd.weight', read('emb.weight'), [C, V]);
  vec('token_embd_norm.weight', read('blocks.0.ln0.weight'));
  vec('token_embd_norm.bias', read('blocks.0.ln0.bias'));
  for (let i = 0; i < nLayer; i++) {
    onLayer?.(i, nLayer);
    const b = `blocks.${i}.`, g = `blk.${i}.`;
    vec(`${g}attn_norm.weight`, read(`${b}ln1.weight`));
    vec(`${g}attn_norm.bias`, read(`${b}ln1.bias`));
    vec(`${g}attn_norm_2.weight`, read(`${b}ln2.weight`));
    vec(`${g}attn_norm_2.bias`, read(`${b}ln2.bias`));
    mat(`${g}time_mix_w1.weight`, transpose(read(`${b}att.time_maa_w1`), C, 5 * Dm), [C, 5 * Dm]);
    // [5][D][C] → [5][C][D]
    const w2 = read(`${b}att.time_maa_w2`), w2t = new Float32Array(w2.length);
    for (let k = 0; k < 5; k++) w2t.set(transpose(w2.subarray(k * Dm * C, (k + 1) * Dm * C), Dm, C), k * Dm * C);
    mat(`${g}time_mix_w2.weight`, w2t, [Dm, C, 5]);
    vec(`${g}time_mix_lerp_x.weight`, read(`${b}att.time_maa_x`), [C, 1, 1]);
    const fused = new Float32Array(5 * C);
    ['w', 'k', 'v', 'r', 'g'].forEach((m, k) => fused.set(read(`${b}att.time_maa_${m}`), k * C));
    vec(`${g}time_mix_lerp_fused.weight`, fused, [C, 1, 1, 5]);
    vec(`${g}time_mix_first.weight`, read(`${b}att.time_faaaa`), [N, H]);
    vec(`${g}time_mix_decay.weight`, read(`${b}att.time_decay`), [C]);
    mat(`${g}time_mix_decay_w1.weight`, transpose(read(`${b}att.time_decay_w1`), C, Dd), [C, Dd]);
    mat(`${g}time_mix_decay_w2.weight`, transpose(read(`${b}att.time_decay_w2`), Dd, C), [Dd, C]);
    for (const [ours, theirs] of [['key', 'key'], ['value', 'value'], ['receptance', 'receptance'], ['gate', 'gate']])
      mat(`${g}time_mix_${theirs}.weight`, read(`${b}att.${ours}.weight`), [C, C]);
    vec(`${g}time_mix_ln.weight`, read(`${b}att.ln_x.weight`));
    vec(`${g}time_mix_ln.bias`, read(`${b}att.ln_x.bias`));
    mat(`${g}time_mix_output.weight`, read(`${b}att.output.weight`), [C, C]);
    vec(`${g}channel_mix_lerp_k.weight`, read(`${b}ffn.time_maa_k`), [C, 1, 1]);
    vec(`${g}channel_mix_lerp_r.weight`, read(`${b}ffn.time_maa_r`), [C, 1, 1]);
    mat(`${g}channel_mix_key.weight`, read(`${b}ffn.key.weight`), [C, F]);
    mat(`${g}channel_mix_value.weight`, read(`${b}ffn.value.weight`), [F, C]);
    mat(`${g}channel_mix_receptance.weight`, read(`${b}ffn.receptance.weight`), [C, C]);
  }
  vec('output_norm.weight', read('ln_out.weight'));
  vec('output_norm.bias', read('ln_out.bias'));
  mat('output.weight', read('head.weight'), [C, V]);
  onLayer?.(nLayer, nLayer);
  return out;
}

/** Little-endian GGUF value writer. */
class Bytes {
  private chunks: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array) { this.chunks.push(b); this.length += b.length; }
  private num(bytes: number, set: (dv: DataView) => void) { const b = new Uint8Array(bytes); set(new DataView(b.buffer)); this.push(b); }
  u32(v: number) { this.num(4, (d) => d.setUint32(0, v, true)); }
  i32(v: number) { this.num(4, (d) => d.setInt32(0, v, true)); }
  u64(v: number) { this.num(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  f32(v: number) { this.num(4, (d) => d.setFloat32(0, v, true)); }
  str(s: string) { const b = new TextEncoder().encode(s); this.u64(b.length); this.push(b); }
  bytes() { const out = new Uint8Array(this.length); let o = 0; for (const c of this.chunks) { out.set(c, o); o += c.length; } return out; }
}

// GGUF metadata value types
const T = { u32: 4, i32: 5, f32: 6, str: 8, arr: 9 } as const;
export type Kv = [string, 'u32' | 'f32' | 'str', number | string] | [string, 'strs', string[]] | [string, 'i32s', number[]];

/**
 * Token bytes as llama.cpp's RWKV tokenizer reads them back (llama_unescape_rwkv_token): what its
 * converter writes, Python's bytes repr without the b'…' (\t \n \r \\ and \xNN escapes; printable ASCII as is).
 */
function escapeTokenBytes(b: Uint8Array): string {
  let s = '';
  for (const c of b) {
    if (c === 9) s += '\\t';
    else if (c === 10) s += '\\n';
    else if (c === 13) s += '\\r';
    else if (c === 92) s += '\\\\';
    else if (c >= 32 && c < 127) s += String.fromCharCode(c);
    else s += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return s;
}

/** Token bytes by id (a WorldTokenizer), for the real vocabulary. */
export interface VocabSource { vocabSize: number; tokenBytes(id: number): Uint8Array | undefined }

/**
 * The tokenizer entries llama.cpp requires: `<s>` at id 0 (as in llama.cpp's converter), then the
 * World vocabulary's tokens, then `[PADn]` for rows past it. Without the vocabulary (it may not be
 * bundled, and a benchmark feeds token ids) ids 1..256 are the 256 single bytes, as in the World
 * vocabulary (llama.cpp looks up "\n"), and the rest placeholders.
 */
export function vocabEntries(V: number, vocab?: VocabSource): Kv[] {
  const tokens: string[] = [], types: number[] = [];
  for (let i = 0; i < V; i++) {
    const b = i === 0 ? undefined : vocab ? vocab.tokenBytes(i) : i <= 256 ? Uint8Array.of(i - 1) : undefined;
    tokens.push(i === 0 ? '<s>' : b ? escapeTokenBytes(b) : vocab ? `[PAD${i}]` : `<${i}>`);
    types.push(i === 0 ? 3 : b || !vocab ? 1 : 5); // CONTROL, NORMAL, UNUSED
  }
  return [
    ['tokenizer.ggml.model', 'str', 'rwkv'],
    ['tokenizer.ggml.tokens', 'strs', tokens],
    ['tokenizer.ggml.token_type', 'i32s', types],
  ];
}

export interface GgufOptions {
  /** general.name */
  name?: string;
  /** The World vocabulary, for a file llama.cpp can tokenize text with (else placeholders). */
  vocab?: VocabSource;
  onLayer?: (done: number, total: number) => void;
}

/**
 * Write `cfg`'s tensors (official names, via `read`) as a GGUF file at `path`, matrices in `weights`.
 * Written whole or not at all (writeFileAtomic).
 */
export function writeGguf(path: string, cfg: ModelConfig, read: TensorReader, weights: GgufFormat, o: GgufOptions = {}): void {
  if (o.vocab && o.vocab.vocabSize > cfg.vocabSize)
    throw inputError(path, undefined, `the vocabulary has ${o.vocab.vocabSize} ids but the model's embedding has ${cfg.vocabSize} rows`);
  const qrwkv6 = familyOf(cfg) === 'qrwkv6';
  const arch = qrwkv6 ? 'rwkv6qwen2' : 'rwkv6';
  const kvs: Kv[] = qrwkv6 ? [
    ['general.architecture', 'str', arch],
    ['general.name', 'str', o.name ?? 'rwkvc export'],
    ['general.file_type', 'u32', FILE_TYPE[weights]],
    ['general.alignment', 'u32', ALIGN],
    ...qrwkv6GgufKeys(cfg),
    ...vocabEntries(cfg.vocabSize, o.vocab),
  ] : [
    ['general.architecture', 'str', arch],
    ['general.name', 'str', o.name ?? 'rwkvc export'],
    ['general.file_type', 'u32', FILE_TYPE[weights]],
    ['general.alignment', 'u32', ALIGN],
    [`${arch}.context_length`, 'u32', 1048576],
    [`${arch}.embedding_length`, 'u32', cfg.nEmbd],
    [`${arch}.block_count`, 'u32', cfg.nLayer],
    [`${arch}.feed_forward_length`, 'u32', cfg.dimFfn],
    [`${arch}.attention.head_count`, 'u32', 0], // required by llama.cpp, unused by rwkv6
    [`${arch}.attention.layer_norm_epsilon`, 'f32', 1e-5],
    [`${arch}.rescale_every_n_layers`, 'u32', 0],
    [`${arch}.wkv.head_size`, 'u32', cfg.headSize],
    [`${arch}.time_mix_extra_dim`, 'u32', cfg.loraMix],
    [`${arch}.time_decay_extra_dim`, 'u32', cfg.loraDecay],
    ...vocabEntries(cfg.vocabSize, o.vocab),
  ];
  writeGgufFile(path, kvs, ggufTensors(cfg, read, weights, o.onLayer));
}

/** The GGUF v3 container: header, key/values, tensor infos, then the data, each tensor 32-byte aligned; whole or not at all. */
export function writeGgufFile(path: string, kvs: Kv[], tensors: GgufTensor[]): void {
  const h = new Bytes();
  h.u32(0x46554747); // "GGUF"
  h.u32(3);
  h.u64(tensors.length);
  h.u64(kvs.length);
  for (const [key, type, value] of kvs) {
    h.str(key);
    if (type === 'strs') { h.u32(T.arr); h.u32(T.str); h.u64(value.length); for (const s of value) h.str(s); }
    else if (type === 'i32s') { h.u32(T.arr); h.u32(T.i32); h.u64(value.length); for (const v of value) h.i32(v); }
    else { h.u32(T[type]); if (type === 'str') h.str(value as string); else if (type === 'u32') h.u32(value as number); else h.f32(value as number); }
  }
  let offset = 0;
  const pad = (n: number) => (ALIGN - (n % ALIGN)) % ALIGN;
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
