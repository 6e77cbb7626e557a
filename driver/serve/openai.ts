/**
 * The OpenAI API's shapes as this server takes and gives them: request bodies as JSON Schemas (fastify
 * validates them with Ajv, so a bad field is a 400 naming it), the error object, and response objects.
 * Fields the sampler cannot honour (n > 1, logprobs, tools) are refused rather than ignored.
 */

/** OpenAI's error shape: `{ error: { message, type, param, code } }`. */
export interface ApiError {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function apiError(message: string, type: string, code: string | null = null, param: string | null = null): ApiError {
  return { error: { message, type, param, code } };
}

const stop = {
  anyOf: [
    { type: 'string', minLength: 1 },
    { type: 'array', maxItems: 4, items: { type: 'string', minLength: 1 } },
    { type: 'null' },
  ],
};

/** Sampling fields both endpoints take. */
const sampling = {
  model: { type: 'string', minLength: 1 },
  stream: { type: ['boolean', 'null'] },
  stream_options: { type: ['object', 'null'], properties: { include_usage: { type: 'boolean' } } },
  max_tokens: { type: ['integer', 'null'], minimum: 1 },
  temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
  top_p: { type: ['number', 'null'], minimum: 0, maximum: 1 },
  presence_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  frequency_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  seed: { type: ['integer', 'null'], minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
  stop,
  n: { type: ['integer', 'null'], minimum: 1, maximum: 1 },
  logprobs: { anyOf: [{ const: false }, { type: 'null' }] },
  tools: { type: ['array', 'null'], maxItems: 0 },
};

const tokenIds = { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } };

export const completionBody = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...sampling,
    // one prompt: text or token ids (a list of several prompts is refused by maxItems)
    prompt: {
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', minItems: 1, maxItems: 1, items: { type: 'string', minLength: 1 } },
        tokenIds,
        { type: 'array', minItems: 1, maxItems: 1, items: tokenIds },
      ],
    },
    echo: { anyOf: [{ const: false }, { type: 'null' }] },
    best_of: { type: ['integer', 'null'], minimum: 1, maximum: 1 },
  },
} as const;

const contentPart = { type: 'object', required: ['type', 'text'], properties: { type: { const: 'text' }, text: { type: 'string' } } };

export const chatBody = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...sampling,
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role', 'content'],
        properties: {
          role: { enum: ['system', 'developer', 'user', 'assistant'] },
          content: { anyOf: [{ type: 'string' }, { type: 'array', items: contentPart }] },
        },
      },
    },
  },
} as const;

export interface SamplingBody {
  model: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
}

export interface CompletionBody extends SamplingBody {
  prompt: string | [string] | number[] | [number[]];
}

export interface ChatBody extends SamplingBody {
  max_completion_tokens?: number | null;
  messages: { role: 'system' | 'developer' | 'user' | 'assistant'; content: string | { type: 'text'; text: string }[] }[];
}

export interface Usage { prompt_tokens: number; completion_tokens: number; total_tokens: number }

export const usage = (prompt: number, completion: number): Usage =>
  ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
