/**
 * `rwkvc bench --serve`: the OpenAI-compatible server (driver/serve/) under 1, 4, 16… concurrent clients,
 * in one process and one run: requests/s and aggregate generated tokens/s at each level, against the
 * one-client level measured in the same run (continuous batching should raise tokens/s with clients,
 * since a batch step streams the weights once for every request in it). Clients send whole (non-streamed)
 * completions over HTTP on 127.0.0.1, token-id prompts (so no vocabulary file is needed; replies are
 * detokenized with a stand-in vocabulary: the 256 bytes, then `t<id> ` pieces), sampled at temperature 1 with a seed each.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { load } from '../driver/load.ts';
import { createServer } from '../driver/serve/server.ts';
import type { WeightDType } from '../kernels/plan.ts';
import { UserError } from '../kernels/errors.ts';
import { WorldTokenizer } from '../runtime/world-tokenizer.ts';
import { lineSpec, concatSpec, renderSvg, type Point } from './plot.ts';

export interface ServeBenchOptions {
  checkpoint: string;
  /** Name in the report (the preset, or the checkpoint path). */
  model: string;
  target: string;
  weights: WeightDType;
  threads?: number;
  /** Concurrent client counts; 1 is always measured too (the baseline). */
  clients: number[];
  /** Tokens each reply may have (max_tokens). */
  maxTokens: number;
  promptTokens: number;
  /** Requests each client sends, one after another. */
  requestsPerClient: number;
  onProgress?: (phase: string, done: number, total: number) => void;
}

export interface ServeLevel {
  clients: number;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  tokensPerSecond: number;
  /** tokensPerSecond over the one-client level's. */
  vsOneClient: number;
  /** Mean sequences per decode step while this level ran. */
  meanBatch: number;
  latencyP50Ms: number;
}

export interface ServeBenchReport {
  model: string; target: string; weights: string; threads: number; machine: string;
  promptTokens: number; maxTokens: number; requestsPerClient: number; levels: ServeLevel[];
}

/** A stand-in vocabulary: ids 1..256 the single bytes (as in the World vocabulary), then token i is `t<i> `. */
function standInTokenizer(size: number): WorldTokenizer {
  const enc = new TextEncoder();
  return new WorldTokenizer(new Map(Array.from({ length: size - 1 }, (_, i) =>
    [i + 1, i < 256 ? Uint8Array.of(i) : enc.encode(`t${i + 1} `)])), 'stand-in vocabulary');
}

/** "CPU model, N cores; flags: …" (the SIMD flags that matter for the WASM kernels). */
function machineLine(): string {
  let model = 'unknown CPU', flags: string[] = [];
  if (existsSync('/proc/cpuinfo')) {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1] ?? model;
    flags = (/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/).filter((f) => /^(sse4_2|avx|avx2|fma|f16c|avx512f|avx512bw|avx512_vnni|avx_vnni)$/.test(f));
  }
  return `${model}, ${availableParallelism()} cores; flags: ${flags.join(' ')}`;
}

