/**
 * What every compiled target's runtime does the same way around its kernels: calls one at a time, the
 * token checks, and the layout of a batch call's per-sequence state (sequence b is row b of each batch
 * state buffer).
 */
import { UserError } from '../kernels/errors.ts';
import type { KernelPlan } from '../kernels/plan.ts';
import type { StateTensors } from './backend.ts';

export type ProgramName = 'decode' | 'prefill' | 'batch';

/**
 * A queue: each call starts when the previous one has settled (they share memory and buffers). With
 * `life`, a call that starts after the model was disposed rejects instead of running.
 */
export function callQueue(life?: Lifetime): <R>(f: () => R | Promise<R>) => Promise<R> {
  let tail: Promise<unknown> = Promise.resolve();
  return (f) => {
    // a call queued before dispose() starts after it: refuse it then too
    const r = tail.then(() => { life?.check(); return f(); });
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

/** What every call on a disposed model rejects with. */
export const DISPOSED = 'this model was disposed';

/** A model's lifetime: `check()` throws once `end()` has been called. */
export interface Lifetime {
  readonly disposed: boolean;
  /** Throws UserError(DISPOSED) after end(). */
  check(): void;
  /** Marks it disposed; true the first time only (so a dispose releases once). */
  end(): boolean;
}

export function lifetime(): Lifetime {
  let disposed = false;
  return {
    get disposed() { return disposed; },
    check() { if (disposed) throw new UserError(DISPOSED); },
    end() { const first = !disposed; disposed = true; return first; },
  };
}

/** Asynchronous calls of a model that must reject once it is disposed; `runSync` throws. */
const GUARDED_ASYNC = ['run', 'runBatch', 'readState', 'writeState', 'readBuffer'] as const;

/**
 * Every target's dispose() goes through here: afterwards each call rejects promptly with
 * UserError("this model was disposed") instead of touching freed memory, a destroyed device or a
 * stopped thread team (which would hang in Atomics.wait), and dispose() itself releases only once.
 * Pass the same `life` to callQueue so that calls queued before the dispose are refused too.
 * Changes `model` in place and returns it.
 */
export function guardDisposed<M extends { dispose(): void }>(model: M, life: Lifetime = lifetime()): M {
  const m = model as unknown as Record<string, unknown>;
  for (const name of GUARDED_ASYNC) {
    const f = m[name];
    if (typeof f !== 'function') continue;
    m[name] = (...args: unknown[]) => {
      try { life.check(); } catch (e) { return Promise.reject(e); }
      return (f as (...a: unknown[]) => unknown).apply(model, args);
    };
  }
  const sync = m.runSync;
  if (typeof sync === 'function')
    m.runSync = (...args: unknown[]) => { life.check(); return (sync as (...a: unknown[]) => unknown).apply(model, args); };
  const release = model.dispose;
  m.dispose = () => { if (life.end()) release.call(model); };
  return model;
}
