/**
 * What a team and its threads agree on, whichever host runs them (Node workers in team.ts, Web Workers
 * in team-web.ts): the per-thread data and the team's interface.
 */
import { CTL } from './abi.ts';
import type { ThreadData } from './thread-main.ts';

/** Spins before sleeping: a decode step is ~10 ms, so a waiting worker wakes without a syscall. */
const WORKER_SPIN = 200000;

/** What every thread needs besides its module and memory (see thread-main.ts). */
export const threadData = (tid: number, nth: number, scratch: number, gen: number): Omit<ThreadData, 'module' | 'memory'> => ({
  tid, nth, scratch, gen, spin: WORKER_SPIN,
  ctl: { GO: CTL.GO / 4, PROG: CTL.PROG / 4, T: CTL.T / 4, QUIT: CTL.QUIT / 4, ABORT: CTL.ABORT / 4, BAR_GEN: CTL.BAR_GEN / 4 },
});

export interface Team {
  readonly threads: number;
  /** Whether thread 0 is the calling thread, so `run` can be called (false: Web Workers, use runAsync). */
  readonly sync: boolean;
  /** Run program `prog` on T tokens on every thread; returns when all threads are done. Only when `sync`. */
  run(prog: number, T: number): void;
  /** The same, resolving when all threads are done (any team). One call at a time. */
  runAsync(prog: number, T: number): Promise<void>;
  dispose(): Promise<void>;
}
