/**
 * `rwkvc serve`'s HTTP side, on fastify: the OpenAI endpoints `/v1/completions` and
 * `/v1/chat/completions` (streamed as server-sent events in OpenAI's chunk format, ending with
 * `data: [DONE]`, or whole), `/v1/models`, and `/health`. Every request is decoded by the one Scheduler
 * (continuous batching). Limits (body and prompt size, max tokens, requests in flight, time) answer with
 * a 4xx/5xx in OpenAI's error shape; a client that goes away frees its slot at the next step.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { UserError } from '../../kernels/errors.ts';
import { checkTokens, type Session } from '../../runtime/session.ts';
import type { WorldTokenizer } from '../../runtime/world-tokenizer.ts';
import { chatPrompt, TURN_END } from './chat-format.ts';
import { Generation } from '../../runtime/generation.ts';
import { apiError, chatBody, completionBody, usage, type ChatBody, type CompletionBody, type SamplingBody } from './openai.ts';
import { Busy, Scheduler, type Job, type JobResult } from './scheduler.ts';
import { DEFAULT_LIMITS, type ServeLimits } from './limits.ts';

export interface ServeOptions extends Partial<ServeLimits> {
  /** Loaded with a batch program (load(…, { batch: N })) and a tokenizer, at its start state; only forked. */
  session: Session;
  /** The name clients give as `model`. */
  modelId: string;
}

/** An error answered to the client as it is (status and OpenAI error object). */
class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly type: string, readonly code: string | null = null, readonly param: string | null = null) {
    super(message);
  }
}

const now = () => Math.floor(Date.now() / 1000);

export function createServer(o: ServeOptions): { app: FastifyInstance; scheduler: Scheduler } {
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as ServeLimits;
  const tok = o.session.tokenizer;
  if (!tok) throw new UserError('serve: the model was loaded without a vocabulary (--vocab)');
  const scheduler = new Scheduler(o.session, limits.maxConcurrent);
  const app = Fastify({
    // JSON escapes may make a body up to 6× its text; anything well past the prompt limit is refused unread (413)
    bodyLimit: 6 * limits.maxPromptBytes + 64 * 1024,
    // a client that takes longer than a whole request may to send its body gets Node's 408
    requestTimeout: limits.timeoutMs,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allowUnionTypes: true, allErrors: false } },
  });

  app.setErrorHandler((err: FastifyError | HttpError | UserError, _req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).send(apiError(err.message, err.type, err.code, err.param));
    if (err instanceof UserError) return reply.code(400).send(apiError(err.message, 'invalid_request_error'));
    const e = err as FastifyError;
    if (e.validation) {
      const param = e.validation[0]?.instancePath?.replace(/^\//, '').replace(/\//g, '.') || null;
      return reply.code(400).send(apiError(`invalid request: ${e.message}`, 'invalid_request_error', 'invalid_value', param));
    }
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return reply.code(413).send(apiError(`request body too large (this server takes at most ${app.initialConfig.bodyLimit} bytes; --max-prompt-bytes ${limits.maxPromptBytes})`, 'invalid_request_error', 'request_too_large'));
    if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || e instanceof SyntaxError)
      return reply.code(400).send(apiError(`the body is not valid JSON (${e.message})`, 'invalid_request_error', 'invalid_json'));
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.code(415).send(apiError('send the body as JSON with content-type: application/json', 'invalid_request_error', 'unsupported_media_type'));
    const status = e.statusCode ?? 500;
    if (status >= 400 && status < 500) return reply.code(status).send(apiError(e.message, 'invalid_request_error', e.code ?? null));
    process.stderr.write(`rwkvc serve: ${String(err.stack ?? err)}\n`);
    return reply.code(500).send(apiError('internal error (see the server log)', 'server_error'));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(apiError(`no such endpoint: ${req.method} ${req.url.split('?')[0]}`, 'invalid_request_error', 'not_found')));

  const modelObject = { id: o.modelId, object: 'model', created: now(), owned_by: 'rwkvc' };
  app.get('/health', async () => ({ status: 'ok', model: o.modelId, active: scheduler.active, maxConcurrent: limits.maxConcurrent, ...scheduler.stats }));
  app.get('/v1/models', async () => ({ object: 'list', data: [modelObject] }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (req) => {
    if (req.params.id !== o.modelId) throw unknownModel(req.params.id, o.modelId);
    return modelObject;
  });

  app.post<{ Body: CompletionBody }>('/v1/completions', { schema: { body: completionBody } }, async (req, reply) => {
    const b = req.body;
    checkModel(b.model, o.modelId);
    const p = Array.isArray(b.prompt) && b.prompt.length === 1 && typeof b.prompt[0] !== 'number' ? b.prompt[0] : b.prompt;
    const ids = typeof p === 'string' ? encode(tok, p, limits, o.session) : checkIds(p as number[], o.session, limits);
    // OpenAI's default for completions is 16 tokens
    return run(b, ids, false, b.max_tokens ?? Math.min(16, limits.maxTokens), reply);
  });

  app.post<{ Body: ChatBody }>('/v1/chat/completions', { schema: { body: chatBody } }, async (req, reply) => {
    const b = req.body;
    checkModel(b.model, o.modelId);
    const prompt = chatPrompt(b.messages.map((m) => ({ role: m.role, text: typeof m.content === 'string' ? m.content : m.content.map((c) => c.text).join('') })));
    return run(b, encode(tok, prompt, limits, o.session), true, b.max_completion_tokens ?? b.max_tokens ?? limits.maxTokens, reply);
  });

  /** One request through the scheduler, answered whole or streamed. */
  async function run(b: SamplingBody, ids: number[], chat: boolean, maxTokens: number, reply: FastifyReply) {
    if (maxTokens > limits.maxTokens)
      throw new HttpError(400, `max_tokens ${maxTokens} is more than this server allows (${limits.maxTokens}, --max-tokens)`, 'invalid_request_error', 'invalid_value', 'max_tokens');
    const stops = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
    const gen = new Generation(tok!, {
      maxTokens, temperature: b.temperature ?? 1, topP: b.top_p ?? 1, presencePenalty: b.presence_penalty ?? 0,
      frequencyPenalty: b.frequency_penalty ?? 0, seed: b.seed ?? undefined, stopStrings: chat ? [TURN_END, ...stops] : stops,
    });
    if (scheduler.full) throw new HttpError(429, `server busy: ${limits.maxConcurrent} requests in flight (--max-concurrent); retry later`, 'rate_limit_error', 'too_many_requests');
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const created = now();
    const job: Job = { ids, gen, onText: () => {}, deadline: Date.now() + limits.timeoutMs };
    const raw = reply.raw;
    raw.on('close', () => { if (!raw.writableEnded) job.cancelled = true; });

    const choice = (text: string | null, finish: string | null, first = false) => chat
      ? { index: 0, delta: text === null ? {} : first ? { role: 'assistant', content: text } : { content: text }, logprobs: null, finish_reason: finish }
      : { index: 0, text: text ?? '', logprobs: null, finish_reason: finish };
    const chunk = (choices: unknown[], extra = {}) =>
      ({ id, object: chat ? 'chat.completion.chunk' : 'text_completion', created, model: o.modelId, choices, ...extra });

    if (b.stream) {
      reply.hijack();
      raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      const send = (data: unknown) => raw.write(`data: ${JSON.stringify(data)}\n\n`);
      if (chat) send(chunk([choice('', null, true)]));
      job.onText = (text) => send(chunk([choice(text, null)]));
      const r = await scheduler.submit(job);
      if (r.finish === 'cancelled') return;
      if (r.finish === 'timeout' || r.finish === 'error') send(failure(r, limits).body);
      else {
        send(chunk([choice(chat ? null : '', r.finish)]));
        if (b.stream_options?.include_usage) send(chunk([], { usage: usage(r.promptTokens, r.completionTokens) }));
      }
      raw.end('data: [DONE]\n\n');
      return;
    }
    let text = '';
    job.onText = (t) => { text += t; };
    let r: JobResult;
    try {
      r = await scheduler.submit(job);
    } catch (e) {
      if (e instanceof Busy) throw new HttpError(429, `server busy: ${e.message}`, 'rate_limit_error', 'too_many_requests');
      throw e;
    }
    if (r.finish === 'timeout' || r.finish === 'error') {
      const f = failure(r, limits);
      return reply.code(f.status).send(f.body);
    }
    if (r.finish === 'cancelled') return reply.code(499).send(apiError('client closed the request', 'cancelled'));
    const c = chat
      ? { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: r.finish }
      : { index: 0, text, logprobs: null, finish_reason: r.finish };
    return { id, object: chat ? 'chat.completion' : 'text_completion', created, model: o.modelId, choices: [c], usage: usage(r.promptTokens, r.completionTokens) };
  }

  return { app, scheduler };
}

