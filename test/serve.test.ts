/**
 * `rwkvc serve` (driver/serve/) through the official `openai` npm client as a real client: concurrent
 * streamed chats decoded together in one batch each step, each reply exactly the text a single run gives
 * at temperature 0; whole completions; limits with OpenAI-shaped 4xx errors, after which the server still
 * serves; an aborted stream frees its slot.
 *
 * The model: the finch-tiny fixture's shape with seeded random weights and the World vocabulary's 65536
 * rows (the fixture itself has 256 rows, too few for World-tokenized text).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { FastifyInstance } from 'fastify';
import { load } from '../driver/load.ts';
import { createServer } from '../driver/serve/server.ts';
import type { Scheduler } from '../driver/serve/scheduler.ts';
import { PRESETS } from '../runtime/presets.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import type { Session } from '../runtime/session.ts';

const VOCAB = process.env.RWKVC_VOCAB ?? join(import.meta.dirname, '..', '..', 'shared', 'fixtures', 'rwkv_vocab_v20230424.txt');
const haveVocab = existsSync(VOCAB);
if (!haveVocab) console.warn(`serve.test.ts skipped: no World vocabulary at ${VOCAB} (set RWKVC_VOCAB)`);

const CONCURRENT = 8;
let tmp: string, modelPath: string;
let base: Session;
let app: FastifyInstance, scheduler: Scheduler, client: OpenAI, url: string;

/**
 * What `rwkvc run` prints for `prompt` at temperature 0: its path (Session.generate, one decode call per
 * token, no batch program) on a fresh sequence (test/chat.test.ts checks the command itself against this path).
 */
async function single(prompt: string | number[], maxTokens: number, stop: string[] = []): Promise<string> {
  const s = await base.fork();
  await s.reset();
  let out = '';
  for await (const piece of s.generate(prompt, { temperature: 0, maxTokens, stopStrings: stop })) out += piece;
  return out;
}

const userPrompt = (i: number) => `Tell me about the number ${i}${' and more'.repeat(i)}.`;
const chatText = (i: number) => `User: ${userPrompt(i)}\n\nAssistant:`;

async function health(): Promise<{ active: number; maxBatch: number }> {
  return (await fetch(`${url}/health`)).json();
}

