/** `--config`: a preset name, a JSON config file, or a checkpoint whose shapes give the config. */
import { existsSync, readFileSync } from 'node:fs';
import type { ModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { openModel } from '../runtime/model.ts';
import { PRESETS } from '../runtime/presets.ts';

const KEYS: (keyof ModelConfig)[] = ['nLayer', 'nEmbd', 'headSize', 'nHead', 'dimFfn', 'vocabSize', 'loraMix', 'loraDecay'];

export function resolveConfig(arg: string): ModelConfig {
  if (PRESETS[arg]) return PRESETS[arg];
  if (!existsSync(arg)) throw new UserError(`--config: '${arg}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a file`);
  if (arg.endsWith('.json')) {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(readFileSync(arg, 'utf8'));
    } catch (e) {
      throw new UserError(`${arg}: not valid JSON: ${(e as Error).message}`);
    }
    for (const k of KEYS)
      if (!Number.isInteger(j[k]) || (j[k] as number) <= 0) throw new UserError(`${arg}: '${k}' must be a positive integer (keys: ${KEYS.join(', ')})`);
    return Object.fromEntries(KEYS.map((k) => [k, j[k]])) as unknown as ModelConfig;
  }
  const m = openModel(arg);
  m.close();
  return m.config;
}
