/**
 * The module script of one WASM thread in a browser (team-web.ts starts it): the first message is the
 * thread's ThreadData; it then runs threadMain, the same code as Node's worker threads, until the team
 * quits. No eval: a page with a strict Content-Security-Policy can run it.
 */
import { threadMain, type ThreadData } from './thread-main.ts';

const scope = globalThis as unknown as { onmessage: ((e: MessageEvent<ThreadData>) => void) | null; postMessage: (m: unknown) => void };

scope.onmessage = (e) => {
  scope.onmessage = null;
  threadMain(e.data, (m) => scope.postMessage(m));
};
