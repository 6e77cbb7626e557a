/**
 * Sessions under concurrency and after dispose (issue 17, "Runtime"): concurrent generate/prefill calls on
 * one session or on forked sessions of one model give what the same calls one after another give, and
 * every target refuses calls after dispose() promptly (no hang) with one clear UserError.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { load } from '../driver/load.ts';
import { UserError } from '../kernels/errors.ts';
import type { Session } from '../runtime/session.ts';
import { parseWorldVocab, type WorldTokenizer } from '../runtime/world-tokenizer.ts';
import { FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';

// wgsl in Node: SwiftShader's Vulkan driver where the machine has one (skipped otherwise)
process.env.VK_ICD_FILENAMES ??= '/usr/lib/chromium/vk_swiftshader_icd.json';

const model = join(FIXTURES, 'finch-tiny', 'model.safetensors');
const golden = readGolden('finch-tiny');
const toks = [...golden.tokens];

/** A byte tokenizer for the 256-token fixture: id k + 1 is the byte k (as in the World vocabulary). */
const bytes: WorldTokenizer = parseWorldVocab(
  Array.from({ length: 256 }, (_, k) => `${k + 1} b'\\x${k.toString(16).padStart(2, '0')}' 1`).join('\n'));

const opts = (seed: number) => ({ maxTokens: 12, temperature: 1, topP: 1, seed });

async function collect(s: Session, prompt: number[], seed: number): Promise<number[]> {
  const ids: number[] = [];
  for await (const _ of s.generate(prompt, { ...opts(seed), onToken: (id) => ids.push(id) })) void _;
  return ids;
}

const open: Session[] = [];
afterAll(() => { for (const s of open) s.model.dispose(); });

async function session(target: string, threads?: number): Promise<Session> {
  const s = await load(model, { target, threads, vocab: bytes });
  open.push(s);
  return s;
}

describe.each([
  ['plan', undefined],
  ['wasm', 1],
  ['wasm', 2],
] as const)('concurrent calls on %s (threads %s) give the sequential results', (target, threads) => {
  it('two generate() at once on one session', async () => {
    const a = await session(target, threads);
    const seq = [await collect(a, toks.slice(0, 5), 1), await collect(a, toks.slice(5, 9), 2)];
    const b = await session(target, threads);
    const both = await Promise.all([collect(b, toks.slice(0, 5), 1), collect(b, toks.slice(5, 9), 2)]);
    expect(both).toEqual(seq);
  });

  it('two generate() at once on forked sessions of one model, and prefill/decode interleaved', async () => {
    const a = await session(target, threads);
    await a.prefill(toks.slice(0, 3));
    const a2 = await a.fork();
    const seq = [await collect(a, toks.slice(3, 6), 3), await collect(a2, toks.slice(6, 8), 4)];
    const seqLogits = [await a.decode(7), await a2.prefill([9, 10, 11])];

    const b = await session(target, threads);
    await b.prefill(toks.slice(0, 3));
    const b2 = await b.fork();
    const both = await Promise.all([collect(b, toks.slice(3, 6), 3), collect(b2, toks.slice(6, 8), 4)]);
    expect(both).toEqual(seq);
    const bothLogits = await Promise.all([b.decode(7), b2.prefill([9, 10, 11])]);
    // the plan target computes in f64 but its state crosses the interface as f32, so a different number
    // of swaps moves logits by f32 rounding (~1e-7); a race would move them by O(1)
    bothLogits.forEach((l, i) => expect(maxAbsDiff(l, seqLogits[i])).toBeLessThan(1e-6));
  });

  it('a second generate() on a session waits for the first to be abandoned (return) and then runs', async () => {
    const a = await session(target, threads);
    const g = a.generate(toks.slice(0, 4), opts(5));
    await g.next();
    const second = collect(a, [1, 2], 6);
    await g.return(undefined);
    expect((await second).length).toBeGreaterThan(0);
  });
});

describe('token ids are taken as given', () => {
  it.each([
    [1.5, /1\.5 at position 1 is not a token id/],
    [NaN, /NaN at position 1 is not a token id/],
    [Infinity, /Infinity at position 1 is not a token id/],
    [1e300, /token id 1e\+300 is outside the vocabulary \(0\.\.255\)/],
    ['a', /"a" at position 1 is not a token id/],
    [2 ** 32 + 5, /token id 4294967301 is outside the vocabulary \(0\.\.255\)/],
    [2 ** 31, /token id 2147483648 is outside the vocabulary \(0\.\.255\)/],
    [-1, /token id -1 is outside the vocabulary/],
  ])('%s is refused', async (bad, message) => {
    const s = await session('plan');
    const ids = [1, bad as number, 3];
    await expect(s.prefill(ids)).rejects.toThrow(message);
    await expect(s.prefill(ids)).rejects.toBeInstanceOf(UserError);
    await expect(collect(s, ids, 1)).rejects.toThrow(message);
  });
});

const DISPOSED = /^this model was disposed$/;
/** A load-time UserError saying this machine lacks what the target needs. */
const MISSING_HERE = /no .*(adapter|GPU|driver|g\+\+|nvcc|libcuda|koffi)|cannot (find|load)/i;

describe.each([
  ['plan', undefined],
  ['ref', undefined],
  ['wasm', 1],
  ['wasm', 2],
  ['wgsl', undefined],
  ['cuda-sim', undefined],
  ['cuda', undefined],
] as const)('after dispose() on %s (threads %s)', (target, threads) => {
  it('prefill, decode, run and state calls reject promptly with "this model was disposed"', async (ctx) => {
    let s: Session;
    try {
      s = await load(model, { target, threads, vocab: bytes });
    } catch (e) {
      if (e instanceof UserError && MISSING_HERE.test(e.message)) return ctx.skip(`${target} cannot run here: ${e.message}`);
      throw e;
    }
    await s.prefill([1, 2, 3]);
    const queued = s.model.run('decode', Int32Array.from([4]));
    s.model.dispose();
    s.model.dispose(); // twice is harmless
    // a call made before dispose() either finished or was refused: it does not hang
    const q = await promptly(queued.then(() => null));
    if (q) expect((q as Error).message).toMatch(DISPOSED);
    const fork = await s.fork().catch((e) => e);
    expect(fork).toBeInstanceOf(UserError);
    for (const call of [
      () => s.prefill([1, 2, 3]),
      () => s.decode(1),
      () => s.model.run('prefill', Int32Array.from([1, 2])),
      () => s.model.run('decode', Int32Array.from([1])),
      () => s.model.readState(),
      () => s.model.writeState({}),
      () => collect(s, [1], 1),
    ]) {
      const e = await promptly(call());
      expect(e).toBeInstanceOf(UserError);
      expect((e as Error).message).toMatch(DISPOSED);
    }
  }, 300_000); // loading on a software GPU takes a while; the calls after dispose get 5 s each (promptly)
});

/** What `p` rejects with (null if it resolves), failing if it has not settled within 5 s (a hang). */
async function promptly(p: Promise<unknown>): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('still pending after 5 s: a hang')), 5000); });
  try {
    return await Promise.race([p.then(() => null, (e) => e), hang]);
  } finally {
    clearTimeout(timer);
  }
}
