/**
 * What every compiled target's runtime does the same way around its kernels: calls one at a time, the
 * token checks, and the layout of a batch call's per-sequence state (sequence b is row b of each batch
 * state buffer).
 */
import { UserError } from '../kernels/errors.ts';
import type { KernelPlan } from '../kernels/plan.ts';
import type { StateTensors } from './backend.ts';

export type ProgramName = 'decode' | 'prefill' | 'batch';

/** A queue: each call starts when the previous one has settled (they share memory and buffers). */
export function callQueue(): <R>(f: () => R | Promise<R>) => Promise<R> {
  let tail: Promise<unknown> = Promise.resolve();
  return (f) => {
    const r = tail.then(f);
    tail = r.catch(() => undefined);
    return r;
  };
}

/** Rows of the embedding table: the token ids a plan accepts (any, when no kernel reads them). */
export function vocabOf(plan: KernelPlan): number {
  const emb = plan.decode.kernels.find((k) => k.kind === 'embed');
  if (emb?.kind !== 'embed') return Infinity;
  return plan.weights.find((w) => w.name === emb.table)?.shape[0] ?? plan.config.vocabSize;
}

/** The program exists, T fits it, and every id is in the vocabulary. */
export function checkCall(plan: KernelPlan, program: ProgramName, tokens: Int32Array, vocab: number): void {
  const p = plan[program];
  if (!p) throw new UserError(`this plan was compiled without a ${program} program`);
  const T = tokens.length;
  if (!(T >= 1 && T <= p.maxT)) throw new UserError(`the ${program} program takes 1..${p.maxT} tokens, got ${T}`);
  for (const t of tokens) if (!(t >= 0 && t < vocab)) throw new UserError(`token id ${t} is outside the vocabulary (0..${vocab - 1})`);
}

/** A batch state buffer: its name and values per sequence. */
export interface BatchStateSlot { name: string; per: number }

/**
 * Sequence b's state into row b of each batch state buffer (`write(slot, b, values)`; a state a
 * sequence lacks is zeros), checked against the tokens.
 */
export function packBatchStates<S extends BatchStateSlot>(tokens: Int32Array, states: StateTensors[], slots: S[],
  write: (slot: S, b: number, v: Float32Array) => void): void {
  if (states.length !== tokens.length) throw new UserError(`runBatch: ${tokens.length} tokens but ${states.length} states`);
  for (const slot of slots)
    states.forEach((s, b) => {
      const v = s[slot.name];
      if (v && v.length !== slot.per) throw new UserError(`runBatch: state ${slot.name} of sequence ${b}: expected ${slot.per} values, got ${v.length}`);
      write(slot, b, v ?? new Float32Array(slot.per));
    });
}

/** Each sequence's state back out of the batch buffers (`read(slot, b)` copies row b). */
export function unpackBatchStates<S extends BatchStateSlot>(B: number, slots: S[], read: (slot: S, b: number) => Float32Array): StateTensors[] {
  return Array.from({ length: B }, (_, b) => Object.fromEntries(slots.map((s) => [s.name, read(s, b)])) as StateTensors);
}

/** A state write: known names only, each of its full length. */
export function checkStateWrite(name: string, expected: number, v: Float32Array): void {
  if (v.length !== expected) throw new UserError(`state ${name}: expected ${expected} values, got ${v.length}`);
}
