/**
 * Option value parsers shared by every command. Throwing commander's InvalidArgumentError makes it
 * print "option '--x <n>' argument 'abc' is invalid. …" and exit 2, naming the flag.
 */
import { InvalidArgumentError } from 'commander';

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
