/**
 * The body of every worker thread of a WASM team (team.ts): instantiate the module on the shared
 * memory, then run each program call announced on the control block's GO counter. `d.report` (the
 * browser's thread 0) posts `{ done }` after each call.
 *
 * It must stay self-contained (no imports, no outer names): Node's worker_threads evaluate its source
 * text (`threadMain.toString()`), and a browser's module worker (team-worker.ts) imports it, so no
 * page needs a CSP that allows eval.
 */
export interface ThreadData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  tid: number;
  nth: number;
  scratch: number;
  /** GO's value when the team started. */
  gen: number;
  report?: boolean;
  /** i32 indices of the control block words (abi.ts CTL / 4). */
  ctl: { GO: number; PROG: number; T: number; QUIT: number; ABORT: number; BAR_GEN: number };
  /** Polls of GO before sleeping in Atomics.wait. */
  spin: number;
}

export function threadMain(d: ThreadData, post: (m: unknown) => void): void {
  const inst = new WebAssembly.Instance(d.module, { env: { memory: d.memory, mark() {} } });
  const ex = inst.exports as { init(s: number): void; run(prog: number, T: number, tid: number, nth: number): void };
  ex.init(d.scratch);
  const i32 = new Int32Array(d.memory.buffer);
  const c = d.ctl;
  let seen = d.gen;
  post({ ready: true });
  for (;;) {
    for (let s = 0; s < d.spin && Atomics.load(i32, c.GO) === seen; s++);
    while (Atomics.load(i32, c.GO) === seen) Atomics.wait(i32, c.GO, seen, 1000);
    seen = Atomics.load(i32, c.GO);
    if (Atomics.load(i32, c.QUIT)) return;
    try {
      ex.run(Atomics.load(i32, c.PROG), Atomics.load(i32, c.T), d.tid, d.nth);
      if (d.report) post({ done: seen });
    } catch (e) {
      Atomics.store(i32, c.ABORT, 1);
      Atomics.notify(i32, c.BAR_GEN);
      post({ error: String((e as Error)?.stack ?? e) });
    }
  }
}
