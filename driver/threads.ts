/** The thread counts a load accepts (`--threads`, LoadOptions.threads): its own module, since every CLI command's options read it. */
import { availableParallelism } from 'node:os';
import { UserError } from '../kernels/errors.ts';

/**
 * The most worker threads a load accepts: 4× this machine's cores (at least 8, at most 256). More
 * threads than that only add memory (each has its scratch) and barrier waits; 256 took 2 GB.
 */
export const MAX_THREADS = Math.max(8, Math.min(256, 4 * availableParallelism()));

/** A thread count (`--threads`, LoadOptions.threads): a whole number in 1..MAX_THREADS, or absent. */
export function checkThreads(n: unknown): void {
  if (n === undefined) return;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_THREADS)
    throw new UserError(`threads: expected a whole number in 1..${MAX_THREADS} (4× the ${availableParallelism()} cores here, at least 8), got ${String(n).slice(0, 40)}`);
}
