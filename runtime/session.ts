/**
 * The session API: a loaded model with its state, for text in and text out. It runs on any target's
 * TargetModel and needs no compiler, so it is also what a generated package embeds.
 *
 *   const s = new Session(model, config, tokenizer);
 *   for await (const piece of s.generate('User: hi\n\nAssistant:', { maxTokens: 50, temperature: 0 })) …
 *   const snap = s.state.save(); … s.state.restore(snap);   // or s.fork() for a second sequence
 */
import type { ModelConfig } from '../kernels/config.ts';
import type { StateTensors, TargetModel } from '../targets/backend.ts';
import { UserError } from '../kernels/errors.ts';
import { Generation, type GenerateOptions, type Step } from './generation.ts';
import { decodeState, encodeState } from './state-file.ts';
import type { WorldTokenizer } from './world-tokenizer.ts';

export type { GenerateOptions } from './generation.ts';

/** A copy of the recurrent state: restore it into any session of the same model. */
export interface StateSnapshot {
  readonly tensors: StateTensors;
  /** The logits after the last token fed, so generation can continue from a restored state. */
  readonly logits: Float32Array | null;
}

type Queue = <R>(f: () => Promise<R>) => Promise<R>;

/** Each call starts when the previous one has settled. */
function queue(): Queue {
  let tail: Promise<unknown> = Promise.resolve();
  return (f) => {
    const r = tail.then(f);
    tail = r.catch(() => undefined);
    return r;
  };
}

export class Session {
  private lastLogits: Float32Array | null = null;
  /** Several sequences share one model: each session swaps its own state in before running. */
  private own: StateTensors | null = null;
  private static active = new WeakMap<TargetModel, Session>();
  /**
   * One queue per model, shared by every session on it (forks included): each operation swaps its
   * session's state in and runs as one unit, so concurrent calls on sessions of one model give what
   * the same calls one after another give, and activate() never switches state under a running call.
   */
  private static queues = new WeakMap<TargetModel, Queue>();
  /** generate() calls on this session, one after another (a second waits for the first to finish). */
  private generating: Queue = queue();

  private static queueOf(model: TargetModel): Queue {
    let q = Session.queues.get(model);
    if (!q) Session.queues.set(model, (q = queue()));
    return q;
  }

  /** Run `f` with this session's state in the model, alone on the model. */
  private exclusive<R>(f: () => Promise<R>): Promise<R> {
    return Session.queueOf(this.model)(async () => {
      await this.activate();
      return f();
    });
  }

  /** `initial`: the state a sequence starts from (a state-tuned checkpoint's time_state); zero if absent. */
  constructor(readonly model: TargetModel, readonly config: ModelConfig, readonly tokenizer?: WorldTokenizer,
    private readonly initial: StateTensors | null = null) {}

  private async startState(): Promise<StateTensors> {
    return this.initial ?? zeroState(await this.model.readState());
  }

  private async activate(): Promise<void> {
    const cur = Session.active.get(this.model);
    if (cur === this) return;
    if (cur) cur.own = await this.model.readState();
    await this.model.writeState(this.own ?? (await this.startState()));
    Session.active.set(this.model, this);
  }

  /** Feed tokens (any number; split into the plan's chunks); returns the logits after the last one. */
  async prefill(tokens: ArrayLike<number>): Promise<Float32Array> {
    const ids = checkTokens(tokens, this.config.vocabSize, 'prefill');
    return this.exclusive(async () => {
      const V = this.config.vocabSize;
      let out: Float32Array | null = null;
      for (let t = 0; t < ids.length; t += this.model.maxTokens) {
        const chunk = ids.subarray(t, Math.min(t + this.model.maxTokens, ids.length));
        out = await this.model.run(chunk.length === 1 ? 'decode' : 'prefill', chunk);
      }
      this.lastLogits = out!.slice(out!.length - V);
      return this.lastLogits;
    });
  }

  /** Feed one token; returns the logits for the next. */
  async decode(token: number): Promise<Float32Array> {
    return this.prefill([token]);
  }

