/**
 * Bad command-line values (issue 17, "CLI arguments"): every closed-set option is checked when parsed,
 * thread counts and token ids are taken as written or refused, a broken model description and absurd
 * random-model sizes are refused. Most cases run the commands in-process (commander's parse, the
 * action up to its first check); a few run `rwkvc` itself: one line on stderr, no stack trace, exit 2.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommanderError, type Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { benchCommand } from '../cli/bench.ts';
import { compileCommand } from '../cli/compile.ts';
import { logitsCommand, parseTokens } from '../cli/logits.ts';
import { randomModelCommand } from '../cli/random-model.ts';
import { runCommand } from '../cli/text.ts';
import { buildGraph } from '../driver/dsl.ts';
import { checkThreads, MAX_THREADS } from '../driver/threads.ts';
import { UserError } from '../kernels/errors.ts';
import { PRESETS } from '../runtime/presets.ts';
import { FIXTURES } from './helpers/golden.ts';

const tmp = mkdtempSync(join(tmpdir(), 'rwkvc-args-'));
const fixture = join(FIXTURES, 'finch-tiny', 'model.safetensors');
const out = join(tmp, 'o.safetensors');

/** What a command refuses `args` with: commander's message (exit 2 in the CLI) or a UserError's; fails if it is accepted. */
async function refusal(cmd: Command, args: string[]): Promise<string> {
  let err = '';
  cmd.exitOverride().configureOutput({ writeErr: (s) => (err += s), writeOut: () => {} });
  try {
    await cmd.parseAsync(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return (err || e.message).trim();
    if (e instanceof UserError) return e.message;
    throw e;
  }
  throw new Error(`accepted: ${args.join(' ')}`);
}

describe('closed sets are checked when parsed', () => {
  const withWeights: [string, () => Command, string[]][] = [
    ['logits (plan)', logitsCommand, ['--model', fixture, '--tokens', '1,2', '--target', 'plan', '--out', out]],
    ['logits (ref)', logitsCommand, ['--model', fixture, '--tokens', '1,2', '--target', 'ref', '--out', out]],
    ['logits (wasm)', logitsCommand, ['--model', fixture, '--tokens', '1,2', '--target', 'wasm', '--out', out]],
    ['run', runCommand, ['--model', fixture, '--vocab', join(tmp, 'none.txt'), '--prompt', 'hi']],
    ['bench', benchCommand, ['--preset', 'finch-tiny']],
    ['compile', compileCommand, ['examples/finch.ts', '--config', 'finch-tiny', '-o', join(tmp, 'c')]],
  ];
  it.each(withWeights)('--weights nonsense: %s', async (_, cmd, args) => {
    expect(await refusal(cmd(), [...args, '--weights', 'nonsense'])).toMatch(/'--weights <dtype>' argument 'nonsense' is invalid\. Allowed choices are f32, bf16, f16, int8/);
  });
  it.each([
    ['logits --mode', logitsCommand, ['--model', fixture, '--tokens', '1', '--out', out, '--mode', 'chunks:0'], /'--mode <mode>' argument 'chunks:0' is invalid/],
    ['bench --preset', benchCommand, ['--preset', 'nope'], /'--preset <name>' argument 'nope' is invalid\. Allowed choices are finch-tiny/],
    ['random-model --preset', randomModelCommand, ['--preset', 'nope', '-o', join(tmp, 'r.safetensors')], /'--preset <name>' argument 'nope' is invalid/],
    ['random-model --dtype', randomModelCommand, ['--preset', 'finch-tiny', '--dtype', 'q4', '-o', join(tmp, 'r.safetensors')], /'--dtype <dtype>' argument 'q4' is invalid/],
    ['compile --emit', compileCommand, ['examples/finch.ts', '--config', 'finch-tiny', '--emit', 'nope'], /'--emit <what>' argument 'nope' is invalid/],
    ['logits --target', logitsCommand, ['--model', fixture, '--tokens', '1', '--out', out, '--target', 'nope'], /'--target <target>' argument 'nope' is invalid/],
  ] as [string, () => Command, string[], RegExp][])('%s', async (_, cmd, args, message) => expect(await refusal(cmd(), args)).toMatch(message));
});

describe(`--threads: a whole number in 1..${MAX_THREADS}`, () => {
  it('the cap is 4× the cores (at least 8, at most 256)', () => {
    expect(MAX_THREADS).toBe(Math.max(8, Math.min(256, 4 * availableParallelism())));
  });
  const bad = ['0', '-5', '1.5', 'NaN', '3e6', '3000000', String(MAX_THREADS + 1), ...(MAX_THREADS < 256 ? ['256'] : []), ''];
  it.each(bad)('logits and bench --threads %j', async (v) => {
    expect(await refusal(logitsCommand(), ['--model', fixture, '--tokens', '1', '--target', 'wasm', '--threads', v, '--out', out])).toMatch(/'--threads <n>' argument .* is invalid/);
    expect(await refusal(benchCommand(), ['--preset', 'finch-tiny', '--threads', v])).toMatch(/'--threads <n>' argument .* is invalid/);
  });
  it('run (its own parser) and the load API are held to the same cap', async () => {
    expect(await refusal(runCommand(), ['--model', fixture, '--vocab', join(tmp, 'none.txt'), '--prompt', 'hi', '--threads', '3000000']))
      .toMatch(/threads: expected a whole number in 1\.\.\d+.*got 3000000|'--threads <n>' argument/);
    for (const n of [0, -5, 1.5, NaN, Infinity, 3e6, MAX_THREADS + 1, '2'])
      expect(() => checkThreads(n), String(n)).toThrow(UserError);
    expect(() => checkThreads(MAX_THREADS)).not.toThrow();
    expect(() => checkThreads(undefined)).not.toThrow();
  });
});

describe('--tokens: ids as written', () => {
  it.each([
    ['1.5', /'1\.5' is not a token id/],
    ['NaN', /'NaN' is not a token id/],
    ['Infinity', /'Infinity' is not a token id/],
    ['1e300', /'1e300' is not a token id/],
    ['a', /'a' is not a token id/],
    ['-1', /'-1' is not a token id/],
    ['0x10', /'0x10' is not a token id/],
    [String(2 ** 32 + 5), /token id 4294967301 is outside the vocabulary \(0\.\.255\)/],
    [String(2 ** 31), /token id 2147483648 is outside the vocabulary \(0\.\.255\)/],
    ['256', /token id 256 is outside the vocabulary \(0\.\.255\)/],
    ['9'.repeat(5000), /token id 9{40}… is outside the vocabulary/],
    ['', /'' is not a token id/],
  ])('1,%s', (bad, message) => {
    expect(() => parseTokens(`1,${bad}`, 256)).toThrow(message);
    expect(() => parseTokens(`1,${bad}`, 256)).toThrow(UserError);
  });
  it('leading zeros and spaces are the id itself', () => {
    expect([...parseTokens(' 007, 255', 256)]).toEqual([7, 255]);
  });
});

describe('a broken model description is one line', () => {
  const dsl = (name: string, src: string) => { const p = join(tmp, name); writeFileSync(p, src); return p; };
  it.each([
    ['throws', 'export default () => { throw new Error("boom\\nat somewhere"); }', /throws\.mts: the model description threw: boom$/],
    ['throws a non-error', 'export default () => { throw 7; }', /the model description threw: 7/],
    ['returns a number', 'export default () => 42', /returned a number, not a graph/],
    ['returns null (async)', 'export default async () => null', /returned null, not a graph/],
    ['returns an empty graph', 'export default () => ({ nodes: [], outputs: [] })', /returned an object, not a graph/],
    ['returns dangling references', 'export default () => ({ nodes: [{ id: 0, op: "add", inputs: [{ id: 5, out: 0 }], types: [] }], outputs: [{ name: "logits", ref: { id: 0, out: 0 } }] })', /malformed|verification failed/],
    ['returns an unknown op', 'export default () => ({ nodes: [{ id: 0, op: "zzz", inputs: [], types: [], attrs: {} }], outputs: [{ name: "logits", ref: { id: 0, out: 0 } }] })', /unknown op 'zzz'/],
    ['exports no function', 'export default 3', /the default export must be a function/],
  ])('%s', async (name, src, message) => {
    const file = dsl(`${name.replace(/\W+/g, '-')}.mts`, src);
    const e = await buildGraph(file, PRESETS['finch-tiny']).then(() => null, (x) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).toMatch(message);
  });
});

describe('random-model: absurd sizes are refused before anything is written', () => {
  const o = join(tmp, 'rm.safetensors');
  it.each([
    [['--layers', '1000000000', '--embd', '128', '--vocab', '10'], /'--layers <n>' argument '1000000000' is invalid\. expected 1\.\.256/],
    [['--layers', '1e9', '--embd', '128', '--vocab', '10'], /'--layers <n>' argument '1e9' is invalid/],
    [['--layers', '2', '--embd', '100', '--vocab', '10'], /--embd 100 is not a multiple of the head size 64/],
    [['--layers', '2', '--embd', '128', '--vocab', '0'], /'--vocab <n>' argument '0' is invalid/],
    [['--layers', '2', '--embd', '128', '--vocab', '10', '--head-size', '0'], /'--head-size <n>' argument '0' is invalid/],
    [['--layers', '2', '--embd', '128', '--vocab', '10', '--seed', '99999999999999999999'], /'--seed <n>' argument .* is invalid/],
    [['--layers', '2', '--embd', '8', '--head-size', '8', '--vocab', '10'], /gives no ffn width/],
    [['--layers', '256', '--embd', '16384', '--vocab', '1048576'], /emb\.weight would have 17179869184 values/],
    [['--layers', '256', '--embd', '16384', '--vocab', '65536', '--dtype', 'f32'], /GiB in f32 \(at most 128 GiB\)/],
  ])('%j', async (args, message) => {
    expect(await refusal(randomModelCommand(), [...args, '-o', o])).toMatch(message);
    expect(existsSync(o)).toBe(false);
  });
});

describe('rwkvc itself: one line on stderr, no stack trace, exit code 2', () => {
  const rwkvc = (...args: string[]) => spawnSync('node', ['bin/rwkvc.js', ...args], { encoding: 'utf8', timeout: 120_000 });
  const dslThrows = join(tmp, 'cli-throws.mts');
  writeFileSync(dslThrows, 'export default () => { throw new Error("boom"); }');
  it.each([
    [['logits', '--model', fixture, '--tokens', '1,2', '--target', 'plan', '--weights', 'nonsense', '--out', out], /'--weights <dtype>' argument 'nonsense' is invalid/],
    [['logits', '--model', fixture, '--tokens', '1,2', '--threads', 'NaN', '--out', out], /'--threads <n>' argument 'NaN' is invalid/],
    [['logits', '--model', fixture, '--tokens', `1,${2 ** 31}`, '--target', 'plan', '--out', out], /^rwkvc: --tokens: token id 2147483648 is outside the vocabulary \(0\.\.255\)$/],
    [['compile', dslThrows, '--config', 'finch-tiny', '-o', join(tmp, 'c')], /^rwkvc: .*cli-throws\.mts: the model description threw: boom$/],
    [['random-model', '--layers', '256', '--embd', '16384', '--vocab', '1048576', '-o', join(tmp, 'big.safetensors')], /^rwkvc: random-model: emb\.weight would have/],
  ])('%j', (args, message) => {
    const r = rwkvc(...args);
    expect(r.status, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });
});
