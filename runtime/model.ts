/** Opening a checkpoint as a model: read, infer the config, check every tensor, in one place. */
import { inferConfig, openCheckpoint, validateCheckpoint, type Checkpoint } from './checkpoint/index.ts';
import type { ModelConfig } from '../kernels/config.ts';

export interface OpenModel {
  path: string;
  ckpt: Checkpoint;
  config: ModelConfig;
  /** f32 values of a tensor by official name (cached: a tensor is read from disk once). */
  read(name: string): Float32Array;
  close(): void;
}

export function openModel(path: string): OpenModel {
  const ckpt = openCheckpoint(path);
  try {
    const config = inferConfig(ckpt);
    validateCheckpoint(ckpt, config);
    return { path, ckpt, config, read: (n) => ckpt.readF32(n), close: () => ckpt.close() };
  } catch (e) {
    ckpt.close();
    throw e;
  }
}
