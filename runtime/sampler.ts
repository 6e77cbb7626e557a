/**
 * Choosing the next token from the model's logits, and knowing when to stop.
 *
 * Semantics follow ChatRWKV's PIPELINE so that settings carry over: penalties are subtracted from the
 * logits first; top-p's cutoff is taken on the untempered softmax and tokens below it (and outside top-k)
 * are dropped; temperature then reshapes what is left (p^(1/T), i.e. softmax of logits/T).
 */
import { UserError } from '../kernels/errors.ts';
import { END_OF_TEXT } from './world-tokenizer.ts';

export interface SamplingOptions {
  /** 0 = greedy (argmax); 1 = the model's distribution; higher flattens it. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (ties at the k-th value are kept); 0 = off. Default 0. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (ChatRWKV uses 0.85); 1 = off. Default 1. */
  topP?: number;
  /** Subtracted once from the logit of every token already generated (ChatRWKV: 0.2). Default 0. */
  presencePenalty?: number;
  /** Subtracted per (decayed) occurrence of a generated token (ChatRWKV: 0.2). Default 0. */
  frequencyPenalty?: number;
  /** Each step, past occurrence counts are multiplied by this, so old tokens are forgiven (ChatRWKV: 0.996). Default 1. */
  penaltyDecay?: number;
  /** Seed for `createRng`; the same seed, model and options give the same text. */
  seed?: number;
  /** Token ids that end generation; end-of-text (0) always does. */
  stopTokens?: number[];
  /** Strings that end generation; the text before the first one is kept, the string itself is not. */
  stopStrings?: string[];
}

/** A source of uniform numbers in [0, 1); `Math.random` is one, `createRng(seed)` a reproducible one. */
export type Rng = () => number;

/** xoshiro128** seeded through splitmix32: small, fast, and a 2^128 period (mulberry32 has only 2^32). */
export function createRng(seed: number): Rng {
  if (!Number.isFinite(seed)) throw new UserError(`sampling: seed must be a finite number, got ${seed}`);
  // Fold in the high bits so that seeds differing only above bit 31 still differ.
  let x = (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
  const splitmix = (): number => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix(), b = splitmix(), c = splitmix(), d = splitmix();
  return () => {
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return r / 2 ** 32;
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Occurrence counts of generated tokens, for the presence and frequency penalties. `sample` records each
 * token it picks; start a new one per reply (ChatRWKV does not count the prompt).
 */
export class TokenHistory {
  readonly counts = new Map<number, number>();

  /** Ages earlier counts by `decay`, then counts `id` with `weight`. */
  record(id: number, decay = 1, weight = 1): void {
    if (decay !== 1) for (const [t, n] of this.counts) this.counts.set(t, n * decay);
    this.counts.set(id, (this.counts.get(id) ?? 0) + weight);
  }

  clear(): void {
    this.counts.clear();
  }
}

/** Rejects options a user could mistype (they come from CLI flags and config files). */
function checkSamplingOptions(opts: SamplingOptions): void {
  const bad = (what: string, v: unknown, want: string): never => {
    throw new UserError(`sampling: ${what} must be ${want}, got ${v}`);
  };
  const { temperature, topK, topP, presencePenalty, frequencyPenalty, penaltyDecay } = opts;
  if (temperature !== undefined && !(temperature >= 0 && Number.isFinite(temperature))) bad('temperature', temperature, '>= 0');
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0)) bad('topK', topK, 'an integer >= 0');
  if (topP !== undefined && !(topP >= 0 && topP <= 1)) bad('topP', topP, 'in [0, 1]');
  if (presencePenalty !== undefined && !Number.isFinite(presencePenalty)) bad('presencePenalty', presencePenalty, 'a number');
  if (frequencyPenalty !== undefined && !Number.isFinite(frequencyPenalty)) bad('frequencyPenalty', frequencyPenalty, 'a number');
  if (penaltyDecay !== undefined && !(penaltyDecay >= 0 && penaltyDecay <= 1)) bad('penaltyDecay', penaltyDecay, 'in [0, 1]');
  for (const s of opts.stopStrings ?? []) if (s === '') bad('a stop string', '""', 'non-empty');
  for (const t of opts.stopTokens ?? []) if (!(Number.isInteger(t) && t >= 0)) bad('a stop token', t, 'a token id');
}

/**
 * Picks the next token. `logits` is not modified. With `history`, penalties are applied from it and the
 * chosen token is recorded in it (aged by `penaltyDecay`).
 */
export function sample(logits: Float32Array, opts: SamplingOptions, rng: Rng, history?: TokenHistory): number {
  checkSamplingOptions(opts);
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  const presence = opts.presencePenalty ?? 0;
  const frequency = opts.frequencyPenalty ?? 0;

  let x = logits;
  if (history && history.counts.size > 0 && (presence !== 0 || frequency !== 0)) {
    x = Float32Array.from(logits);
    for (const [t, n] of history.counts) if (t < x.length) x[t] -= presence + n * frequency;
  }

  const id = temperature === 0 ? argmax(x) : draw(x, temperature, topK, topP, rng);
  history?.record(id, opts.penaltyDecay ?? 1);
  return id;
}

/** The index of the largest logit (the first one on ties; NaN never wins). */
export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best] || !(x[best] === x[best])) best = i;
  return best;
}

// Scratch buffers reused across calls: sampling runs once per generated token, and two fresh 512 KiB
// arrays per token would cost more than the arithmetic.
let weightsBuf = new Float64Array(0);
let selectBuf = new Float64Array(0);

