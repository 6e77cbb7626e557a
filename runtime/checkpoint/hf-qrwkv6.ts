/**
 * Node only: Hugging Face model folders, `config.json` beside `model.safetensors` or a sharded
 * `model.safetensors.index.json` (its `weight_map` names the shard of each tensor). The family comes from
 * config.json's `architectures`: `RWKV6Qwen2ForCausalLM` is QRWKV6 (docs/qrwkv6.md), whose config the
 * file states and the tensor shapes are checked against; `Rwkv6ForCausalLM` is Finch (names mapped by
 * reader.ts, config inferred from shapes as for a single file).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyModelConfig, ModelConfig } from '../../kernels/config.ts';
import { inputError, describeValue } from './errors.ts';
import { shapeStr } from './dtypes.ts';
import type { TensorInfo } from './dtypes.ts';
import type { Checkpoint } from './checkpoint.ts';
import { openCheckpoint } from './index.ts';

export const QRWKV6_ARCH = 'RWKV6Qwen2ForCausalLM';
const FINCH_ARCHS = ['Rwkv6ForCausalLM', 'RWKV6ForCausalLM'];

/** Is `path` a model folder (a directory with a config.json)? */
export function isHfFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory() && existsSync(join(path, 'config.json'));
  } catch {
    return false;
  }
}

