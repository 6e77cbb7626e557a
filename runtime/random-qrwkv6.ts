/**
 * Seeded random QRWKV6 checkpoints (docs/qrwkv6.md) in the Hugging Face layout: a folder with config.json
 * and model.safetensors, or shards with model.safetensors.index.json. Values come from the same generator
 * as the Finch random models (random-model.ts valuesFor), each tensor drawn like its Finch counterpart
 * (norm weights near 1, decays in range, projections scaled by fan-in), with its own stream per name.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { toBf16, toF16 } from '../kernels/dtype.ts';
import type { TensorReader } from '../kernels/weights.ts';
import { writeSafetensors, type StoredDType } from './checkpoint/index.ts';
import { writeFileAtomic } from './checkpoint/fileio.ts';
import { QRWKV6_ARCH, qrwkv6Tensors } from './checkpoint/hf-qrwkv6.ts';
import { seededRandom, valuesFor } from './random-model.ts';

/** The Finch tensor whose value range a QRWKV6 tensor takes. */
function finchLike(name: string): string {
  if (/layernorm\.weight$|^model\.norm\.weight$/.test(name)) return 'ln1.weight';
  if (name === 'model.embed_tokens.weight') return 'emb.weight';
  if (/(o_proj|down_proj)\.weight$/.test(name)) return 'att.output.weight';
  return name;
}

export function qrwkv6RandomTensors(cfg: AnyModelConfig, seed = 1): TensorReader {
  const shapes = qrwkv6Tensors(cfg);
  const made = new Map<string, Float32Array>();
  return (name) => {
    let v = made.get(name);
    if (!v) {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`no tensor ${name} in a ${cfg.nLayer}-layer QRWKV6 model`);
      let h = seed;
      for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 0x9e3779b1);
      made.set(name, (v = valuesFor(finchLike(name), shape, seededRandom(h))));
    }
    return v;
  };
}

/** config.json of a QRWKV6 config (the fields readHfConfig reads, and the family's others for reference). */
export function qrwkv6ConfigJson(cfg: AnyModelConfig): Record<string, unknown> {
  return {
    architectures: [QRWKV6_ARCH], model_type: 'rwkv6qwen2', num_hidden_layers: cfg.nLayer, hidden_size: cfg.nEmbd,
    num_attention_heads: cfg.nHead, num_key_value_heads: cfg.nKvHead ?? cfg.nHead, head_size: cfg.headSize,
    intermediate_size: cfg.dimFfn, vocab_size: cfg.vocabSize, lora_rank_tokenshift: cfg.loraMix, lora_rank_decay: cfg.loraDecay,
    rms_norm_eps: cfg.normEps ?? 1e-6, attention_bias: false, tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'bfloat16',
  };
}

/**
 * Write a random QRWKV6 folder: config.json and model.safetensors, or (when the tensors exceed
 * `shardBytes`) model-0000i-of-0000n.safetensors with model.safetensors.index.json, as HF writes them.
 * One shard is in memory at a time.
 */
export function writeQrwkv6Model(dir: string, cfg: AnyModelConfig, seed: number, dtype: 'f32' | 'bf16' | 'f16' = 'bf16', shardBytes = 5e9, onTensor?: (i: number, n: number) => void): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new UserError(`${dir}: cannot make the model folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const names = [...qrwkv6Tensors(cfg)], size = dtype === 'f32' ? 4 : 2;
  const groups: [string, number[]][][] = [[]];
  let bytes = 0;
  for (const t of names) {
    const b = t[1].reduce((a, c) => a * c, 1) * size;
    if (bytes && bytes + b > shardBytes) { groups.push([]); bytes = 0; }
    groups.at(-1)!.push(t);
    bytes += b;
  }
  const file = (i: number) => (groups.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(groups.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  let done = 0;
  groups.forEach((g, i) => {
    writeSafetensors(join(dir, file(i)), g.map(([name, shape]) => {
      onTensor?.(done++, names.length);
      const v = qrwkv6RandomTensors(cfg, seed)(name);
      weightMap[name] = file(i);
      return { name, dtype: dtype as StoredDType, shape, data: dtype === 'f32' ? v : dtype === 'bf16' ? toBf16(v) : toF16(v) };
    }), { format: 'pt', generator: 'rwkvc random-model', seed: String(seed) });
  });
  const json = (o: unknown) => [new TextEncoder().encode(JSON.stringify(o, null, 2) + '\n')];
  if (groups.length > 1) writeFileAtomic(join(dir, 'model.safetensors.index.json'), json({ metadata: { total_size: names.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1) * size, 0) }, weight_map: weightMap }));
  writeFileAtomic(join(dir, 'config.json'), json(qrwkv6ConfigJson(cfg)));
}