export async function benchServe(o: ServeBenchOptions): Promise<ServeBenchReport> {
  const levels = [...new Set([1, ...o.clients])].sort((a, b) => a - b);
  const most = levels.at(-1)!;
  const session = await load(o.checkpoint, {
    target: o.target, weights: o.weights, threads: o.threads, vocab: standInTokenizer(65536), batch: most, onProgress: o.onProgress,
  });
  const V = session.config.vocabSize;
  const { app, scheduler } = createServer({ session, modelId: 'bench', maxConcurrent: most, maxTokens: o.maxTokens, timeoutMs: 3_600_000 });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  let sent = 0;
  const request = async (): Promise<{ tokens: number; ms: number }> => {
    const k = sent++;
    const prompt = Array.from({ length: o.promptTokens }, (_, i) => 1 + ((k * 7919 + i * 104729) % (V - 1)));
    const t0 = performance.now();
    const r = await fetch(`${url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bench', prompt, max_tokens: o.maxTokens, temperature: 1, seed: k }),
    });
    const body = await r.json() as { usage?: { completion_tokens: number }; error?: { message: string } };
    if (!r.ok || !body.usage) throw new Error(`bench --serve: the server answered ${r.status}: ${body.error?.message ?? 'no usage'}`);
    return { tokens: body.usage.completion_tokens, ms: performance.now() - t0 };
  };
  try {
    await request(); // warm-up: first runs of each program
    const out: ServeLevel[] = [];
    const total = levels.reduce((n, c) => n + c * o.requestsPerClient, 0);
    let done = 0;
    for (const c of levels) {
      const before = { ...scheduler.stats };
      const t0 = performance.now();
      const results = (await Promise.all(Array.from({ length: c }, async () => {
        const mine: { tokens: number; ms: number }[] = [];
        for (let i = 0; i < o.requestsPerClient; i++) {
          mine.push(await request());
          o.onProgress?.('serve', ++done, total);
        }
        return mine;
      }))).flat();
      const seconds = (performance.now() - t0) / 1000;
      const tokens = results.reduce((n, r) => n + r.tokens, 0);
      const lat = results.map((r) => r.ms).sort((a, b) => a - b);
      const steps = scheduler.stats.steps - before.steps;
      out.push({
        clients: c, requests: results.length, seconds, requestsPerSecond: results.length / seconds, tokensPerSecond: tokens / seconds,
        vsOneClient: 0, meanBatch: steps ? (scheduler.stats.decoded - before.decoded) / steps : 0, latencyP50Ms: lat[lat.length >> 1],
      });
    }
    for (const l of out) l.vsOneClient = l.tokensPerSecond / out[0].tokensPerSecond;
    return {
      model: o.model, target: o.target, weights: o.weights, threads: o.threads ?? availableParallelism(), machine: machineLine(),
      promptTokens: o.promptTokens, maxTokens: o.maxTokens, requestsPerClient: o.requestsPerClient, levels: out,
    };
  } finally {
    await app.close();
    session.model.dispose();
  }
}

export function formatServe(r: ServeBenchReport): string {
  const lines = [
    `serve: ${r.model} on ${r.target}, weights ${r.weights}, ${r.threads} thread(s); prompts of ${r.promptTokens} tokens, replies up to ${r.maxTokens} tokens, ${r.requestsPerClient} requests per client`,
    `machine: ${r.machine}`,
    'clients  requests  req/s    tokens/s  vs 1 client  mean batch  p50 latency',
  ];
  for (const l of r.levels)
    lines.push(`${String(l.clients).padStart(7)}  ${String(l.requests).padStart(8)}  ${l.requestsPerSecond.toFixed(2).padStart(6)}  ${l.tokensPerSecond.toFixed(1).padStart(9)}  ` +
      `${`${l.vsOneClient.toFixed(2)}×`.padStart(11)}  ${l.meanBatch.toFixed(1).padStart(10)}  ${`${(l.latencyP50Ms / 1000).toFixed(2)} s`.padStart(11)}`);
  return lines.join('\n');
}

export async function serveSvg(r: ServeBenchReport): Promise<string> {
  const series = `${r.model}, ${r.target} ${r.weights}`;
  const pts = (f: (l: ServeLevel) => number): Point[] => r.levels.map((l) => ({ x: l.clients, y: f(l), series }));
  return renderSvg(concatSpec([
    lineSpec('rwkvc serve: aggregate generated tokens/s', 'concurrent clients', 'tokens/s', pts((l) => l.tokensPerSecond)),
    lineSpec('rwkvc serve: requests/s', 'concurrent clients', 'requests/s', pts((l) => l.requestsPerSecond)),
  ]));
}

/** `--clients 1,4,16`: whole numbers ≥ 1. */
export function parseClients(s: string): number[] {
  const list = s.split(',').map((x) => x.trim());
  if (!list.every((x) => /^\d+$/.test(x) && Number(x) >= 1 && Number(x) <= 256))
    throw new UserError(`--clients: expected a comma list of client counts in 1..256, e.g. 1,4,16; got '${s.slice(0, 60)}'`);
  return list.map(Number);
}
