/**
 * One reply, generated token by token: sampling, stop tokens and strings, and text streaming, in one
 * place. Whoever runs the model drives it, one step per set of logits: Session.generate feeds each token
 * back alone, `rwkvc chat` feeds the stop token too (so the state holds the whole turn), and `rwkvc serve`
 * decodes many replies in one batch. So a reply is the same text whichever of them produced it.
 */
import { createRng, sample, StopMatcher, TokenHistory, type Rng, type SamplingOptions } from './sampler.ts';
import { END_OF_TEXT, type StreamDecoder, type WorldTokenizer } from './world-tokenizer.ts';

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate. Default 100. */
  maxTokens?: number;
  /** Called after each generated token (for tokens/s displays). */
  onToken?: (id: number) => void;
}

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
  /** Set once the reply is over; at the start already when maxTokens allows no token. */
  finish: FinishReason | null = null;
  private readonly maxTokens: number;
  private readonly history = new TokenHistory();
  private readonly stops: StopMatcher;
  private readonly stream: StreamDecoder | undefined;
  private readonly rng: Rng;

  /**
   * `tok`: without one, steps give token ids and no text (stop strings then never match).
   * `rng`: a shared source (the chat's, seeded once); else one from `o.seed` (or the clock).
   */
  constructor(private readonly tok: WorldTokenizer | undefined, private readonly o: GenerateOptions = {}, rng?: Rng) {
    this.maxTokens = o.maxTokens ?? 100;
    this.stops = new StopMatcher(o);
    this.stream = tok?.createStreamDecoder();
    this.rng = rng ?? createRng(o.seed ?? Date.now());
    // NaN too: a loop bound it never reaches would generate forever
    if (!(this.maxTokens > 0)) this.finish = 'length';
  }

  /** Samples the next token from `logits` (those after the prompt, then after each token fed). */
  step(logits: Float32Array): Step {
    if (this.finish) throw new Error('Generation.step after the reply finished');
    const id = sample(logits, this.o, this.rng, this.history);
    this.ids.push(id);
    this.o.onToken?.(id);
    // a padded id the vocabulary lacks (trained models never pick one) shows as nothing instead of failing the reply
    const piece = !this.tok || id === END_OF_TEXT || !this.tok.tokenBytes(id) ? '' : this.stream!.push(id);
    const r = this.stops.push(id, piece);
    let text = r.text;
    if (r.stopped) this.finish = 'stop';
    else if (this.ids.length >= this.maxTokens) {
      const tail = this.stops.push(-1, this.stream?.flush() ?? '');
      text += tail.text + this.stops.flush();
      this.finish = tail.stopped ? 'stop' : 'length';
    }
    return { id, text, finish: this.finish };
  }
}