  /** Logits after the last token fed (null before any). */
  get logits(): Float32Array | null {
    return this.lastLogits;
  }

  /**
   * Generate text after `prompt` (text, or token ids), as it is produced. Two generate() calls on one
   * session run one after the other (the second starts when the first has finished, or was left with
   * `break`/return()); a generator iterated part way and then dropped without return() keeps the
   * session's turn, so leave a loop with `break`, not by abandoning the iterator.
   */
  async *generate(prompt: string | number[], o: GenerateOptions = {}): AsyncGenerator<string> {
    const tok = this.tokenizer;
    if (!tok) {
      throw new UserError(typeof prompt === 'string'
        ? 'generate: text needs a vocabulary (load with { vocab }); without one, give token ids to generateIds()'
        : 'generate: text out needs a vocabulary (load with { vocab }); generateIds() takes and returns token ids without one');
    }
    const ids = typeof prompt === 'string' ? tok.encode(prompt) : prompt;
    if (ids.length) checkTokens(ids, this.config.vocabSize, 'generate');
    for await (const s of this.inTurn(() => this.steps(ids, o, tok, 'generate'))) if (s.text) yield s.text;
  }

  /**
   * Generate token ids after `prompt` (token ids; or text, with a vocabulary): the same sampling and turn
   * as generate(), for a session without a vocabulary. Ends after maxTokens or at a stop token (end-of-text,
   * `stopTokens`), which is not yielded; `stopStrings` need text, so they are refused here.
   */
  async *generateIds(prompt: string | number[], o: GenerateOptions = {}): AsyncGenerator<number> {
    if (o.stopStrings?.length) throw new UserError('generateIds: stopStrings match text: use generate(), or stopTokens here');
    let ids: ArrayLike<number>;
    if (typeof prompt !== 'string') ids = prompt;
    else if (this.tokenizer) ids = this.tokenizer.encode(prompt);
    else throw new UserError('generateIds: a text prompt needs a vocabulary (load with { vocab }); give token ids');
    if (ids.length) checkTokens(ids, this.config.vocabSize, 'generateIds');
    // a stop token ends the reply unshown
    for await (const s of this.inTurn(() => this.steps(ids, o, undefined, 'generateIds'))) if (s.finish !== 'stop') yield s.id;
  }

  /** Runs a generation in this session's turn: it starts when the previous one has finished (or was abandoned with return()). */
  private async *inTurn<T>(run: () => AsyncGenerator<T>): AsyncGenerator<T> {
    let done!: () => void;
    const turn = new Promise<void>((r) => (done = r));
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    void this.generating(() => { done(); return mine; });
    await turn;
    try {
      yield* run();
    } finally {
      release();
    }
  }

  /**
   * The steps of one reply after `ids` (or after what was fed before): each token but a stop is fed back,
   * the last one too, so a later generate() with no prompt continues the text.
   */
  private async *steps(ids: ArrayLike<number>, o: GenerateOptions, tok: WorldTokenizer | undefined, what: string): AsyncGenerator<Step> {
    const gen = new Generation(tok, o);
    let logits = ids.length ? await this.prefill(ids) : this.lastLogits;
    if (!logits) throw new UserError(`${what}: empty prompt and nothing fed before`);
    while (!gen.finish) {
      const s = gen.step(logits);
      yield s;
      if (s.finish === 'stop') return;
      logits = await this.decode(s.id);
    }
  }

  readonly state = {
    save: (): Promise<StateSnapshot> => this.exclusive(async () =>
      ({ tensors: await this.model.readState(), logits: this.lastLogits && this.lastLogits.slice() })),
    restore: (s: StateSnapshot): Promise<void> => this.exclusive(async () => {
      await this.model.writeState(s.tensors);
      this.lastLogits = s.logits && s.logits.slice();
    }),
    /** The state as a versioned file, tied to this model's config. */
    toBytes: async (): Promise<Uint8Array> => encodeState((await this.state.save()).tensors, this.config),
    fromBytes: async (bytes: Uint8Array, source?: string): Promise<void> =>
      this.state.restore({ tensors: decodeState(bytes, this.config, source), logits: null }),
  };

