/** The server's request limits: their own module, so `rwkvc serve --help` shows the defaults without loading fastify. */
export interface ServeLimits {
  /** The most tokens a request may ask for (and what a chat request without max_tokens gets). */
  maxTokens: number;
  /** The most bytes (UTF-8) a prompt may have; token-id prompts: the most ids. */
  maxPromptBytes: number;
  /** Requests in flight at once; one more gets 429. */
  maxConcurrent: number;
  /** A request's time from arrival to its last token; past it: 504 (or an error event in a stream). */
  timeoutMs: number;
}

export const DEFAULT_LIMITS: ServeLimits = { maxTokens: 512, maxPromptBytes: 64 * 1024, maxConcurrent: 32, timeoutMs: 120_000 };
