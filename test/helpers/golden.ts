/** The official numbers of a fixture, and the comparison every backend test makes against them. */
import { join } from 'node:path';
import { readGoldenFile, type Golden } from '../../runtime/golden.ts';
import type { StateTensors } from '../../targets/backend.ts';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
export const FIXTURE_NAMES = ['finch-tiny', 'finch-tiny-bf16'] as const;
export const FORMATS = ['model.pth', 'model.safetensors', 'model-hf.safetensors'] as const;

export type { Golden };

export const readGolden = (fixture: string): Golden => readGoldenFile(join(FIXTURES, fixture, 'golden.safetensors'));

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

/** Each position's highest logit in a and b agree, as a fraction of the positions ([T, V] row-major). */
export function top1Agreement(a: Float32Array, b: Float32Array, V: number): number {
  const argmax = (x: Float32Array, t: number) => { let m = 0; for (let i = 1; i < V; i++) if (x[t * V + i] > x[t * V + m]) m = i; return m; };
  let same = 0;
  for (let t = 0; t < a.length / V; t++) if (argmax(a, t) === argmax(b, t)) same++;
  return same / (a.length / V);
}

/**
 * What reduced weight storage may cost on the fixtures, against the f32 run of the same target (the
 * README's Accuracy table): max |Δlogit| relative to the largest |logit|, and top-1 agreement. A
 * weight's rounding error is 2^-9 of it in bf16, 2^-12 in f16, up to 1/254 of its 32-block's largest in
 * int8; through 2 layers these grow to ~1% (bf16), ~0.1% (f16) and ~3% (int8) of the logit range on
 * the fixture models. The bounds leave ~1.5× room.
 * 4-bit: q4_0 rounds to d/2 = max|w|/16 of the block, q4_1 to d/2 = (max − min)/30 ≤ max|w|/15: a step
 * 127/8 ≈ 16× int8's (the weights' measured relative RMS error on the fixtures: int8 0.54%, q4_0 8.6%,
 * q4_1 7.8%, the same ratio), so int8's ~3% becomes ~50% of the logit range at worst; measured 18–35%.
 * Top-1 on these 2-layer, 256-token-vocabulary models with nearly flat logits (max |logit| ≈ 5): measured
 * 65–82%; asserted ≥ 50%, where a broken kernel gives chance (1/256).
 */
export const REDUCED_FORMAT_BOUNDS: Record<'bf16' | 'f16' | 'int8' | 'q4_0' | 'q4_1', { rel: number; top1: number }> = {
  bf16: { rel: 0.02, top1: 0.9 }, f16: { rel: 0.002, top1: 0.95 }, int8: { rel: 0.05, top1: 0.9 },
  q4_0: { rel: 0.5, top1: 0.5 }, q4_1: { rel: 0.5, top1: 0.5 },
};

/** A state of the same tensors, all zeros. */
export const zeroState = (s: StateTensors): StateTensors =>
  Object.fromEntries(Object.entries(s).map(([k, v]) => [k, new Float32Array(v.length)]));
