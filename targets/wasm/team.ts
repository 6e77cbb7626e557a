/**
 * A team of threads over one shared WebAssembly.Memory. Thread 0 is the calling thread; threads
 * 1..n−1 are workers that sleep on the control block's GO counter. One program call costs one
 * Atomics.notify: inside the call, kernels synchronise with the in-WASM barrier (atomics on the same
 * memory), never with messages.
 *
 * The worker body is plain JS text (no imports), so a Web Worker variant is a small adapter: post
 * {module, memory, tid, nth, scratch} to a worker made from WORKER_BODY with a `self.onmessage`
 * prelude instead of `workerData` (and run thread 0 in a worker too, since a page's main thread
 * may not block in Atomics.wait).
 */
import { Worker } from 'node:worker_threads';
import { CTL, type ModuleExports } from './abi.ts';

/** Spins before sleeping: a decode step is ~10 ms, so a waiting worker wakes without a syscall. */
const WORKER_SPIN = 200000;

export const WORKER_BODY = `
function threadMain(d, post) {
  const inst = new WebAssembly.Instance(d.module, { env: { memory: d.memory, mark() {} } });
  inst.exports.init(d.scratch);
  const i32 = new Int32Array(d.memory.buffer);
  const GO = ${CTL.GO / 4}, PROG = ${CTL.PROG / 4}, T = ${CTL.T / 4}, QUIT = ${CTL.QUIT / 4};
  const ABORT = ${CTL.ABORT / 4}, BAR_GEN = ${CTL.BAR_GEN / 4};
  let seen = d.gen;
  post({ ready: true });
  for (;;) {
    for (let s = 0; s < ${WORKER_SPIN} && Atomics.load(i32, GO) === seen; s++);
    while (Atomics.load(i32, GO) === seen) Atomics.wait(i32, GO, seen, 1000);
    seen = Atomics.load(i32, GO);
    if (Atomics.load(i32, QUIT)) return;
    try {
      inst.exports.run(Atomics.load(i32, PROG), Atomics.load(i32, T), d.tid, d.nth);
    } catch (e) {
      Atomics.store(i32, ABORT, 1);
      Atomics.notify(i32, BAR_GEN);
      post({ error: String((e && e.stack) || e) });
    }
  }
}
`;

const NODE_WORKER = `${WORKER_BODY}
const { parentPort, workerData } = typeof require === 'function' ? require('node:worker_threads') : process.getBuiltinModule('node:worker_threads');
threadMain(workerData, (m) => parentPort.postMessage(m));
`;

export interface Team {
  readonly threads: number;
  /** Run program `prog` on T tokens on every thread; returns when all threads are done. */
  run(prog: number, T: number): void;
  dispose(): Promise<void>;
}

export async function startTeam(module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number,
  scratch: (tid: number) => number, mark: (phase: number) => void = () => {}): Promise<Team> {
  const i32 = new Int32Array(memory.buffer);
  const main = new WebAssembly.Instance(module, { env: { memory, mark } }).exports as unknown as ModuleExports;
  main.init(scratch(0));
  const workers: Worker[] = [];
  const errors: string[] = [];
  const gen = Atomics.load(i32, CTL.GO / 4);
  await Promise.all(Array.from({ length: threads - 1 }, (_, k) => new Promise<void>((resolve, reject) => {
    const tid = k + 1;
    const w = new Worker(NODE_WORKER, { eval: true, execArgv: [], workerData: { module, memory, tid, nth: threads, scratch: scratch(tid), gen } });
    workers.push(w);
    w.on('message', (m: { ready?: boolean; error?: string }) => {
      if (m.ready) resolve();
      if (m.error) errors.push(`thread ${tid}: ${m.error}`);
    });
    w.on('error', (e) => { errors.push(`thread ${tid}: ${e.message}`); reject(e); });
  })));
  for (const w of workers) w.unref();
  let broken = false;
  return {
    threads,
    run(prog, T) {
      if (broken) throw new Error(`wasm target: a thread failed earlier: ${errors.join('; ')}`);
      Atomics.store(i32, CTL.PROG / 4, prog);
      Atomics.store(i32, CTL.T / 4, T);
      if (threads > 1) {
        Atomics.add(i32, CTL.GO / 4, 1);
        Atomics.notify(i32, CTL.GO / 4);
      }
      try {
        main.run(prog, T, 0, threads);
      } catch (e) {
        broken = true;
        Atomics.store(i32, CTL.ABORT / 4, 1);
        Atomics.notify(i32, CTL.BAR_GEN / 4);
        throw new Error(`wasm target: ${(e as Error).message}${errors.length ? ` (${errors.join('; ')})` : ''}`);
      }
    },
    async dispose() {
      Atomics.store(i32, CTL.QUIT / 4, 1);
      Atomics.add(i32, CTL.GO / 4, 1);
      Atomics.notify(i32, CTL.GO / 4);
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
