/**
 * Issue 16's rough edges in the CLI: one escape rule for text on the command line (`run --prompt`,
 * `tokenize`), detokenize's final newline, `logits` (default target wasm, a one-line summary), option
 * aliases and suggestions, config .json files in snake_case / Hugging Face names, distinct `--emit ir` /
 * `--emit plan` output, the vocabulary path for tests, and .ci/run's last line.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommanderError, type Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { unescapeText } from '../cli/args.ts';
import { chatCommand, chatStops } from '../cli/chat.ts';
import { compileCommand } from '../cli/compile.ts';
import { parseConfigJson, resolveConfig } from '../cli/config-arg.ts';
import { logitsCommand } from '../cli/logits.ts';
import { commandText, runCommand } from '../cli/text.ts';
import { UserError } from '../kernels/errors.ts';
import { openCheckpoint } from '../runtime/checkpoint/index.ts';
import { PRESETS } from '../runtime/presets.ts';
import { FIXTURES } from './helpers/golden.ts';
import { vocabPaths } from './helpers/vocab.ts';

const tmp = mkdtempSync(join(tmpdir(), 'rwkvc-edges-'));
const rwkvc = (...args: string[]) => spawnSync('node', ['bin/rwkvc.js', ...args], { encoding: 'utf8' });
const fixture = join(FIXTURES, 'finch-tiny', 'model.safetensors');
const write = (name: string, text: string) => { const p = join(tmp, name); writeFileSync(p, text); return p; };
/** A vocabulary of the 256 single bytes (World ids 1..256), enough for the fixture model's 256 rows below id 256. */
const byteVocab = write('bytes.txt', Array.from({ length: 256 }, (_, b) => `${b + 1} b'\\x${b.toString(16).padStart(2, '0')}' 1`).join('\n') + '\n');

/** Parse `args` with `make()`'s options in-process, the action replaced: its options, or what commander printed. */
async function parse(make: () => Command, args: string[]): Promise<{ opts?: Record<string, unknown>; err?: string }> {
  const cmd = make();
  let err = '';
  cmd.exitOverride().configureOutput({ writeErr: (s) => (err += s), writeOut: () => {} }).action(() => {});
  try {
    await cmd.parseAsync(args, { from: 'user' });
    return { opts: cmd.opts() };
  } catch (e) {
    if (e instanceof CommanderError) return { err: err || e.message };
    throw e;
  }
}

describe('text on the command line: one escape rule', () => {
  it('unescapeText reads \\n, \\t and \\\\, and leaves other backslashes', () => {
    expect(unescapeText('a\\nb\\tc\\\\d')).toBe('a\nb\tc\\d');
    expect(unescapeText('\\\\n')).toBe('\\n'); // an escaped backslash, then a plain n
    expect(unescapeText('C:\\x\\q')).toBe('C:\\x\\q');
  });

  it('tokenize reads the escapes like run --prompt; --raw and standard input take text literally', () => {
    const ids = (...a: string[]) => { const r = rwkvc('tokenize', '--vocab', byteVocab, ...a); expect(r.status, r.stderr).toBe(0); return JSON.parse(r.stdout); };
    expect(ids('a\\nb')).toEqual([98, 11, 99]); // a, newline, b
    expect(ids('--raw', 'a\\nb')).toEqual([98, 93, 111, 99]); // a, backslash, n, b
    const stdin = spawnSync('node', ['bin/rwkvc.js', 'tokenize', '--vocab', byteVocab], { input: 'a\\nb', encoding: 'utf8' });
    expect(JSON.parse(stdin.stdout)).toEqual([98, 93, 111, 99]);
  });

  it('run --prompt "a\\nb" feeds a newline (the same state as a real newline), --raw the two characters', () => {
    const state = (name: string, ...a: string[]) => {
      const out = join(tmp, `${name}.state`);
      const r = rwkvc('run', '--model', fixture, '--vocab', byteVocab, '--target', 'ref', '--temp', '0', '-n', '1', '--state-out', out, ...a);
      expect(r.status, r.stderr).toBe(0);
      return readFileSync(out);
    };
    const escaped = state('escaped', '--prompt', 'a\\nb'), real = state('real', '--prompt', 'a\nb'), raw = state('raw', '--raw', '--prompt', 'a\\nb');
    expect(escaped.equals(real)).toBe(true);
    expect(raw.equals(real)).toBe(false);
  });

  it('run\'s --stop strings follow the same rule', async () => {
    const { opts } = await parse(runCommand, ['--model', 'm', '--vocab', 'v', '--prompt', 'Q:\\n', '--stop', '\\n\\nUser:', 'x\\ty']);
    expect(commandText(opts as never)).toEqual({ prompt: 'Q:\n', stop: ['\n\nUser:', 'x\ty'] });
    expect(commandText({ ...(opts as { prompt: string; stop: string[] }), raw: true })).toEqual({ prompt: 'Q:\\n', stop: ['\\n\\nUser:', 'x\\ty'] });
  });

  it('detokenize: the exact text when piped, a final newline on a terminal', () => {
    const piped = rwkvc('detokenize', '--vocab', byteVocab, '105,106');
    expect(piped.stdout).toBe('hi');
    const script = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));
    if (!script) return; // util-linux's script gives the command a pseudo-terminal; without it only the pipe is checked
    const tty = spawnSync(script, ['-qec', `node bin/rwkvc.js detokenize --vocab ${byteVocab} 105,106`, '/dev/null'], { encoding: 'utf8' });
    expect(tty.status, tty.stderr).toBe(0);
    expect(tty.stdout.replace(/\r/g, '')).toBe('hi\n');
  });
});

