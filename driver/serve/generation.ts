/**
 * One reply being generated, token by token, outside Session.generate: the chat and the server decide
 * themselves when the model runs (the chat feeds the stop token too, so the state holds the whole turn;
 * the server decodes many replies in one batch). Sampling, stop strings and text streaming are those of
 * Session.generate step for step, so a reply here is the text `rwkvc run` prints for the same prompt and
 * options.
 */
import { createRng, sample, StopMatcher, TokenHistory, type Rng } from '../../runtime/sampler.ts';
import type { GenerateOptions } from '../../runtime/session.ts';
import { END_OF_TEXT, type StreamDecoder, type WorldTokenizer } from '../../runtime/world-tokenizer.ts';

export type FinishReason = 'stop' | 'length';

export interface Step {
  /** The token sampled. */
  id: number;
  /** Text now safe to show (held back while it could be the start of a stop string). */
  text: string;
  /** Set when the reply is over: a stop token or string ('stop'), or maxTokens reached ('length'). */
  finish: FinishReason | null;
}

export class Generation {
  /** Every token sampled so far, the last one included. */
  readonly ids: number[] = [];
  finish: FinishReason | null = null;
  private readonly history = new TokenHistory();
  private readonly stops: StopMatcher;
  private readonly stream: StreamDecoder;
  private readonly rng: Rng;

  /** `rng`: a shared source (the chat's, seeded once); else one from `o.seed` (or the clock). */
  constructor(private readonly tok: WorldTokenizer, private readonly o: GenerateOptions & { maxTokens: number }, rng?: Rng) {
    this.stops = new StopMatcher(o);
    this.stream = tok.createStreamDecoder();
    this.rng = rng ?? createRng(o.seed ?? Date.now());
  }

  /** Samples the next token from `logits` (those after the prompt, then after each token fed). */
  step(logits: Float32Array): Step {
    if (this.finish) throw new Error('Generation.step after the reply finished');
    const id = sample(logits, this.o, this.rng, this.history);
    this.ids.push(id);
    // a padded id the vocabulary lacks (trained models never pick one) shows as nothing instead of failing the reply
    const piece = id === END_OF_TEXT || !this.tok.tokenBytes(id) ? '' : this.stream.push(id);
    const r = this.stops.push(id, piece);
    let text = r.text;
    if (r.stopped) this.finish = 'stop';
    else if (this.ids.length >= this.o.maxTokens) {
      const tail = this.stops.push(-1, this.stream.flush());
      text += tail.text + this.stops.flush();
      this.finish = tail.stopped ? 'stop' : 'length';
    }
    return { id, text, finish: this.finish };
  }
}
