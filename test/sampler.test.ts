import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { UserError } from '../kernels/errors.ts';
import { StopMatcher, TokenHistory, argmax, createRng, sample, type SamplingOptions } from '../runtime/sampler.ts';

/** Logits whose softmax is exactly `probs`. */
const fromProbs = (probs: number[]) => Float32Array.from(probs, (p) => Math.log(p));

/** How often each token is drawn in `n` samples. */
function histogram(logits: Float32Array, opts: SamplingOptions, n = 20000, seed = 1): number[] {
  const rng = createRng(seed);
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sample(logits, opts, rng)]++;
  return counts;
}

describe('rng', () => {
  it('is reproducible per seed, differs across seeds, and stays in [0, 1)', () => {
    const a = createRng(42), b = createRng(42), c = createRng(43);
    const xa = Array.from({ length: 1000 }, a);
    expect(Array.from({ length: 1000 }, b)).toEqual(xa);
    expect(Array.from({ length: 1000 }, c)).not.toEqual(xa);
    expect(xa.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xa.reduce((s, x) => s + x, 0) / xa.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
    expect(createRng(2 ** 40)()).not.toBe(createRng(0)());
  });
});

describe('sample', () => {
  const logits = Float32Array.from([0.1, 2.5, -1, 2.4, 0]);

  it('greedy (temperature 0) is argmax', () => {
    expect(sample(logits, { temperature: 0 }, createRng(1))).toBe(1);
    expect(sample(logits, { topK: 1 }, createRng(1))).toBe(1);
    expect(argmax(Float32Array.from([1, 3, 3, 2]))).toBe(1); // first of equals
    expect(argmax(Float32Array.from([NaN, 1, 0]))).toBe(1);
  });

  it('same seed gives the same sequence; another seed another one', () => {
    const run = (seed: number) => {
      const rng = createRng(seed);
      const h = new TokenHistory();
      const opts = { temperature: 1.2, topP: 0.9, presencePenalty: 0.2, frequencyPenalty: 0.2, penaltyDecay: 0.996 };
      return Array.from({ length: 200 }, () => sample(logits, opts, rng, h));
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it('plain sampling follows the softmax', () => {
    const probs = [0.5, 0.3, 0.15, 0.05];
    const counts = histogram(fromProbs(probs), {}, 40000);
    counts.forEach((c, i) => expect(Math.abs(c / 40000 - probs[i])).toBeLessThan(0.01));
  });

  it('top-k restricts the support to the k most likely', () => {
    const probs = [0.05, 0.3, 0.1, 0.25, 0.2, 0.1];
    const counts = histogram(fromProbs(probs), { topK: 3 });
    expect(counts[0] + counts[2] + counts[5]).toBe(0);
    // Renormalised over {1, 3, 4}: 0.3/0.75 = 0.4.
    expect(Math.abs(counts[1] / 20000 - 0.4)).toBeLessThan(0.015);
  });

  it('top-p keeps the smallest set reaching p', () => {
    const probs = [0.05, 0.4, 0.1, 0.3, 0.15];
    // 0.4 + 0.3 = 0.7 < 0.75, so 0.15 is needed too; 0.1 and 0.05 are dropped.
    const counts = histogram(fromProbs(probs), { topP: 0.75 });
    expect(counts[0] + counts[2]).toBe(0);
    expect(counts[1] > 0 && counts[3] > 0 && counts[4] > 0).toBe(true);
    expect(new Set(histogram(fromProbs(probs), { topP: 0 }).flatMap((c, i) => (c ? [i] : [])))).toEqual(new Set([1]));
    // On a realistic 65536-token vocabulary (where the pre-filter matters) the support is the nucleus too.
    const big = new Float32Array(65536).fill(-10);
    big[100] = 5;
    big[200] = 4.5;
    big[300] = 4;
    const c = histogram(big, { topP: 0.7, temperature: 1.5 }, 300);
    expect(c[100] + c[200]).toBe(300);
    expect(c[100] > 0 && c[200] > 0).toBe(true);
  });

  it('property: the support is exactly what sorting would keep (ChatRWKV semantics, ties kept)', () => {
    // A reference by sorting: top-p's cutoff on the untempered softmax, then the k-th largest.
    const expectedSupport = (l: Float32Array, topP: number, topK: number) => {
      const max = Math.max(...l);
      const e = Array.from(l, (v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      const p = e.map((v) => v / sum);
      // Compared unnormalised: dividing by the sum could merge values that differ in the last bit.
      const desc = [...e].sort((a, b) => b - a);
      let cut = 0;
      if (topP < 1) {
        let acc = 0;
        for (const v of desc) {
          acc += v;
          cut = v;
          if (acc >= topP * sum) break;
        }
      }
      if (topK > 0 && topK < desc.length) cut = Math.max(cut, desc[topK - 1]);
      return { p, keep: e.map((v) => v >= cut) };
    };
    const logitsArb = fc.array(fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double({ min: -8, max: 8, noNaN: true })), {
      minLength: 1,
      maxLength: 40,
    });
    fc.assert(
      fc.property(logitsArb, fc.double({ min: 0.05, max: 0.99, noNaN: true }), fc.integer({ min: 0, max: 8 }), (ls, topP, topK) => {
        const l = Float32Array.from(ls);
        const { p, keep } = expectedSupport(l, topP, topK);
        const counts = histogram(l, { topP, topK }, 300, 5);
        const keptMass = p.reduce((s, v, i) => s + (keep[i] ? v : 0), 0);
        return counts.every((c, i) => (keep[i] ? c > 0 || p[i] / keptMass < 0.1 : c === 0));
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('temperature sharpens and flattens', () => {
    const l = fromProbs([0.6, 0.4]);
    const cold = histogram(l, { temperature: 0.25 });
    const hot = histogram(l, { temperature: 10 });
    // p^(1/T) normalised: 0.6^4 / (0.6^4 + 0.4^4) ≈ 0.835; at T=10 close to 0.51.
    expect(Math.abs(cold[0] / 20000 - 0.835)).toBeLessThan(0.015);
    expect(Math.abs(hot[0] / 20000 - 0.51)).toBeLessThan(0.015);
  });

  it('presence and frequency penalties lower exactly the logits of seen tokens', () => {
    const h = new TokenHistory();
    h.record(1);
    h.record(1);
    h.record(3);
    // Token 1 (seen twice): 2.5 - (0.5 + 2*1) = 0; token 3: 2.4 - (0.5 + 1) = 0.9; token 0 (unseen) 0.1.
    const opts = { temperature: 0, presencePenalty: 0.5, frequencyPenalty: 1 };
    expect(sample(logits, opts, createRng(1), h)).toBe(3);
    expect(logits[1]).toBe(2.5); // the caller's logits are untouched
    // The chosen token was recorded: token 3 now seen twice, 2.4 - 2.5 = -0.1 < 0.1.
    expect(h.counts.get(3)).toBe(2);
    expect(sample(logits, opts, createRng(1), h)).toBe(0);
  });

  it('penalty decay ages old occurrences', () => {
    const h = new TokenHistory();
    h.record(5);
    h.record(6, 0.5);
    h.record(7, 0.5);
    expect(h.counts.get(5)).toBeCloseTo(0.25);
    expect(h.counts.get(6)).toBeCloseTo(0.5);
    expect(h.counts.get(7)).toBe(1);
  });

  it('rejects bad options as user errors', () => {
    for (const bad of [{ temperature: -1 }, { topK: 1.5 }, { topP: 2 }, { penaltyDecay: 3 }, { stopStrings: [''] }]) {
      expect(() => sample(logits, bad, createRng(1)), JSON.stringify(bad)).toThrow(UserError);
    }
  });
});

describe('StopMatcher', () => {
  /** Feeds pieces with ids 10, 11, ... and returns the emitted text and whether it stopped. */
  function feed(m: StopMatcher, pieces: string[], ids?: number[]) {
    let text = '';
    for (let i = 0; i < pieces.length; i++) {
      const r = m.push(ids?.[i] ?? 10 + i, pieces[i]);
      text += r.text;
      if (r.stopped) return { text, stopped: true };
    }
    return { text: text + m.flush(), stopped: false };
  }

  it('finds a stop string split over several pieces and returns the text before it', () => {
    const m = new StopMatcher({ stopStrings: ['\n\nUser:'] });
    expect(feed(m, ['Hello', ' there.', '\n', '\nUs', 'er', ': more'])).toEqual({ text: 'Hello there.', stopped: true });
  });

  it('holds back a possible start and releases it when it turns out not to be a stop', () => {
    const m = new StopMatcher({ stopStrings: ['</s>'] });
    expect(m.push(1, 'a <')).toEqual({ text: 'a ', stopped: false });
    expect(m.push(2, '/')).toEqual({ text: '', stopped: false });
    expect(m.push(3, 'b>')).toEqual({ text: '</b>', stopped: false });
    expect(m.push(4, 'x</')).toEqual({ text: 'x', stopped: false });
    expect(m.flush()).toBe('</');
  });

  it('stops at the earliest of several stop strings, even inside one piece', () => {
    const m = new StopMatcher({ stopStrings: ['END', 'STOP'] });
    expect(feed(m, ['abc STOP def END'])).toEqual({ text: 'abc ', stopped: true });
  });

  it('stops on stop tokens and always on end-of-text, without emitting their text', () => {
    expect(feed(new StopMatcher({ stopTokens: [261] }), ['a', 'b', '\n\n'], [1, 2, 261])).toEqual({ text: 'ab', stopped: true });
    expect(feed(new StopMatcher(), ['a', ''], [1, 0])).toEqual({ text: 'a', stopped: true });
    // Held-back text is released when a stop token ends generation.
    expect(feed(new StopMatcher({ stopStrings: ['##'], stopTokens: [9] }), ['x#', 'y'], [1, 9])).toEqual({ text: 'x#', stopped: true });
  });

  it('passes everything through without stop strings', () => {
    expect(feed(new StopMatcher(), ['a', 'b', 'c'])).toEqual({ text: 'abc', stopped: false });
  });
});
