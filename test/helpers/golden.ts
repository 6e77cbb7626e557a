/** The official numbers of a fixture, and the comparison every backend test makes against them. */
import { join } from 'node:path';
import { openCheckpoint } from '../../runtime/checkpoint/index.ts';
import type { StateTensors } from '../../targets/backend.ts';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
export const FIXTURE_NAMES = ['finch-tiny', 'finch-tiny-bf16'] as const;
export const FORMATS = ['model.pth', 'model.safetensors', 'model-hf.safetensors'] as const;

export interface Golden {
  tokens: Int32Array;
  logits: Float32Array;
  state: StateTensors;
}

export function readGolden(fixture: string): Golden {
  const g = openCheckpoint(join(FIXTURES, fixture, 'golden.safetensors'));
  const state: StateTensors = {};
  for (const n of g.names()) if (n.startsWith('state.')) state[n] = g.readF32(n);
  const out = { tokens: Int32Array.from(g.readF32('tokens')), logits: g.readF32('logits'), state };
  g.close();
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Largest |Δ| over the logits and every state tensor. */
export function compareRun(logits: Float32Array, state: StateTensors, ref: { logits: ArrayLike<number>; state: StateTensors }) {
  let stateDiff = 0;
  for (const [k, v] of Object.entries(ref.state)) {
    if (!state[k]) throw new Error(`missing state ${k}`);
    stateDiff = Math.max(stateDiff, maxAbsDiff(state[k], v));
  }
  return { logits: maxAbsDiff(logits, ref.logits), state: stateDiff };
}
