/**
 * Option value parsers shared by every command. Throwing commander's InvalidArgumentError makes it
 * print "option '--x <n>' argument 'abc' is invalid. …" and exit 2, naming the flag.
 */
import { InvalidArgumentError, Option } from 'commander';
import { TARGETS } from '../targets/registry.ts';
import type { Target } from '../targets/target.ts';

export function num(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
}

/** A whole number ≥ 0 (seeds, sizes). */
export function int(v: string): number {
  if (!/^\d+$/.test(v.trim())) throw new InvalidArgumentError('expected a whole number.');
  return Number(v);
}

/** A whole number ≥ 1 (threads, token counts, chunk sizes). */
export function count(v: string): number {
  const n = int(v);
  if (n < 1) throw new InvalidArgumentError('expected at least 1.');
  return n;
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