async function until(cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!haveVocab)('rwkvc serve (OpenAI API)', () => {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'rwkvc-serve-'));
    modelPath = join(tmp, 'tiny-world.safetensors');
    writeRandomModel(modelPath, { ...PRESETS['finch-tiny'], vocabSize: 65536 }, 7, 'f32');
    base = await load(modelPath, { target: 'wasm', threads: 1, vocab: VOCAB, batch: CONCURRENT });
    ({ app, scheduler } = createServer({ session: base, modelId: 'tiny', maxConcurrent: CONCURRENT, maxTokens: 400, maxPromptBytes: 4096, timeoutMs: 30_000 }));
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    base?.model.dispose();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it(`${CONCURRENT} concurrent streamed chats, decoded in one batch, each equal to a single run at temperature 0`, async () => {
    // different prompt lengths and max_tokens; the second half starts once the first half is decoding, so
    // requests join the batch mid-flight and leave it at different steps
    const half = CONCURRENT / 2;
    const maxTokens = (i: number) => (i < half ? 24 + i : 4 + 3 * i);
    let started!: () => void;
    const firstHalfDecoding = new Promise<void>((r) => (started = r));
    let decoding = 0;
    const got = await Promise.all(Array.from({ length: CONCURRENT }, async (_, i) => {
      if (i >= half) await firstHalfDecoding;
      const stream = await client.chat.completions.create({
        model: 'tiny', messages: [{ role: 'user', content: userPrompt(i) }], max_tokens: maxTokens(i), temperature: 0, stream: true,
        stream_options: { include_usage: true },
      });
      let text = '', finish: string | null = null, completion = 0, seen = false;
      for await (const c of stream) {
        const piece = c.choices[0]?.delta.content ?? '';
        if (piece && !seen && i < half && ++decoding === half) started();
        if (piece) seen = true;
        text += piece;
        finish = c.choices[0]?.finish_reason ?? finish;
        if (c.usage) completion = c.usage.completion_tokens;
      }
      if (!seen && i < half && ++decoding === half) started(); // a reply with no text at all must not hold the others back
      return { text, finish, completion };
    }));
    for (let i = 0; i < CONCURRENT; i++) {
      const want = await single(chatText(i), maxTokens(i), ['\n\n']);
      expect(got[i].text, `request ${i}`).toBe(want);
      expect(want.length).toBeGreaterThan(0);
      expect(got[i].finish).toMatch(/^(stop|length)$/);
      if (got[i].finish === 'length') expect(got[i].completion).toBe(maxTokens(i));
    }
    // they really were decoded together
    expect((await health()).maxBatch).toBeGreaterThanOrEqual(4);
  }, 60_000);

  it('whole (non-streamed) completions, from text and from token ids', async () => {
    const a = await client.completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 10, temperature: 0 });
    expect(a.choices[0].text).toBe(await single('The capital of France is', 10));
    expect(a.usage).toMatchObject({ completion_tokens: 10, prompt_tokens: base.tokenizer!.encode('The capital of France is').length });
    const ids = [5, 600, 7000, 30000];
    const b = await client.completions.create({ model: 'tiny', prompt: ids, max_tokens: 5, temperature: 0 });
    expect(b.choices[0].text).toBe(await single(ids, 5));
    const c = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: userPrompt(1) }], max_tokens: 7, temperature: 0 });
    expect(c.choices[0].message.content).toBe(await single(chatText(1), 7, ['\n\n']));
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['tiny']);
  }, 30_000);

  it('bad requests get OpenAI-shaped 4xx errors and the server keeps serving', async () => {
    const post = (path: string, body: string) => fetch(`${url}/v1/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const malformed = await post('completions', '{"model": "tiny", "prompt": "hi",');
    expect(malformed.status).toBe(400);
    expect((await malformed.json()).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' });
    const huge = await post('completions', JSON.stringify({ model: 'tiny', prompt: 'x'.repeat(200_000) }));
    expect(huge.status).toBe(413);
    expect((await huge.json()).error.code).toBe('request_too_large');
    const long = await post('completions', JSON.stringify({ model: 'tiny', prompt: 'y'.repeat(5000) }));
    expect(long.status).toBe(413);
    expect((await long.json()).error.message).toMatch(/5000 bytes.*at most 4096 \(--max-prompt-bytes\)/);
    await expect(client.completions.create({ model: 'gpt-4', prompt: 'hi' })).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    await expect(client.completions.create({ model: 'tiny', prompt: 'hi', temperature: 5 })).rejects.toMatchObject({ status: 400, param: 'temperature' });
    await expect(client.completions.create({ model: 'tiny', prompt: 'hi', max_tokens: 401 })).rejects.toMatchObject({ status: 400, param: 'max_tokens' });
    await expect(client.completions.create({ model: 'tiny', prompt: [70000] })).rejects.toMatchObject({ status: 400 });
    await expect(client.completions.create({ model: 'tiny', prompt: 'hi', n: 2 })).rejects.toMatchObject({ status: 400 });
    const notJson = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'model=tiny' });
    expect(notJson.status).toBe(415);
    expect((await fetch(`${url}/v2/nothing`)).status).toBe(404);
    // still serving
    const ok = await client.completions.create({ model: 'tiny', prompt: 'Still there?', max_tokens: 3, temperature: 0 });
    expect(ok.choices[0].text).toBe(await single('Still there?', 3));
  }, 30_000);

  it('429 when every slot is taken; aborted streams free their slots', async () => {
    const streams = await Promise.all(Array.from({ length: CONCURRENT }, async (_, i) => {
      const s = await client.completions.create({ model: 'tiny', prompt: `Story ${i}:`, max_tokens: 400, temperature: 0, stream: true });
      const it = s[Symbol.asyncIterator]();
      await it.next(); // a first token: the request is in the batch
      return s;
    }));
    expect((await health()).active).toBe(CONCURRENT);
    await expect(client.completions.create({ model: 'tiny', prompt: 'one more', max_tokens: 2 })).rejects.toMatchObject({ status: 429 });
    for (const s of streams) s.controller.abort();
    // the slots come free long before 400 tokens could have been generated
    await until(async () => (await health()).active === 0, 5_000);
    const after = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) =>
      client.completions.create({ model: 'tiny', prompt: `After ${i}`, max_tokens: 4, temperature: 0 })));
    for (let i = 0; i < CONCURRENT; i++) expect(after[i].choices[0].text).toBe(await single(`After ${i}`, 4));
  }, 30_000);

  it('a request past --timeout-ms gets 504', async () => {
    const { app: slow } = createServer({ session: base, modelId: 'tiny', timeoutMs: 1 });
    const u = await slow.listen({ host: '127.0.0.1', port: 0 });
    try {
      const r = await fetch(`${u}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'Slow', max_tokens: 200 }) });
      expect(r.status).toBe(504);
      expect((await r.json()).error.code).toBe('timeout');
    } finally {
      await slow.close();
    }
  }, 30_000);
});
