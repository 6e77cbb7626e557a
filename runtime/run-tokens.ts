/**
 * Feeding a token sequence through a target in one of the three modes the reference defines:
 * step (one token per call), seq (as many as a call takes), chunks:N (N per call, state carried).
 * All three must give the same logits and state.
 */
import type { TargetModel } from '../targets/backend.ts';
import { clip, UserError } from '../kernels/errors.ts';

export type Mode = { kind: 'step' } | { kind: 'seq' } | { kind: 'chunks'; size: number };

export function parseMode(s: string): Mode {
  if (s === 'step' || s === 'seq') return { kind: s };
  const m = /^chunks:(\d+)$/.exec(s);
  if (m && Number(m[1]) > 0) return { kind: 'chunks', size: Number(m[1]) };
  throw new UserError(`--mode: expected step, seq or chunks:N (N > 0), got '${clip(s, 40)}'`);
}

/** Run all tokens; returns the logits of every position, [T, V] row-major. */
export async function runTokens(model: TargetModel, tokens: Int32Array, mode: Mode, vocab: number): Promise<Float32Array> {
  const logits = new Float32Array(tokens.length * vocab);
  const size = mode.kind === 'step' ? 1 : Math.min(mode.kind === 'chunks' ? mode.size : Infinity, model.maxTokens);
  for (let t = 0; t < tokens.length; t += size) {
    const chunk = tokens.subarray(t, Math.min(t + size, tokens.length));
    const out = await model.run(chunk.length === 1 && mode.kind === 'step' ? 'decode' : 'prefill', chunk);
    if (out.length !== chunk.length * vocab)
      throw new Error(`${model.target}: expected logits for all ${chunk.length} positions, got ${out.length / vocab} rows`);
    logits.set(out, t * vocab);
  }
  return logits;
}