  /** A second sequence starting from this one's current state (same model, separate state). */
  async fork(): Promise<Session> {
    const snap = await this.state.save();
    const s = new Session(this.model, this.config, this.tokenizer, this.initial);
    s.own = snap.tensors;
    s.lastLogits = snap.logits;
    return s;
  }

  /**
   * Decode one token for each of several sessions of the same model together: the projections run
   * as one matmul over the batch instead of one matvec per sequence. Returns each session's logits.
   */
  static async decodeBatch(sessions: Session[], tokens: number[]): Promise<Float32Array[]> {
    if (sessions.length !== tokens.length) throw new UserError(`decodeBatch: ${sessions.length} sessions but ${tokens.length} tokens`);
    if (!sessions.length) return [];
    const model = sessions[0].model;
    if (sessions.some((s) => s.model !== model)) throw new UserError('decodeBatch: all sessions must share one loaded model');
    if (new Set(sessions).size !== sessions.length) throw new UserError('decodeBatch: a session appears twice');
    const maxB = model.plan?.batch?.maxT ?? 0;
    if (!model.runBatch || maxB < 1) throw new UserError(`decodeBatch: the ${model.target} model was loaded without a batch program (load with batch: N)`);
    checkTokens(tokens, sessions[0].config.vocabSize, 'decodeBatch');
    return Session.queueOf(model)(() => Session.decodeBatchNow(sessions, tokens));
  }

  private static async decodeBatchNow(sessions: Session[], tokens: number[]): Promise<Float32Array[]> {
    const model = sessions[0].model;
    const maxB = model.plan!.batch!.maxT;
    const V = sessions[0].config.vocabSize;
    // park the active session's state with it, so every sequence's state is in `own`
    const active = Session.active.get(model);
    if (active) { active.own = await model.readState(); Session.active.delete(model); }
    const zero = await sessions[0].startState();
    const out: Float32Array[] = [];
    for (let i = 0; i < sessions.length; i += maxB) {
      const group = sessions.slice(i, i + maxB);
      const r = await model.runBatch!(Int32Array.from(tokens.slice(i, i + maxB)), group.map((s) => s.own ?? zero));
      group.forEach((s, b) => {
        s.own = r.states[b];
        s.lastLogits = r.logits.slice(b * V, (b + 1) * V);
        out.push(s.lastLogits);
      });
    }
    return out;
  }

  /** Reset to the zero state. */
  reset(): Promise<void> {
    return this.exclusive(async () => {
      await this.model.writeState(await this.startState());
      this.lastLogits = null;
    });
  }
}

/**
 * Token ids as they are given (no coercion: 1.5, NaN, ∞, "a" or 2^32+5 are refused, not rounded or
 * wrapped), each in 0..V−1; an id outside is reported as itself.
 */
export function checkTokens(tokens: ArrayLike<unknown>, V: number, what: string): Int32Array {
  if (!tokens || typeof tokens.length !== 'number') throw new UserError(`${what}: expected an array of token ids`);
  if (tokens.length === 0) throw new UserError(`${what}: no tokens`);
  const ids = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i];
    if (typeof id !== 'number' || !Number.isInteger(id))
      throw new UserError(`${what}: ${show(id)} at position ${i} is not a token id (a whole number)`);
    if (id < 0 || id >= V) throw new UserError(`${what}: token id ${id} is outside the vocabulary (0..${V - 1})`);
    ids[i] = id;
  }
  return ids;
}

/** A value as it was given, clipped (it may be anything a caller passed). */
function show(v: unknown): string {
  try {
    const s = typeof v === 'string' ? JSON.stringify(v.slice(0, 41)) : typeof v === 'number' || typeof v === 'bigint' ? String(v) : `a ${v === null ? 'null' : typeof v}`;
    return s.length > 40 ? `${s.slice(0, 40)}…` : s;
  } catch {
    return 'a value';
  }
}

function zeroState(like: StateTensors): StateTensors {
  return Object.fromEntries(Object.entries(like).map(([k, v]) => [k, new Float32Array(v.length)]));
}
