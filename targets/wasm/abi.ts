/**
 * What the generated module and the runtime agree on, with no compiler attached: the control block at
 * the start of linear memory and the names of the exports. Shared by codegen, runtime and workers.
 */

/** Byte offsets of i32 fields in the control block (the first CONTROL_BYTES of memory). */
export const CTL = {
  /** Generation counter: bumped by thread 0 to start every other thread on a program call. */
  GO: 0,
  PROG: 4,
  T: 8,
  QUIT: 12,
  /** Barrier: arrivals in this round, round number, sleeping waiters, abort flag (a thread trapped). */
  BAR_COUNT: 16,
  BAR_GEN: 20,
  BAR_WAITERS: 24,
  ABORT: 28,
} as const;
export const CONTROL_BYTES = 256;

/** Output channels per weight panel: matrices are stored as [ceil(O/16)][I][16]. */
export const PANEL = 16;

export const PROGRAM_ID = { decode: 0, prefill: 1, batch: 2 } as const;

/**
 * Exports of a compiled module:
 *   init(threadScratch: i32)                 once per instance (thread), before any run
 *   run(prog: i32, T: i32, tid: i32, nth: i32) every thread calls it for one program call
 */
export interface ModuleExports {
  init(scratch: number): void;
  run(prog: number, T: number, tid: number, nth: number): void;
}
