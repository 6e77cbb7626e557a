/** Opening a checkpoint as a model: read, infer the config, check every tensor, in one place. */
import { inferConfig, openCheckpoint, validateCheckpoint, type Checkpoint } from './checkpoint/index.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { isHfFolder, openHfCheckpoint, readHfConfig, validateQrwkv6 } from './checkpoint/hf-qrwkv6.ts';
import type { StateTensors } from '../targets/backend.ts';

export interface OpenModel {
  path: string;
  ckpt: Checkpoint;
  config: ModelConfig;
  /** f32 values of a tensor by official name (cached: a tensor is read from disk once). */
  read(name: string): Float32Array;
  close(): void;
}

/**
 * The state a sequence starts from: zero, except that a state-tuned checkpoint's
 * blocks.N.att.time_state ([H][value][key]) gives the initial wkv state, transposed to [H][key][value].
 */
export function initialState(m: OpenModel): StateTensors | null {
  const { nLayer, nEmbd: C, nHead: H, headSize: N } = m.config;
  if (!m.ckpt.names().some((n) => n.endsWith('.att.time_state'))) return null;
  const s: StateTensors = {};
  for (let l = 0; l < nLayer; l++) {
    s[`state.${l}.att_shift`] = new Float32Array(C);
    s[`state.${l}.ffn_shift`] = new Float32Array(C);
    const wkv = new Float32Array(H * N * N);
    const name = `blocks.${l}.att.time_state`;
    if (m.ckpt.names().includes(name)) {
      const ts = m.read(name);
      for (let h = 0; h < H; h++)
        for (let j = 0; j < N; j++)
          for (let i = 0; i < N; i++) wkv[h * N * N + i * N + j] = ts[h * N * N + j * N + i];
    }
    s[`state.${l}.wkv`] = wkv;
  }
  return s;
}

export function openModel(path: string): OpenModel {
  // a Hugging Face folder (config.json + safetensors, sharded or not): QRWKV6's config is the file's
  const folder = isHfFolder(path);
  const ckpt = folder ? openHfCheckpoint(path) : openCheckpoint(path);
  try {
    const hf = folder ? readHfConfig(path) : null;
    const config = hf ?? inferConfig(ckpt);
    if (hf) validateQrwkv6(ckpt, hf);
    else validateCheckpoint(ckpt, config);
    return { path, ckpt, config, read: (n) => ckpt.readF32(n), close: () => ckpt.close() };
  } catch (e) {
    ckpt.close();
    throw e;
  }
}