function failure(r: JobResult, limits: ServeLimits) {
  if (r.finish === 'timeout')
    return { status: 504, body: apiError(`the request took longer than ${limits.timeoutMs} ms (--timeout-ms)`, 'timeout', 'timeout') };
  process.stderr.write(`rwkvc serve: ${String((r.error as Error)?.stack ?? r.error)}\n`);
  return { status: 500, body: apiError('internal error while generating (see the server log)', 'server_error') };
}

function unknownModel(asked: string, served: string): HttpError {
  return new HttpError(404, `the model '${asked.slice(0, 100)}' does not exist; this server serves '${served}'`, 'invalid_request_error', 'model_not_found', 'model');
}

function checkModel(asked: string, served: string): void {
  if (asked !== served) throw unknownModel(asked, served);
}

function tooLarge(what: string, n: number, limits: ServeLimits): HttpError {
  return new HttpError(413, `the prompt is ${n} ${what}; this server takes at most ${limits.maxPromptBytes} (--max-prompt-bytes)`, 'invalid_request_error', 'prompt_too_large', 'prompt');
}

/** A text prompt's ids, each checked against the model (a vocabulary bigger than the model's embedding is a 400, not a failed step). */
function encode(tok: WorldTokenizer, text: string, limits: ServeLimits, session: Session): number[] {
  const n = Buffer.byteLength(text);
  if (n > limits.maxPromptBytes) throw tooLarge('bytes', n, limits);
  const ids = tok.encode(text);
  checkTokens(ids, session.config.vocabSize, 'prompt');
  return ids;
}

function checkIds(ids: number[], session: Session, limits: ServeLimits): number[] {
  if (ids.length > limits.maxPromptBytes) throw tooLarge('token ids', ids.length, limits);
  checkTokens(ids, session.config.vocabSize, 'prompt');
  return ids;
}