describe('rwkvc logits', () => {
  it('defaults to --target wasm, as the README says', async () => {
    expect((await parse(logitsCommand, ['--model', fixture, '--tokens', '1', '--out', 'x'])).opts!.target).toBe('wasm');
    expect((await parse(runCommand, ['--model', fixture, '--vocab', 'v', '--prompt', 'x'])).opts!.target).toBe('wasm');
  });

  it('prints one line: the shape, the last row\'s top 5 (id:logit) and the file it wrote', () => {
    const out = join(tmp, 'l.safetensors');
    const r = rwkvc('logits', '--model', fixture, '--tokens', '5,17,3', '--target', 'plan', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const logits = openCheckpoint(out).readF32('logits').subarray(2 * 256);
    const top = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 5);
    expect(lines[0]).toMatch(/^logits \[3, 256\] on plan \(seq\); last row top-5 /);
    expect(lines[0]).toContain(top.map((i) => `${i}:${logits[i]!.toFixed(4)}`).join(' '));
    expect(lines[0]).toMatch(new RegExp(`→ ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });
});

describe('option aliases and suggestions', () => {
  it('run takes --temp for --temperature and -n for --max-tokens', async () => {
    const { opts } = await parse(runCommand, ['--model', 'm', '--vocab', 'v', '--prompt', 'x', '--temp', '0', '-n', '7']);
    expect(opts).toMatchObject({ temperature: 0, maxTokens: 7 });
    expect((await parse(runCommand, ['--model', 'm', '--vocab', 'v', '--prompt', 'x', '--temp', 'hot'])).err).toMatch(/'--temp <value>' argument 'hot' is invalid\. expected a number/);
    // chat declares the same sampling flags (samplingOptions), its own defaults kept
    expect((await parse(chatCommand, ['--model', 'm', '--vocab', 'v', '--temp', '0', '-n', '7'])).opts).toMatchObject({ temperature: 0, maxTokens: 7, topP: 0.85 });
    expect((await parse(chatCommand, ['--model', 'm', '--vocab', 'v'])).opts).toMatchObject({ temperature: 1, maxTokens: 200 });
    // and run's escape rule for --stop, --raw for literal text
    expect(chatStops((await parse(chatCommand, ['--model', 'm', '--vocab', 'v', '--stop', 'a\\nb', 'User:'])).opts!)).toEqual(['a\nb', 'User:']);
    expect(chatStops((await parse(chatCommand, ['--model', 'm', '--vocab', 'v', '--raw', '--stop', 'a\\nb'])).opts!)).toEqual(['a\\nb']);
  });

  it('an unknown abbreviation suggests the option it abbreviates, not --help', async () => {
    const base = ['--model', 'm', '--vocab', 'v', '--prompt', 'x'];
    expect((await parse(runCommand, [...base, '--tempr', '0'])).err).toMatch(/unknown option '--tempr'\n\(Did you mean --temperature\?\)/);
    expect((await parse(runCommand, [...base, '--max', '3'])).err).toMatch(/\(Did you mean --max-tokens\?\)/);
    expect((await parse(runCommand, [...base, '--top', '3'])).err).toMatch(/\(Did you mean one of --top-p, --top-k\?\)/);
    expect((await parse(logitsCommand, ['--model', 'm', '--tokens', '1', '--out', 'o', '--targe', 'x'])).err).toMatch(/Did you mean --target\?/);
  });
});

describe('--config: a config .json', () => {
  const tiny = PRESETS['finch-tiny']!;
  it('takes the fixtures\' golden.json (snake_case, with its metadata keys) as the fixture shape', async () => {
    expect(await resolveConfig(join(FIXTURES, 'finch-tiny', 'golden.json'))).toEqual(tiny);
  });

  it('takes camelCase, Hugging Face names, and fills the optional fields with RWKV-6\'s defaults', () => {
    expect(parseConfigJson({ ...tiny }, 'c.json')).toEqual(tiny);
    const hf = { architectures: ['Rwkv6ForCausalLM'], model_type: 'rwkv6', num_hidden_layers: 24, hidden_size: 2048, attention_hidden_size: 2048,
      head_size: 64, intermediate_size: null, vocab_size: 65536, layer_norm_epsilon: 1e-5, torch_dtype: 'bfloat16' };
    expect(parseConfigJson(hf, 'config.json')).toEqual(PRESETS['finch-1b6']);
    expect(parseConfigJson({ n_layer: 32, n_embd: 4096, vocab_size: 65536 }, 'c.json')).toEqual(PRESETS['finch-7b']);
  });

  it('refuses an unknown key, a missing one, a bad value and two names that disagree, in one line naming the key', () => {
    const msg = (j: unknown) => { try { parseConfigJson(j, 'c.json'); } catch (e) { expect(e).toBeInstanceOf(UserError); return (e as Error).message; } throw new Error('accepted'); };
    expect(msg({ n_layer: 2, n_embd: 128, vocab_size: 256, n_layers: 3 })).toMatch(/^c\.json: unknown key 'n_layers' \(accepted: n_layer, n_embd, head_size, n_head, dim_ffn, vocab_size, lora_mix, lora_decay, dim_att,/);
    expect(msg({ n_layer: 2, n_embd: 128 })).toMatch(/^c\.json: 'vocab_size' is missing/);
    expect(msg({ n_layer: 2.5, n_embd: 128, vocab_size: 256 })).toMatch(/'n_layer' must be a positive integer, got 2\.5/);
    expect(msg({ n_layer: 2, n_embd: 128, hidden_size: 256, vocab_size: 256 })).toMatch(/'n_embd' is 128 but 'hidden_size' is 256/);
    expect(msg({ n_layer: 2, n_embd: 128, vocab_size: 256, dim_att: 64 })).toMatch(/dim_att 64 must equal n_embd 128/);
    expect(msg({ n_layer: 2, n_embd: 100, vocab_size: 256 })).toMatch(/n_embd 100 is not a multiple of head_size 64/);
    expect(msg([1])).toMatch(/expected a JSON object/);
    for (const m of [msg({ zz: 1 }), msg({ n_layer: 2 })]) expect(m).not.toMatch(/\n/);
  });
});

describe('compile --emit', () => {
  it('ir writes and prints the IR after the passes (graph.ir), plan writes plan.json: different files', () => {
    const ir = join(tmp, 'ir'), plan = join(tmp, 'plan');
    const a = rwkvc('compile', 'examples/finch.ts', '--config', 'finch-tiny', '--emit', 'ir', '-o', ir);
    const b = rwkvc('compile', 'examples/finch.ts', '--config', join(FIXTURES, 'finch-tiny', 'golden.json'), '--emit', 'plan', '-o', plan);
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr).toBe(0);
    expect(existsSync(join(ir, 'graph.ir')) && !existsSync(join(ir, 'plan.json'))).toBe(true);
    expect(existsSync(join(plan, 'plan.json')) && !existsSync(join(plan, 'graph.ir'))).toBe(true);
    expect(a.stdout).toBe(readFileSync(join(ir, 'graph.ir'), 'utf8'));
    expect(a.stdout).toMatch(/^graph finch \{/);
    expect(JSON.parse(readFileSync(join(plan, 'plan.json'), 'utf8'))).toMatchObject({ format: 'rwkvc-plan', config: PRESETS['finch-tiny'] });
    expect(b.stderr).toMatch(/decode: +\d+ kernels per layer/);
  });

  it('its help promises what it writes', async () => {
    let help = '';
    const cmd = compileCommand().configureOutput({ writeOut: (s) => (help += s) }).exitOverride();
    await cmd.parseAsync(['--help'], { from: 'user' }).catch(() => {});
    expect(help).toMatch(/<out>\/plan\.json/);
    expect(help).toMatch(/--emit ir/);
    expect(help.replace(/\s+/g, " ")).toMatch(/n_layer, n_embd, vocab_size \(required\)/);
  });
});

describe('the test vocabulary and .ci/run\'s last line', () => {
  it('RWKVC_VOCAB points the vocabulary tests at a file; the golden texts are looked for beside it', () => {
    expect(vocabPaths({ RWKVC_VOCAB: '/data/v.txt' })).toEqual({ vocab: '/data/v.txt', golden: '/data/tokenizer-golden.json' });
    expect(vocabPaths({ RWKVC_VOCAB: '/data/v.txt', RWKVC_TOKENIZER_GOLDEN: '/g.json' }).golden).toBe('/g.json');
    expect(vocabPaths({}).vocab).toMatch(/shared\/fixtures\/rwkv_vocab_v20230424\.txt$/);
  });

  it('counts passed, failed (a broken file counts once) and skipped (pending + todo) from the vitest report', () => {
    const report = write('vitest.json', JSON.stringify({
      numPassedTests: 7, numFailedTests: 1, numPendingTests: 10, numTodoTests: 2,
      testResults: [
        { status: 'failed', assertionResults: [{ status: 'failed' }] },
        { status: 'failed', assertionResults: [] },
        { status: 'passed', assertionResults: [{ status: 'passed' }] },
      ],
    }));
    const r = spawnSync('node', ['.ci/counts.cjs', report], { encoding: 'utf8' });
    expect(r.stdout).toBe('7 passed, 2 failed, 12 skipped\n');
    expect(readFileSync('.ci/run', 'utf8')).toMatch(/node \.ci\/counts\.cjs "\$report"/);
  });
});