function draw(x: Float32Array, temperature: number, topK: number, topP: number, rng: Rng): number {
  const n = x.length;
  const top = argmax(x);
  const max = x[top];
  if (!Number.isFinite(max)) return top; // all -Infinity (everything banned) or +Infinity: nothing to weigh
  if (weightsBuf.length < n) {
    weightsBuf = new Float64Array(n);
    selectBuf = new Float64Array(n);
  }

  // Untempered softmax, left unnormalised (probability = e[i] / sum), for the cutoffs.
  const e = weightsBuf;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += e[i] = Math.exp(x[i] - max);

  // Tokens with e[i] below `cutoff` are dropped. Both cutoffs come from a selection, O(n), rather than
  // from sorting 65k probabilities every token.
  let cutoff = 0;
  if (topP < 1) {
    // Tokens under (1-topP)/n in probability hold less than 1-topP together, so the nucleus is complete
    // above them: skipping them keeps the selection to the head, usually a few hundred tokens.
    const floor = ((1 - topP) * sum) / n;
    let m = 0;
    for (let i = 0; i < n; i++) if (e[i] >= floor) selectBuf[m++] = e[i];
    cutoff = selectCutoff(selectBuf, m, topP * sum, true);
  }
  if (topK > 0) {
    let m = 0;
    for (let i = 0; i < n; i++) if (e[i] >= cutoff) selectBuf[m++] = e[i];
    if (m > topK) cutoff = selectCutoff(selectBuf, m, topK, false);
  }

  // Temperature on the survivors: p^(1/T) = exp((x - max)/T) up to a constant; at T = 1 that is e itself.
  let total = 0;
  const invT = 1 / temperature;
  for (let i = 0; i < n; i++) {
    const w = e[i] < cutoff ? 0 : temperature === 1 ? e[i] : Math.exp((x[i] - max) * invT);
    e[i] = w;
    total += w;
  }
  let u = rng() * total;
  let last = top;
  for (let i = 0; i < n; i++) {
    if (e[i] === 0) continue;
    last = i;
    u -= e[i];
    if (u < 0) return i;
  }
  return last; // rounding left u a hair above zero
}

/**
 * The value v at which the largest elements of a[0..len), taken from the top, first reach `need`: in count
 * (top-k) or, with `byMass`, in sum (top-p). Every element equal to v is kept, as ChatRWKV's `probs <
 * cutoff` does. Quickselect with a three-way partition; reorders `a`.
 */
function selectCutoff(a: Float64Array, len: number, need: number, byMass: boolean): number {
  let lo = 0;
  let hi = len;
  let last = a[0];
  while (lo < hi) {
    // Median of three keeps sorted or reversed input linear.
    const x = a[lo], y = a[(lo + hi) >> 1], z = a[hi - 1];
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
    // [lo, gt) > pivot, [gt, i) == pivot, [lt, hi) < pivot
    let gt = lo, i = lo, lt = hi;
    let above = 0;
    while (i < lt) {
      const v = a[i];
      if (v > pivot) {
        a[i++] = a[gt];
        a[gt++] = v;
        above += byMass ? v : 1;
      } else if (v < pivot) {
        a[i] = a[--lt];
        a[lt] = v;
      } else i++;
    }
    if (above >= need) {
      hi = gt; // the answer is strictly above the pivot
      continue;
    }
    const withTies = above + (byMass ? pivot * (lt - gt) : lt - gt);
    if (withTies >= need) return pivot;
    need -= withTies;
    last = pivot;
    lo = lt;
  }
  return last; // rounding left `need` unmet: keep everything
}

export interface StopResult {
  /** Text that is now safe to show (never part of a stop string). */
  text: string;
  /** Generation is over: a stop token or stop string was seen. */
  stopped: boolean;
}

/**
 * Watches the generated text for stop tokens and stop strings. A stop string may arrive split over
 * several token pieces, so text that could be the start of one is held back until it is decided.
 */
export class StopMatcher {
  private readonly tokens: Set<number>;
  private readonly strings: string[];
  private pending = '';
  private done = false;

  constructor(opts: Pick<SamplingOptions, 'stopTokens' | 'stopStrings'> = {}) {
    checkSamplingOptions(opts);
    this.tokens = new Set([END_OF_TEXT, ...(opts.stopTokens ?? [])]);
    this.strings = opts.stopStrings ?? [];
  }

  /** Feeds one generated token and its decoded text (from a stream decoder). */
  push(id: number, piece: string): StopResult {
    if (this.done) return { text: '', stopped: true };
    if (this.tokens.has(id)) {
      this.done = true;
      return { text: this.take(this.pending.length), stopped: true };
    }
    this.pending += piece;
    let first = -1;
    for (const s of this.strings) {
      const at = this.pending.indexOf(s);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      this.done = true;
      const text = this.pending.slice(0, first);
      this.pending = '';
      return { text, stopped: true };
    }
    return { text: this.take(this.pending.length - this.heldBack()), stopped: false };
  }

  /** At the end of generation (length limit): the held-back text, which turned out not to be a stop. */
  flush(): string {
    return this.take(this.pending.length);
  }

  /** Length of the longest suffix of `pending` that is a proper prefix of some stop string. */
  private heldBack(): number {
    let keep = 0;
    for (const s of this.strings) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > keep; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    return keep;
  }

  private take(n: number): string {
    const text = this.pending.slice(0, n);
    this.pending = this.pending.slice(n);
    return text;
  }
}
