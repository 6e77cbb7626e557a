/**
 * Seeded property tests of the command line's value parsers (issue 17's acceptance: CLI arguments): any
 * string is either taken as a valid value or refused with one short line (commander's InvalidArgumentError,
 * which the CLI prints and exits 2 on, or a UserError) — never another error, never a coerced value.
 * FUZZ_RUNS / FUZZ_SEED as in checkpoint-fuzz.test.ts.
 */
import { InvalidArgumentError } from 'commander';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { count, int, num, oneOf, threads } from '../cli/args.ts';
import { parseTokens } from '../cli/logits.ts';
import { MAX_THREADS } from '../driver/threads.ts';
import { UserError } from '../kernels/errors.ts';
import { parseMode } from '../runtime/run-tokens.ts';

const runs = Number(process.env.FUZZ_RUNS ?? 300);
const seed = Number(process.env.FUZZ_SEED ?? 17);

/** Strings users and scripts produce: numbers in every spelling, separators, huge and odd text. */
const value = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.double().map(String),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.integer({ min: -5, max: 600 }).map(String),
  fc.constantFrom('', ' ', 'NaN', 'Infinity', '-0', '1e300', '0x10', '1.5', '2147483648', '4294967301', '1,2', ' 3 ', '\n', 'step', 'seq', 'chunks:0', 'chunks:4', 'chunks:-1'),
  fc.string({ minLength: 5000, maxLength: 20000 }),
);

/** `parse(v)` either returns a value `valid` accepts, or refuses in one line of at most 1000 characters. */
function check<T>(parse: (v: string) => T, valid: (x: T, v: string) => boolean) {
  fc.assert(fc.property(value, (v) => {
    let x: T;
    try {
      x = parse(v);
    } catch (e) {
      if (!(e instanceof InvalidArgumentError || e instanceof UserError)) throw e;
      const msg = (e as Error).message;
      return !msg.includes('\n') && msg.length <= 1000;
    }
    return valid(x, v);
  }), { numRuns: runs, seed });
}

describe('CLI value parsers, any string', () => {
  it('--threads: a whole number 1..MAX_THREADS written as one', () =>
    check(threads, (n, v) => Number.isInteger(n) && n >= 1 && n <= MAX_THREADS && String(n) === v.trim().replace(/^0+(?=\d)/, '')));
  it('counts and whole numbers are what was written', () => {
    check(count, (n, v) => Number.isSafeInteger(n) && n >= 1 && n === Number(v));
    check(int, (n, v) => Number.isSafeInteger(n) && n >= 0 && n === Number(v));
  });
  it('numbers are finite', () => check(num, (n) => Number.isFinite(n)));
  it('closed sets take their members only', () => check(oneOf(['f32', 'bf16', 'f16', 'int8']), (x, v) => x === v && ['f32', 'bf16', 'f16', 'int8'].includes(v)));
  it('--tokens: ids 0..V−1 exactly as written', () =>
    check((v) => parseTokens(v, 256), (ids, v) => ids.length === v.split(',').length && v.split(',').every((x, i) => Number(x.trim()) === ids[i] && ids[i] < 256)));
  it('--mode: step, seq or chunks:N with N ≥ 1', () =>
    check(parseMode, (m, v) => (m.kind === 'chunks' ? m.size >= 1 && v === `chunks:${v.slice(7)}` : v === m.kind)));
});
