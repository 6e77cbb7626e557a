/**
 * Continuous batching: one loop serves every request. Each step first feeds each new request one
 * prompt chunk (its own session, forked from the model's start state), then decodes the next token of
 * every request that has one, all together through Session.decodeBatch (one matmul per projection over
 * the batch instead of one matvec per request). A request joins the batch once its prompt is in and
 * leaves it when its reply ends, is cancelled (the client went away) or runs out of time, always
 * between steps, so a slot is free for the next request at once.
 */
import { Session } from '../../runtime/session.ts';
import type { FinishReason, Generation } from '../../runtime/generation.ts';

export interface Job {
  /** Prompt token ids (at least one). */
  ids: number[];
  gen: Generation;
  /** Text of the reply as it is produced. */
  onText: (text: string) => void;
  /** Date.now() after which the request is given up ('timeout'). */
  deadline: number;
  /** Set by the caller (client disconnected): the request leaves at the next step. */
  cancelled?: boolean;
}

export interface JobResult {
  finish: FinishReason | 'cancelled' | 'timeout' | 'error';
  promptTokens: number;
  completionTokens: number;
  error?: unknown;
}

interface Entry {
  job: Job;
  session?: Session;
  /** Prompt tokens fed so far. */
  fed: number;
  /** The token to feed in the next decode step (sampled, not yet fed). */
  next?: number;
  resolve: (r: JobResult) => void;
}

export class Busy extends Error {}

export class Scheduler {
  private entries: Entry[] = [];
  private running = false;
  /** Decode steps run and sequences decoded in them (for /health and the bench). */
  readonly stats = { steps: 0, decoded: 0, maxBatch: 0 };

  /** `base`: a session at the model's start state, loaded with a batch program; it is only forked. */
  constructor(private readonly base: Session, private readonly maxConcurrent: number) {}

  /** Requests in flight (prefilling or decoding). */
  get active(): number {
    return this.entries.length;
  }

  get full(): boolean {
    return this.entries.length >= this.maxConcurrent;
  }

  /** Adds a request; throws Busy when maxConcurrent are in flight already. */
  submit(job: Job): Promise<JobResult> {
    if (this.full) throw new Busy(`${this.maxConcurrent} requests are in flight (--max-concurrent)`);
    return new Promise((resolve) => {
      this.entries.push({ job, fed: 0, resolve });
      if (!this.running) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.entries.length) {
        try {
          await this.step();
        } catch (e) {
          // a failing model run fails the requests in it, not the server
          for (const en of this.entries.splice(0)) this.end(en, 'error', e);
        }
        // let the HTTP side run between steps: new requests arrive, streams flush, disconnects are seen
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
    }
  }

  private async step(): Promise<void> {
    const now = Date.now();
    for (const en of [...this.entries]) {
      if (en.job.cancelled) this.remove(en, 'cancelled');
      else if (now > en.job.deadline) this.remove(en, 'timeout');
    }
    // prompts: one chunk per new request per step, so a long prompt does not stall the replies being decoded
    for (const en of this.entries.filter((x) => x.fed < x.job.ids.length)) {
      try {
        en.session ??= await this.base.fork();
        const chunk = en.job.ids.slice(en.fed, en.fed + en.session.model.maxTokens);
        const logits = await en.session.prefill(chunk);
        en.fed += chunk.length;
        if (en.fed === en.job.ids.length) this.emit(en, logits);
      } catch (e) {
        this.remove(en, 'error', e); // this request's prompt failed; the others go on
      }
    }
    const ready = this.entries.filter((x) => x.next !== undefined);
    if (!ready.length) return;
    const out = await Session.decodeBatch(ready.map((x) => x.session!), ready.map((x) => x.next!));
    this.stats.steps++;
    this.stats.decoded += ready.length;
    this.stats.maxBatch = Math.max(this.stats.maxBatch, ready.length);
    ready.forEach((en, i) => this.emit(en, out[i]));
  }

  /** Samples the next token of `en` from `logits`; ends it or queues the token for the next decode step. */
  private emit(en: Entry, logits: Float32Array): void {
    en.next = undefined;
    if (en.job.cancelled) return this.remove(en, 'cancelled');
    if (en.job.gen.finish) return this.remove(en, en.job.gen.finish); // max_tokens 0: done once the prompt is in
    const s = en.job.gen.step(logits);
    if (s.text) en.job.onText(s.text);
    if (s.finish) this.remove(en, s.finish);
    else en.next = s.id;
  }

  private remove(en: Entry, finish: JobResult['finish'], error?: unknown): void {
    const i = this.entries.indexOf(en);
    if (i >= 0) this.entries.splice(i, 1);
    this.end(en, finish, error);
  }

  private end(en: Entry, finish: JobResult['finish'], error?: unknown): void {
    en.resolve({ finish, promptTokens: en.job.ids.length, completionTokens: en.job.gen.ids.length, error });
  }
}
