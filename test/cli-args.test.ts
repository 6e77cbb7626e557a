/**
 * Bad command-line values (issue 17, "CLI arguments"): every closed-set option is checked when parsed,
 * thread counts and token ids are taken as written or refused, a broken model description and absurd
 * random-model sizes are refused; each case is one line on stderr, no stack trace, exit code 2.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_THREADS } from '../driver/load.ts';
import { FIXTURES } from './helpers/golden.ts';

const tmp = mkdtempSync(join(tmpdir(), 'rwkvc-args-'));
const rwkvc = (...args: string[]) => spawnSync('node', ['bin/rwkvc.js', ...args], { encoding: 'utf8', timeout: 60_000 });
const fixture = join(FIXTURES, 'finch-tiny', 'model.safetensors');
const out = join(tmp, 'o.safetensors');

/** One line, exit 2, no stack trace, matching `message`. */
function refused(r: ReturnType<typeof rwkvc>, message: RegExp): void {
  expect(r.status, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(lines[0]).toMatch(message);
}

describe('closed sets are checked when parsed', () => {
  const withWeights: [string, string[]][] = [
    ['logits (plan)', ['logits', '--model', fixture, '--tokens', '1,2', '--target', 'plan', '--out', out]],
    ['logits (ref)', ['logits', '--model', fixture, '--tokens', '1,2', '--target', 'ref', '--out', out]],
    ['logits (wasm)', ['logits', '--model', fixture, '--tokens', '1,2', '--target', 'wasm', '--out', out]],
    ['run', ['run', '--model', fixture, '--vocab', join(tmp, 'none.txt'), '--prompt', 'hi']],
    ['bench', ['bench', '--preset', 'finch-tiny']],
    ['compile', ['compile', 'examples/finch.ts', '--config', 'finch-tiny', '-o', join(tmp, 'c')]],
  ];
  it.each(withWeights)('--weights nonsense: %s', (_, args) => {
    refused(rwkvc(...args, '--weights', 'nonsense'), /'--weights <dtype>' argument 'nonsense' is invalid\. Allowed choices are f32, bf16, f16, int8/);
  });
  it.each([
    ['logits --mode', ['logits', '--model', fixture, '--tokens', '1', '--out', out, '--mode', 'chunks:0'], /'--mode <mode>' argument 'chunks:0' is invalid/],
    ['bench --preset', ['bench', '--preset', 'nope'], /'--preset <name>' argument 'nope' is invalid\. Allowed choices are finch-tiny/],
    ['random-model --preset', ['random-model', '--preset', 'nope', '-o', join(tmp, 'r.safetensors')], /'--preset <name>' argument 'nope' is invalid/],
    ['random-model --dtype', ['random-model', '--preset', 'finch-tiny', '--dtype', 'q4', '-o', join(tmp, 'r.safetensors')], /'--dtype <dtype>' argument 'q4' is invalid/],
    ['compile --emit', ['compile', 'examples/finch.ts', '--config', 'finch-tiny', '--emit', 'nope'], /'--emit <what>' argument 'nope' is invalid/],
    ['logits --target', ['logits', '--model', fixture, '--tokens', '1', '--out', out, '--target', 'nope'], /'--target <target>' argument 'nope' is invalid/],
  ] as [string, string[], RegExp][])('%s', (_, args, message) => refused(rwkvc(...args), message));
});

describe(`--threads: a whole number in 1..${MAX_THREADS}`, () => {
  it('the cap is 4× the cores (at least 8, at most 256)', () => {
    expect(MAX_THREADS).toBe(Math.max(8, Math.min(256, 4 * availableParallelism())));
  });
  const bad = ['0', '-5', '1.5', 'NaN', '3e6', '3000000', String(MAX_THREADS + 1), ...(MAX_THREADS < 256 ? ['256'] : []), ''];
  it.each(bad)('logits --threads %j', (v) => {
    refused(rwkvc('logits', '--model', fixture, '--tokens', '1', '--target', 'wasm', '--threads', v, '--out', out), /'--threads <n>' argument .* is invalid/);
  });
  it.each(['0', '3000000'])('bench --threads %s', (v) => refused(rwkvc('bench', '--preset', 'finch-tiny', '--threads', v), /'--threads <n>' argument/));
  it('run (its own parser) and the load API are held to the same cap', () => {
    refused(rwkvc('run', '--model', fixture, '--vocab', join(tmp, 'none.txt'), '--prompt', 'hi', '--threads', '3000000'),
      /threads: expected a whole number in 1\.\.\d+.*got 3000000|'--threads <n>' argument/);
  });
  it('the cap itself is accepted', () => {
    const r = rwkvc('logits', '--model', fixture, '--tokens', '1,2', '--target', 'wasm', '--threads', '2', '--out', out);
    expect(r.status, r.stderr).toBe(0);
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
    const r = rwkvc('logits', '--model', fixture, '--tokens', `1,${bad}`, '--target', 'plan', '--out', join(tmp, 'tok.safetensors'));
    refused(r, message);
    expect(existsSync(join(tmp, 'tok.safetensors'))).toBe(false);
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
  ])('%s', (name, src, message) => {
    const file = dsl(`${name.replace(/\W+/g, '-')}.mts`, src);
    refused(rwkvc('logits', '--model', fixture, '--tokens', '1,2', '--target', 'plan', '--dsl', file, '--out', out), message);
    refused(rwkvc('compile', file, '--config', 'finch-tiny', '-o', join(tmp, 'c')), message);
  });
});

describe('random-model: absurd sizes are one line', () => {
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
  ])('%j', (args, message) => {
    refused(rwkvc('random-model', ...args, '-o', o), message);
    expect(existsSync(o)).toBe(false);
  });
});
