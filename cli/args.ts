/**
 * Option value parsers shared by every command. Throwing commander's InvalidArgumentError makes it
 * print "option '--x <n>' argument 'abc' is invalid. …" and exit 2, naming the flag.
 */
import { availableParallelism } from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { MAX_THREADS } from '../driver/threads.ts';
import { TARGETS } from '../targets/registry.ts';
import type { Target } from '../targets/target.ts';

export function num(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
}

/** A whole number ≥ 0 (seeds, sizes), at most 2^53 − 1 (beyond, it would not be itself). */
export function int(v: string): number {
  if (!/^\d+$/.test(v.trim())) throw new InvalidArgumentError('expected a whole number.');
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('too large.');
  return n;
}

/** A whole number in lo..hi. */
export function intIn(lo: number, hi: number): (v: string) => number {
  return (v) => {
    const n = int(v);
    if (n < lo || n > hi) throw new InvalidArgumentError(`expected ${lo}..${hi}.`);
    return n;
  };
}

/** `--threads <n>`: a whole number in 1..MAX_THREADS. */
export function threads(v: string): number {
  if (!/^\d+$/.test(v.trim())) throw new InvalidArgumentError(`expected a whole number of threads, 1..${MAX_THREADS}.`);
  const n = Number(v);
  if (n < 1 || n > MAX_THREADS) throw new InvalidArgumentError(`expected 1..${MAX_THREADS} threads (at most 4× the ${availableParallelism()} cores here, at least 8).`);
  return n;
}

/** The weight storage formats. */
const WEIGHT_FORMATS = ['f32', 'bf16', 'f16', 'int8', 'q4_0', 'q4_1'] as const;

/** `--weights <dtype>`, one of WEIGHT_FORMATS, checked when parsed. */
export function weightsOption(what = 'weight storage', fallback = 'f32'): Option {
  return new Option('--weights <dtype>', what).choices(WEIGHT_FORMATS).default(fallback);
}

/** Commander's "Allowed choices are …" for an option whose values are a closed set known only at run time. */
export function oneOf(values: readonly string[]): (v: string) => string {
  return (v) => {
    if (!values.includes(v)) throw new InvalidArgumentError(`Allowed choices are ${values.join(', ')}.`);
    return v;
  };
}

/** A whole number ≥ 1 (token counts, chunk sizes). */
export function count(v: string): number {
  const n = int(v);
  if (n < 1) throw new InvalidArgumentError('expected at least 1.');
  return n;
}

/**
 * The sampling flags `run` and `chat` share, `--temp` and `-n` included; their values are the fields of
 * GenerateOptions. `tokens` and `seed` say what the count and the seed are per (a generation, a reply…).
 */
export function samplingOptions(cmd: Command, d: { maxTokens: number; tokens: string; seed: string }): Command {
  cmd.option('-n, --max-tokens <n>', d.tokens, count, d.maxTokens)
    .option('--temperature <t>', 'sampling temperature (0 = greedy; also --temp)', num, 1)
    .option('--top-p <p>', 'nucleus sampling', num, 0.85)
    .option('--top-k <k>', 'top-k sampling (0 = off)', int, 0)
    .option('--presence-penalty <x>', 'presence penalty', num, 0)
    .option('--frequency-penalty <x>', 'frequency penalty', num, 0)
    .option('--seed <n>', d.seed, int);
  addAlias(cmd, '--temp', '--temperature');
  return cmd;
}

/**
 * `--target <name>` from the registry: the help lists what users pick (hidden simulators are accepted by
 * name), `filter` narrows the choices (e.g. bench: compiled targets only).
 */
export function targetOption(fallback: string, what = 'what runs it', filter: (t: Target) => boolean = () => true): Option {
  const names = TARGETS.filter((t) => !t.hidden && filter(t)).map((t) => t.name);
  return new Option('--target <target>', `${what}: ${names.join(', ')}`)
    .argParser((v: string) => {
      const t = TARGETS.find((x) => x.name === v);
      if (!t || !filter(t)) throw new InvalidArgumentError(`Allowed choices are ${names.join(', ')}.`);
      return v;
    })
    .default(fallback);
}

/**
 * The one rule for text given on the command line (`run --prompt`, `tokenize TEXT`): the escapes `\n`
 * (newline), `\t` (tab) and `\\` (a backslash) are interpreted, so a prompt can hold a newline without
 * shell quoting tricks; any other backslash stays as written. `--raw` takes the text literally, and text
 * read from standard input is always literal.
 */
export function unescapeText(s: string): string {
  return s.replace(/\\([nt\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
}

/** The help line every command that takes text shows for `--raw`. */
export const RAW_HELP = 'take the text literally (by default \\n, \\t and \\\\ in it are a newline, a tab and a backslash)';

/**
 * `alias` (hidden from the help) sets the same value as `target`, e.g. `--temp` for `--temperature`: an
 * unknown `--temp` made commander suggest `--help`, its nearest spelling. The alias parses its value with
 * the same parser, so a bad value is reported naming the flag the user typed.
 */
function addAlias(cmd: Command, alias: string, target: string): void {
  const opt = cmd.options.find((o) => o.long === target);
  if (!opt) throw new Error(`addAlias: ${cmd.name()} has no option ${target}`);
  const a = new Option(`${alias}${opt.required ? ' <value>' : opt.optional ? ' [value]' : ''}`).hideHelp();
  if (opt.parseArg) a.argParser(opt.parseArg);
  cmd.addOption(a);
  cmd.on(`option:${a.name()}`, () => cmd.setOptionValueWithSource(opt.attributeName(), cmd.getOptionValue(a.attributeName()), 'cli'));
}

/**
 * A better "Did you mean …?" for an unknown option: commander suggests by edit distance only, so an
 * abbreviation (`--temp` for `--temperature`, `--max` for `--max-tokens`) got its nearest short flag,
 * `--help`. Options the unknown one abbreviates (or shares a 4-letter start with) come first; otherwise
 * commander's own suggestion. Commander has no public hook for this, so its `unknownOption` is wrapped.
 */
export function suggestOptions(cmd: Command): Command {
  const c = cmd as unknown as { unknownOption(flag: string): void };
  const fallback = c.unknownOption.bind(cmd);
  c.unknownOption = (flag: string) => {
    const w = flag.replace(/^--?/, '').split('=')[0]!;
    const longs = cmd.createHelp().visibleOptions(cmd).map((o) => o.long).filter((l): l is string => !!l && l !== '--help');
    const near = w.length >= 2 ? longs.filter((l) => {
      const n = l.slice(2);
      return n.startsWith(w) || (w.length >= 4 && n.slice(0, 4) === w.slice(0, 4));
    }) : [];
    if (!near.length) return fallback(flag);
    cmd.error(`error: unknown option '${flag}'\n(Did you mean ${near.length > 1 ? `one of ${near.join(', ')}` : near[0]}?)`, { code: 'commander.unknownOption' });
  };
  return cmd;
}