/** Every tensor of a QRWKV6 model, HF name → shape (docs/qrwkv6.md), in the checkpoint's order. */
export function qrwkv6Tensors(cfg: AnyModelConfig): Map<string, number[]> {
  const { nLayer: L, nEmbd: C, headSize: N, dimFfn: F, vocabSize: V, loraMix: D, loraDecay: Dd } = cfg;
  const KV = cfg.nKvHead ?? cfg.nHead;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [V, C]);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`, a = `${p}self_attn.`;
    m.set(`${p}input_layernorm.weight`, [C]);
    for (const s of ['x', 'r', 'k', 'v', 'w', 'g']) m.set(`${a}time_maa_${s}`, [1, 1, C]);
    m.set(`${a}time_maa_w1`, [C, 5 * D]);
    m.set(`${a}time_maa_w2`, [5, D, C]);
    m.set(`${a}time_decay`, [1, 1, C]);
    m.set(`${a}time_decay_w1`, [C, Dd]);
    m.set(`${a}time_decay_w2`, [Dd, C]);
    m.set(`${a}q_proj.weight`, [C, C]);
    m.set(`${a}k_proj.weight`, [KV * N, C]);
    m.set(`${a}v_proj.weight`, [KV * N, C]);
    m.set(`${a}gate.weight`, [C, C]);
    m.set(`${a}o_proj.weight`, [C, C]);
    m.set(`${p}post_attention_layernorm.weight`, [C]);
    m.set(`${p}mlp.gate_proj.weight`, [F, C]);
    m.set(`${p}mlp.up_proj.weight`, [F, C]);
    m.set(`${p}mlp.down_proj.weight`, [C, F]);
  }
  m.set('model.norm.weight', [C]);
  m.set('lm_head.weight', [V, C]);
  return m;
}

/** The other names the family's modeling code uses for the time-mix projections (RWKV's own). */
const ALIASES: [RegExp, string][] = [
  [/\.self_attn\.receptance\.weight$/, '.self_attn.q_proj.weight'],
  [/\.self_attn\.key\.weight$/, '.self_attn.k_proj.weight'],
  [/\.self_attn\.value\.weight$/, '.self_attn.v_proj.weight'],
  [/\.self_attn\.output\.weight$/, '.self_attn.o_proj.weight'],
];
const canonical = (name: string) => ALIASES.reduce((n, [re, to]) => n.replace(re, to), name);

/** Shards as one checkpoint: each tensor read from the file that holds it. */
class ShardedCheckpoint implements Checkpoint {
  readonly format = 'safetensors' as const;
  readonly metadata: Record<string, string> = {};
  constructor(readonly path: string, private readonly shards: Checkpoint[], private readonly where: Map<string, { shard: Checkpoint; name: string }>) {}
  names(): string[] { return [...this.where.keys()]; }
  private at(name: string) {
    const w = this.where.get(name);
    if (!w) throw inputError(this.path, name, 'tensor not found in checkpoint');
    return w;
  }
  info(name: string): TensorInfo { const w = this.at(name); return { ...w.shard.info(w.name), name }; }
  readF32(name: string): Float32Array { const w = this.at(name); return w.shard.readF32(w.name); }
  readRaw(name: string): Uint8Array { const w = this.at(name); return w.shard.readRaw(w.name); }
  readRowsF32(name: string, row0: number, rows: number): Float32Array {
    const w = this.at(name), s = w.shard as Checkpoint & { readRowsF32?: (n: string, r: number, k: number) => Float32Array };
    if (s.readRowsF32) return s.readRowsF32(w.name, row0, rows);
    const cols = w.shard.info(w.name).shape.at(-1) ?? 1;
    return w.shard.readF32(w.name).slice(row0 * cols, (row0 + rows) * cols);
  }
  close(): void { for (const s of this.shards) s.close(); }
}

function readJson(file: string): Record<string, unknown> {
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw inputError(file, undefined, `not valid JSON: ${(e as Error).message}`);
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw inputError(file, undefined, 'expected a JSON object');
  return j as Record<string, unknown>;
}

/** The folder's tensors: model.safetensors, or the shards model.safetensors.index.json lists. */
export function openHfCheckpoint(dir: string): Checkpoint {
  const single = join(dir, 'model.safetensors'), index = join(dir, 'model.safetensors.index.json');
  if (!existsSync(index)) {
    if (!existsSync(single)) throw inputError(dir, undefined, 'a model folder needs model.safetensors or model.safetensors.index.json beside config.json');
    return renamed(openCheckpoint(single));
  }
  const map = readJson(index).weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw inputError(index, 'weight_map', 'missing, or not an object of tensor name → shard file');
  const files = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || !/^[\w.-]+\.safetensors$/.test(file))
      throw inputError(index, name, `shard ${describeValue(file, 80)} is not a .safetensors file name in this folder`);
    files.set(file, [...(files.get(file) ?? []), name]);
  }
  const shards: Checkpoint[] = [];
  const where = new Map<string, { shard: Checkpoint; name: string }>();
  try {
    for (const [file, names] of files) {
      const shard = openCheckpoint(join(dir, file));
      shards.push(shard);
      const present = new Set(shard.names());
      for (const n of names) {
        if (!present.has(n)) throw inputError(join(dir, file), n, `listed in ${index} but not in this shard`);
        where.set(canonical(n), { shard, name: n });
      }
      for (const n of present) if (!where.has(canonical(n))) throw inputError(join(dir, file), n, `not listed in ${index}`);
    }
  } catch (e) {
    for (const s of shards) s.close();
    throw e;
  }
  return new ShardedCheckpoint(dir, shards, where);
}

/** One file, its alias names mapped to the canonical ones. */
function renamed(ck: Checkpoint): Checkpoint {
  if (!ck.names().some((n) => canonical(n) !== n)) return ck;
  const where = new Map(ck.names().map((n) => [canonical(n), { shard: ck, name: n }]));
  return new ShardedCheckpoint(ck.path, [ck], where);
}

/** A positive whole number from config.json, or `fallback` when absent. */
function field(file: string, j: Record<string, unknown>, key: string, fallback?: number): number {
  const v = j[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw inputError(file, key, `expected a positive whole number, got ${describeValue(j[key], 60)}`);
  return v;
}

/** config.json as a QRWKV6 config (docs/qrwkv6.md's table), or null for Finch (config from the tensors). */
export function readHfConfig(dir: string): AnyModelConfig | null {
  const file = join(dir, 'config.json'), j = readJson(file);
  const arch = Array.isArray(j.architectures) ? j.architectures : [];
  if (arch.some((a) => FINCH_ARCHS.includes(a as string))) return null;
  if (!arch.includes(QRWKV6_ARCH))
    throw inputError(file, 'architectures', `${describeValue(j.architectures, 120)} is not a family rwkvc runs (${QRWKV6_ARCH}, ${FINCH_ARCHS[0]})`);
  if (j.attention_bias === true) throw inputError(file, 'attention_bias', 'true: q/k/v biases are not implemented (docs/qrwkv6.md)');
  if (j.tie_word_embeddings === true) throw inputError(file, 'tie_word_embeddings', 'true: a tied head is not implemented (docs/qrwkv6.md)');
  const C = field(file, j, 'hidden_size'), H = field(file, j, 'num_attention_heads'), KV = field(file, j, 'num_key_value_heads', H);
  if (C % H) throw inputError(file, 'hidden_size', `${C} is not a multiple of num_attention_heads ${H}`);
  if (H % KV) throw inputError(file, 'num_key_value_heads', `${KV} does not divide num_attention_heads ${H}`);
  const eps = j.rms_norm_eps ?? 1e-6;
  if (typeof eps !== 'number' || !(eps > 0 && eps < 1)) throw inputError(file, 'rms_norm_eps', `expected a number in (0, 1), got ${describeValue(j.rms_norm_eps, 60)}`);
  return {
    family: 'qrwkv6', nLayer: field(file, j, 'num_hidden_layers'), nEmbd: C, nHead: H, headSize: C / H, nKvHead: KV,
    dimFfn: field(file, j, 'intermediate_size'), vocabSize: field(file, j, 'vocab_size'),
    loraMix: field(file, j, 'lora_rank_tokenshift', C >= 4096 ? 64 : 32), loraDecay: field(file, j, 'lora_rank_decay', C >= 4096 ? 128 : 64),
    normEps: eps,
  };
}

/** One UserError listing every missing, unknown, wrongly shaped or non-float tensor of a QRWKV6 checkpoint. */
export function validateQrwkv6(ckpt: Checkpoint, cfg: ModelConfig): void {
  const want = qrwkv6Tensors(cfg), present = new Set(ckpt.names()), problems: string[] = [];
  for (const n of want.keys()) if (!present.has(n)) problems.push(`${n}: missing`);
  for (const n of present) {
    const w = want.get(n), { shape, dtype } = ckpt.info(n);
    if (!w) problems.push(`${n}: unknown tensor`);
    else if (shapeStr(shape) !== shapeStr(w)) problems.push(`${n}: wrong shape ${shapeStr(shape)} (expected ${shapeStr(w)} from config.json)`);
    else if (!['f32', 'f16', 'bf16'].includes(dtype)) problems.push(`${n}: dtype ${dtype} is not a float type`);
  }
  if (!problems.length) return;
  const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
  throw inputError(ckpt.path, undefined, `${problems.length} problem(s) with this QRWKV6 checkpoint: ${shown}`);
}
