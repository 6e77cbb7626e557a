/**
 * runtime/generation.ts, the one reply loop Session.generate, `rwkvc chat` and `rwkvc serve` share: its
 * edge cases on made-up logits (no model), then Session's use of it on the fixture model (which tokens
 * are fed back, maxTokens 0).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { load } from '../driver/load.ts';
import { Generation, type Step } from '../runtime/generation.ts';
import { argmax } from '../runtime/sampler.ts';
import { parseWorldVocab } from '../runtime/world-tokenizer.ts';
import { FIXTURES, maxAbsDiff } from './helpers/golden.ts';

/** The 256 single bytes as World ids 1..256 (byte b is id b + 1). */
const tok = parseWorldVocab(Array.from({ length: 256 }, (_, b) => `${b + 1} b'\\x${b.toString(16).padStart(2, '0')}' 1`).join('\n') + '\n');
const V = 300; // more rows than the vocabulary: ids 257..299 are padding
const id = (c: string) => c.charCodeAt(0) + 1;
/** Logits that make greedy sampling pick `t`. */
const pick = (t: number) => { const l = new Float32Array(V); l[t] = 1; return l; };
/** Steps a greedy generation through `ids`, as far as it goes. */
function run(ids: number[], o: ConstructorParameters<typeof Generation>[1] = {}, withVocab = true): Step[] {
  const g = new Generation(withVocab ? tok : undefined, { temperature: 0, ...o });
  const out: Step[] = [];
  for (const x of ids) {
    if (g.finish) break;
    out.push(g.step(pick(x)));
  }
  return out;
}

describe('Generation', () => {
  it('maxTokens 0 (or NaN) is finished before the first step; a step then throws', () => {
    for (const maxTokens of [0, -1, NaN]) {
      const g = new Generation(tok, { maxTokens });
      expect(g.finish).toBe('length');
      expect(() => g.step(pick(1))).toThrow(/after the reply finished/);
    }
  });

  it('end-of-text (id 0) and stopTokens end the reply with what was held back', () => {
    const a = run([id('a'), id('\n'), 0, id('b')], { stopStrings: ['\n\n'] });
    expect(a.map((s) => [s.text, s.finish])).toEqual([['a', null], ['', null], ['\n', 'stop']]);
    const b = run([id('a'), id('x'), id('b')], { stopTokens: [id('x')] });
    expect(b.map((s) => s.finish)).toEqual([null, 'stop']);
  });

  it('a stop string split over tokens is held back and never shown; the length limit flushes what was held', () => {
    const s = run([id('a'), id('U'), id('s'), id('e'), id('r'), id('z')], { stopStrings: ['User'] });
    expect(s.map((x) => x.text)).toEqual(['a', '', '', '', '']);
    expect(s.at(-1)!.finish).toBe('stop');
    const l = run([id('a'), id('U'), id('s')], { stopStrings: ['User'], maxTokens: 3 });
    expect(l.map((x) => [x.text, x.finish])).toEqual([['a', null], ['', null], ['Us', 'length']]);
  });

  it('a character split over tokens comes out whole; a padded id shows as nothing; onToken sees every token', () => {
    const seen: number[] = [];
    const [e1, e2] = [...Buffer.from('é')].map((b) => b + 1);
    const s = run([e1!, e2!, 280, 0], { onToken: (t) => seen.push(t) });
    expect(s.map((x) => x.text)).toEqual(['', 'é', '', '']);
    expect(seen).toEqual([e1, e2, 280, 0]);
    expect(new Generation(tok, { temperature: 0, maxTokens: 1 }).step(pick(e1!)).text).toBe('\uFFFD'); // cut at the limit
  });

  it('without a tokenizer: ids only, stop tokens still end it', () => {
    const s = run([5, 6, 0], {}, false);
    expect(s.map((x) => [x.id, x.text, x.finish])).toEqual([[5, '', null], [6, '', null], [0, '', 'stop']]);
  });
});

describe('Session.generateIds through Generation', () => {
  const model = join(FIXTURES, 'finch-tiny', 'model.safetensors');
  const SWAP = 1e-6; // state through forks and swaps crosses as f32 (as in session.test.ts)

  it('feeds back every token but a stop; maxTokens 0 only feeds the prompt', async () => {
    const s = await load(model, { target: 'plan' });
    const ref = await s.fork();
    const prompt = [1, 2, 3];
    // by hand: greedy from the prompt, each token fed
    const afterPrompt = Float32Array.from(await ref.prefill(prompt));
    let l: Float32Array = afterPrompt;
    const want: number[] = [];
    for (let i = 0; i < 4; i++) { want.push(argmax(l)); l = await ref.decode(want.at(-1)!); }

    const got: number[] = [];
    for await (const t of s.generateIds(prompt, { maxTokens: 0 })) got.push(t);
    expect(got).toEqual([]);
    expect(maxAbsDiff(s.logits!, afterPrompt)).toBeLessThan(SWAP);

    await s.reset();
    for await (const t of s.generateIds(prompt, { maxTokens: 4, temperature: 0 })) got.push(t);
    expect(got).toEqual(want);
    expect(maxAbsDiff(s.logits!, l)).toBeLessThan(SWAP); // the last token was fed too

    // a stop token is neither yielded nor fed: stop at the first greedy token not seen before it
    const k = want.findIndex((t, i) => i > 0 && !want.slice(0, i).includes(t));
    expect(k).toBeGreaterThan(0);
    await s.reset();
    const upTo: number[] = [];
    for await (const t of s.generateIds(prompt, { maxTokens: 4, temperature: 0, stopTokens: [want[k]!] })) upTo.push(t);
    expect(upTo).toEqual(want.slice(0, k));
    await ref.reset();
    expect(maxAbsDiff(s.logits!, await ref.prefill([...prompt, ...want.slice(0, k)]))).toBeLessThan(SWAP);
    s.model.dispose();
  });
});
