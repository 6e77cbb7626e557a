/**
 * A team of threads over one shared WebAssembly.Memory. Threads 1..n−1 are workers that sleep on the
 * control block's GO counter. One program call costs one Atomics.notify: inside the call, kernels
 * synchronise with the in-WASM barrier (atomics on the same memory), never with messages.
 *
 * Where the threads run is decided here and nowhere else (`teamThreads`, `startTeam`):
 *   - Node: node:worker_threads (imported only there), thread 0 is the calling thread, `run` is synchronous.
 *   - A browser (no Node): Web Workers from the module script team-worker.ts (team-web.ts). Thread 0 runs
 *     in a worker too, since a page's main thread may not block in Atomics.wait (the barrier sleeps), so
 *     calls are asynchronous (`runAsync`). Sharing the memory with workers needs a cross-origin isolated
 *     page (COOP/COEP headers); without it the team is 1 thread on the calling thread, and says so.
 *   - One thread anywhere: thread 0 on the calling thread, no workers.
 * Every thread runs the same threadMain (thread-main.ts) on its tid, so results depend only on the thread count.
 */
import { threadData, type Team } from './team-thread.ts';
import { CTL, type ModuleExports } from './abi.ts';
import { threadMain, type ThreadData } from './thread-main.ts';

/**
 * A Node worker: threadMain's own source text called on the workerData (no file to resolve, no loader).
 * Called as an expression, so a bundler that renames the function does not break it.
 */
const NODE_WORKER = `const { parentPort, workerData } = typeof require === 'function' ? require('node:worker_threads') : process.getBuiltinModule('node:worker_threads');
(${threadMain.toString()})(workerData, (m) => parentPort.postMessage(m));
`;


/** The thread count a team gets here for `requested`, and why it is fewer when it is. */
export interface TeamThreads {
  threads: number;
  /** Where the threads run. */
  host: 'node' | 'web-workers' | 'caller';
  /** Set when `threads` < requested: the reason, in one line. */
  note?: string;
}

const isNode = () => typeof process !== 'undefined' && !!process.versions?.node;

type NodeWorkers = typeof import('node:worker_threads');
let nodeWorkers: Promise<NodeWorkers | null> | undefined;
/** node:worker_threads when this is Node (null elsewhere, or if the host refuses it). */
const workerThreads = (): Promise<NodeWorkers | null> =>
  (nodeWorkers ??= isNode() ? import('node:worker_threads').catch(() => null) : Promise.resolve(null));

/**
 * How many threads can share memory here: any number in Node; in a browser, Web Workers and a cross-origin
 * isolated page (else 1). Decided before the memory is made, since its size depends on the thread count.
 */
export async function teamThreads(requested: number): Promise<TeamThreads> {
  const n = Math.max(1, Math.floor(requested));
  if (n === 1) return { threads: 1, host: 'caller' };
  if (await workerThreads()) return { threads: n, host: 'node' };
  const g = globalThis as { Worker?: unknown; crossOriginIsolated?: boolean };
  if (typeof g.Worker !== 'function') {
    return { threads: 1, host: 'caller', note: `wasm target: no worker threads here (no node:worker_threads, no Web Workers); running 1 thread instead of ${n}` };
  }
  if (g.crossOriginIsolated !== true) {
    return {
      threads: 1, host: 'caller',
      note: `wasm target: this page is not cross-origin isolated (serve it with the headers Cross-Origin-Opener-Policy: same-origin and ` +
        `Cross-Origin-Embedder-Policy: require-corp), so threads cannot share memory; running 1 thread on the main thread instead of ${n}`,
    };
  }
  return { threads: n, host: 'web-workers' };
}

/**
 * Start `threads` threads (a count from teamThreads) on `module` over `memory`. `mark` (profiling builds)
 * is only called on a calling-thread thread 0.
 */
export async function startTeam(module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number,
  scratch: (tid: number) => number, mark: (phase: number) => void = () => {}): Promise<Team> {
  if (threads > 1) {
    const wt = await workerThreads();
    if (wt) return startNodeTeam(wt, module, memory, threads, scratch, mark);
    const { startWebTeam } = await import('./team-web.ts');
    return startWebTeam(module, memory, threads, scratch);
  }
  return startNodeTeam(null, module, memory, 1, scratch, mark);
}

/** Thread 0 on the calling thread; threads 1..n−1 on node:worker_threads (`wt` null: one thread only). */
async function startNodeTeam(wt: NodeWorkers | null, module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number,
  scratch: (tid: number) => number, mark: (phase: number) => void): Promise<Team> {
  const i32 = new Int32Array(memory.buffer);
  const main = new WebAssembly.Instance(module, { env: { memory, mark } }).exports as unknown as ModuleExports;
  main.init(scratch(0));
  const workers: import('node:worker_threads').Worker[] = [];
  const errors: string[] = [];
  const gen = Atomics.load(i32, CTL.GO / 4);
  if (threads > 1 && !wt) throw new Error('wasm target: more than one thread needs node:worker_threads here');
  await Promise.all(Array.from({ length: threads - 1 }, (_, k) => new Promise<void>((resolve, reject) => {
    const tid = k + 1;
    const w = new wt!.Worker(NODE_WORKER, { eval: true, execArgv: [], workerData: { module, memory, ...threadData(tid, threads, scratch(tid), gen) } });
    workers.push(w);
    w.on('message', (m: { ready?: boolean; error?: string }) => {
      if (m.ready) resolve();
      if (m.error) errors.push(`thread ${tid}: ${m.error}`);
    });
    w.on('error', (e) => { errors.push(`thread ${tid}: ${e.message}`); reject(e); });
  })));
  for (const w of workers) w.unref();
  let broken = false;
  const run = (prog: number, T: number) => {
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
  };
  return {
    threads,
    sync: true,
    run,
    runAsync: async (prog, T) => run(prog, T),
    async dispose() {
      Atomics.store(i32, CTL.QUIT / 4, 1);
      Atomics.add(i32, CTL.GO / 4, 1);
      Atomics.notify(i32, CTL.GO / 4);
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
