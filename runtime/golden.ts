/**
 * A golden file: the official implementation's numbers for a checkpoint (test/fixtures/<name>/golden.safetensors,
 * see ../shared/fixtures/README): the token ids fed, the logits after each, and the state after the last.
 */
import type { StateTensors } from '../targets/backend.ts';
import { openCheckpoint } from './checkpoint/index.ts';

export interface Golden {
  tokens: Int32Array;
  logits: Float32Array;
  state: StateTensors;
}

export function readGoldenFile(path: string): Golden {
  const g = openCheckpoint(path);
  try {
    const state: StateTensors = {};
    for (const n of g.names()) if (n.startsWith('state.')) state[n] = g.readF32(n);
    return { tokens: Int32Array.from(g.readF32('tokens')), logits: g.readF32('logits'), state };
  } finally {
    g.close();
  }
}
