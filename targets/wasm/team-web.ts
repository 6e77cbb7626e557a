/**
 * The WASM team in a browser (see team.ts, which chooses it): every thread, thread 0 included, is a
 * module Web Worker running team-worker.ts on the shared memory, since a page's main thread may not
 * block in Atomics.wait. A call bumps GO and resolves when thread 0 posts that it is done (its last
 * barrier is the end of every thread's work). Needs a cross-origin isolated page to post the memory.
 */
import { CTL } from './abi.ts';
import { threadData, type Team } from './team-thread.ts';

type Message = { ready?: boolean; done?: number; error?: string };

export async function startWebTeam(module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number,
  scratch: (tid: number) => number): Promise<Team> {
  const i32 = new Int32Array(memory.buffer);
  const gen = Atomics.load(i32, CTL.GO / 4);
  const workers: Worker[] = [];
  const errors: string[] = [];
  let pending: { resolve: () => void; reject: (e: Error) => void } | null = null;
  let broken = false;
  const fail = (why: string) => {
    broken = true;
    const p = pending;
    pending = null;
    p?.reject(new Error(`wasm target: ${why}`));
  };
  try {
    await Promise.all(Array.from({ length: threads }, (_, tid) => new Promise<void>((resolve, reject) => {
      // the literal `new Worker(new URL(…, import.meta.url), { type: 'module' })` is what bundlers follow
      const w = new Worker(new URL('./team-worker.ts', import.meta.url), { type: 'module', name: `rwkvc wasm thread ${tid}` });
      workers.push(w);
      w.onmessage = (e: MessageEvent<Message>) => {
        const m = e.data;
        if (m.ready) resolve();
        if (m.error) {
          errors.push(`thread ${tid}: ${m.error}`);
          if (tid === 0) fail(errors.join('; '));
        }
        if (m.done !== undefined && tid === 0) {
          const p = pending;
          pending = null;
          p?.resolve();
        }
      };
      w.onerror = (e: ErrorEvent) => {
        const why = `thread ${tid}: ${e.message || 'the worker script failed to load (team-worker)'}`;
        errors.push(why);
        reject(new Error(`wasm target: ${why}`));
        fail(why);
      };
      w.postMessage({ module, memory, ...threadData(tid, threads, scratch(tid), gen), report: tid === 0 });
    })));
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  }
  return {
    threads,
    sync: false,
    run() {
      throw new Error('wasm target: this team runs in Web Workers; calls are asynchronous (runAsync)');
    },
    runAsync(prog, T) {
      if (broken) return Promise.reject(new Error(`wasm target: a thread failed earlier: ${errors.join('; ')}`));
      if (pending) return Promise.reject(new Error('wasm target: a call is already running'));
      const done = new Promise<void>((resolve, reject) => (pending = { resolve, reject }));
      Atomics.store(i32, CTL.PROG / 4, prog);
      Atomics.store(i32, CTL.T / 4, T);
      Atomics.add(i32, CTL.GO / 4, 1);
      Atomics.notify(i32, CTL.GO / 4);
      return done;
    },
    async dispose() {
      Atomics.store(i32, CTL.QUIT / 4, 1);
      Atomics.add(i32, CTL.GO / 4, 1);
      Atomics.notify(i32, CTL.GO / 4);
      fail('the model was disposed');
      for (const w of workers) w.terminate();
    },
  };
}
