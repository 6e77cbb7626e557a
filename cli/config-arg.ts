/** `--config`: a preset name, a JSON config file, or a checkpoint whose shapes give the config. */
import { existsSync, readFileSync } from 'node:fs';
import type { ModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { PRESETS } from '../runtime/presets.ts';

/**
 * The keys a config .json may give for each field: rwkvc's own camelCase, the official RWKV / fixture
 * snake_case (`golden.json`), and Hugging Face's RWKV-6 `config.json` names. The first is the one named in
 * messages.
 */
const NAMES: Record<keyof ModelConfig, string[]> = {
  nLayer: ['n_layer', 'nLayer', 'num_hidden_layers'],
  nEmbd: ['n_embd', 'nEmbd', 'hidden_size'],
  headSize: ['head_size', 'headSize'],
  nHead: ['n_head', 'nHead', 'num_attention_heads'],
  dimFfn: ['dim_ffn', 'dimFfn', 'intermediate_size'],
  vocabSize: ['vocab_size', 'vocabSize'],
  loraMix: ['lora_mix', 'loraMix'],
  loraDecay: ['lora_decay', 'loraDecay'],
};
/** The attention width: RWKV-6 here has it equal to n_embd, so it may be given but must be that. */
const DIM_ATT = ['dim_att', 'dimAtt', 'attention_hidden_size'];
/**
 * Keys that describe the file rather than the shape (Hugging Face's bookkeeping, the fixtures' golden
 * metadata, and settings this implementation fixes: head_size_divisor 8, LayerNorm ε 1e-5): accepted and
 * ignored, so such a config can be given as it is.
 */
const IGNORED = [
  'architectures', 'auto_map', 'model_type', 'torch_dtype', 'transformers_version', 'use_cache', 'bos_token_id',
  'eos_token_id', 'tie_word_embeddings', 'layer_norm_epsilon', 'rescale_every', 'head_size_divisor',
  'weights_dtype', 'seed', 'tokens', 'golden', 'logit_abs_max',
];
const REQUIRED: (keyof ModelConfig)[] = ['nLayer', 'nEmbd', 'vocabSize'];

/** The format, for help texts and messages. */
export const CONFIG_JSON_HELP =
  'a config .json: n_layer, n_embd, vocab_size (required); head_size (64), n_head (n_embd/head_size), ' +
  'dim_ffn (⌊n_embd·3.5/32⌋·32), lora_mix (32; 64 at n_embd ≥ 4096), lora_decay (64; 128) optional; ' +
  'camelCase (nLayer …) and Hugging Face names (num_hidden_layers, hidden_size, num_attention_heads, ' +
  'intermediate_size, attention_hidden_size) also accepted';

/** A preset, a config JSON, or a checkpoint's config (its reader loaded only then: compiling from a preset reads no checkpoint). */
export async function resolveConfig(arg: string): Promise<ModelConfig> {
  if (PRESETS[arg]) return PRESETS[arg];
  if (!existsSync(arg)) throw new UserError(`--config: '${arg}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a file`);
  if (arg.endsWith('.json')) {
    let j: unknown;
    try {
      j = JSON.parse(readFileSync(arg, 'utf8'));
    } catch (e) {
      throw new UserError(`${arg}: not valid JSON: ${(e as Error).message}`);
    }
    return parseConfigJson(j, arg);
  }
  const m = (await import('../runtime/model.ts')).openModel(arg);
  m.close();
  return m.config;
}

/** A config object (parsed JSON) as a ModelConfig; `file` names it in messages. */
export function parseConfigJson(j: unknown, file: string): ModelConfig {
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new UserError(`${file}: expected a JSON object of config keys (${CONFIG_JSON_HELP})`);
  const obj = j as Record<string, unknown>;
  const known = new Set([...Object.values(NAMES).flat(), ...DIM_ATT, ...IGNORED]);
  const accepted = [...Object.values(NAMES).map((n) => n[0]!), DIM_ATT[0]!].join(', ');
  for (const k of Object.keys(obj))
    if (!known.has(k)) throw new UserError(`${file}: unknown key '${k.length > 40 ? `${k.slice(0, 40)}…` : k}' (accepted: ${accepted}, their camelCase or Hugging Face names)`);

  /** The value given under any of `names` (null counts as absent, as in HF configs); two differing values are refused. */
  const get = (names: string[]): number | undefined => {
    let v: number | undefined, from = '';
    for (const n of names) {
      const x = obj[n];
      if (x === undefined || x === null) continue;
      if (!Number.isInteger(x) || (x as number) <= 0) throw new UserError(`${file}: '${n}' must be a positive integer, got ${JSON.stringify(x)?.slice(0, 40)}`);
      if (v !== undefined && v !== x) throw new UserError(`${file}: '${from}' is ${v} but '${n}' is ${x as number}`);
      v = x as number;
      from = n;
    }
    return v;
  };
  const given = Object.fromEntries(Object.entries(NAMES).map(([f, names]) => [f, get(names)])) as Partial<ModelConfig>;
  for (const f of REQUIRED) if (given[f] === undefined) throw new UserError(`${file}: '${NAMES[f][0]}' is missing (${CONFIG_JSON_HELP})`);
  const C = given.nEmbd!;
  const headSize = given.headSize ?? 64;
  if (C % headSize !== 0) throw new UserError(`${file}: n_embd ${C} is not a multiple of head_size ${headSize}`);
  const cfg: ModelConfig = {
    nLayer: given.nLayer!, nEmbd: C, headSize, nHead: given.nHead ?? C / headSize,
    dimFfn: given.dimFfn ?? Math.floor((C * 3.5) / 32) * 32, vocabSize: given.vocabSize!,
    loraMix: given.loraMix ?? (C >= 4096 ? 64 : 32), loraDecay: given.loraDecay ?? (C >= 4096 ? 128 : 64),
  };
  if (cfg.nHead * headSize !== C) throw new UserError(`${file}: n_head ${cfg.nHead} × head_size ${headSize} is not n_embd ${C}`);
  const dimAtt = get(DIM_ATT);
  if (dimAtt !== undefined && dimAtt !== C) throw new UserError(`${file}: dim_att ${dimAtt} must equal n_embd ${C} (RWKV-6 as compiled here)`);
  return cfg;
}
