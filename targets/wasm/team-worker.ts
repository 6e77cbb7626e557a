/**
 * The module script of one WASM thread in a browser (team-web.ts starts it): the first message is the
 * thread's {module, memory, tid, nth, scratch, gen, report}; it then runs team.ts's WORKER_BODY, the same
 * code as Node's worker threads, until the team quits.
 */
import { WORKER_BODY } from './team.ts';

type Post = (m: unknown) => void;
const scope = globalThis as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage: Post };
const threadMain = new Function(`${WORKER_BODY}\nreturn threadMain;`)() as (d: unknown, post: Post) => void;

scope.onmessage = (e) => {
  scope.onmessage = null;
  threadMain(e.data, (m) => scope.postMessage(m));
};
