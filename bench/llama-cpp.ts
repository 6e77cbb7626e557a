/**
 * llama.cpp as a peer measured in the same run: the same checkpoint, exported to GGUF
 * (runtime/checkpoint/gguf-write.ts) in the same weight format, run by ggml's CPU kernels through
 * node-llama-cpp's prebuilt binaries (a devDependency: `npm i -E node-llama-cpp@3.21.1` elsewhere).
 * ggml is also what rwkv.cpp, the issue's reference, runs on.
 *
 * A decode step is one token in with logits out and a greedy pick (the pick is a ~30 µs argmax over
 * the vocabulary in ggml's sampler, left in because without a sampled token node-llama-cpp asks for
 * no logits and llama.cpp would skip the head); prefill is one batch whose last row has logits.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Token } from 'node-llama-cpp';
import { basename, dirname, join } from 'node:path';
import type { WeightDType } from '../kernels/plan.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { writeGguf, type GgufFormat } from '../runtime/checkpoint/gguf-write.ts';

/** The GGUF storage of each of our weight formats: the same bytes per weight (int8 is Q8_0 everywhere, q4_0/q4_1 ggml's own). */
export const GGUF_WEIGHTS: Record<WeightDType, GgufFormat> = { f32: 'f32', bf16: 'bf16', f16: 'f16', int8: 'q8_0', q4_0: 'q4_0', q4_1: 'q4_1' };

export interface PeerSession {
  /** e.g. "llama.cpp v0.4.0 (node-llama-cpp 3.21.1; SSE3 SSSE3 AVX AVX2 F16C FMA …)": the CPU features ggml was built with */
  name: string;
  weights: string;
  /** Decode `n` tokens from a fresh state; the time of each, ms. */
  decodeRound(n: number): Promise<number[]>;
  /** Prefill `n` tokens from a fresh state (logits for the last); ms. */
  prefill(n: number): Promise<number>;
  /**
   * The longest prompt this peer is timed on, when shorter than the bench's: a peer far slower than ours
   * (wllama's 16-bit and 4-bit prefill in a browser) would otherwise take most of a sweep's time. Ours is then
   * also timed on a prompt of that length, and the two are compared at the same length.
   */
  prefillCap?: number;
  dispose(): Promise<void>;
}

/** The version in the package.json above a package's entry file. */
function packageVersion(entry: string): string {
  for (let d = dirname(entry); d !== dirname(d); d = dirname(d)) {
    const f = join(d, 'package.json');
    if (existsSync(f)) {
      const pkg = JSON.parse(readFileSync(f, 'utf8'));
      if (pkg.name === 'node-llama-cpp') return pkg.version;
    }
  }
  return '?';
}

/** node-llama-cpp's module, or why it cannot be used. */
async function loadBinding(): Promise<{ mod: typeof import('node-llama-cpp'); version: string } | { unavailable: string }> {
  try {
    const mod = await import('node-llama-cpp');
    return { mod, version: packageVersion(fileURLToPath(import.meta.resolve('node-llama-cpp'))) };
  } catch (e) {
    return { unavailable: `node-llama-cpp is not installed (${(e as Error).message.split('\n')[0]}); npm i -E node-llama-cpp@3.21.1 adds llama.cpp as a peer` };
  }
}

/**
 * A GGUF copy of `checkpoint` in `weights`, written once into `cacheDir` (named by the checkpoint's
 * name, size and time, so a changed checkpoint gets a new copy).
 */
export function ggufFor(checkpoint: string, cfg: ModelConfig, read: (n: string) => Float32Array, weights: GgufFormat, cacheDir: string, onLayer?: (done: number, total: number) => void): string {
  const st = statSync(checkpoint);
  const path = join(cacheDir, `${basename(checkpoint).replace(/\.[^.]*$/, '')}-${st.size}-${Math.round(st.mtimeMs)}.${weights}.gguf`);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    writeGguf(path, cfg, read, weights, { name: basename(checkpoint), onLayer });
  }
  return path;
}

/** Open llama.cpp on `gguf` with `threads` threads, or say why it is not available. */
export async function openLlamaCpp(gguf: string, weights: GgufFormat, threads: number, vocabSize: number, gpu: false | 'cuda' | 'vulkan' = false): Promise<PeerSession | { unavailable: string }> {
  const b = await loadBinding();
  if ('unavailable' in b) return b;
  // a binary that does not run here, or a model llama.cpp refuses (a shape its RWKV-6 graph lacks), is a
  // missing peer, not a failed benchmark
  let llama, model, context, devices: string[] = [];
  try {
    llama = await b.mod.getLlama({ gpu, build: 'never', logLevel: b.mod.LlamaLogLevel.error, maxThreads: threads });
    // with no device ggml would run every layer on the CPU under the GPU build's name
    if (gpu && !(devices = await llama.getGpuDeviceNames()).length) throw new Error(`llama.cpp's ${gpu} backend found no device`);
    model = await llama.loadModel({ modelPath: gguf, ...(gpu ? { gpuLayers: 'max' as const } : {}) });
    context = await model.createContext({ contextSize: 2048, batchSize: 512, threads, sequences: 1 });
  } catch (e) {
    await model?.dispose();
    await llama?.dispose();
    return { unavailable: `llama.cpp could not run ${gguf}: ${(e as Error).message.split('\n')[0]}` };
  }
  const seq = context.getSequence();
  let r = 12345;
  const token = () => (1 + ((r = (Math.imul(r, 1103515245) + 12345) >>> 0) % (vocabSize - 1))) as Token;
  const pick = { generateNext: { token: true, options: { temperature: 0 } } } as const;
  const features = llama.systemInfo.replace(/^CPU\s*:\s*/, '').split('|').map((s) => s.trim()).filter((s) => /= 1$/.test(s)).map((s) => s.replace(/\s*=\s*1$/, ''));
  return {
    name: `llama.cpp ${llama.llamaCppRelease.release}${gpu ? ` ${gpu} on ${devices.join(', ')}` : ''} (node-llama-cpp ${b.version}; ${features.join(' ')})`,
    weights: weights.toUpperCase(),
    async decodeRound(n) {
      await seq.clearHistory();
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await seq.controlledEvaluate([[token(), pick]]);
        times.push(performance.now() - t0);
      }
      return times;
    },
    async prefill(n) {
      await seq.clearHistory();
      const prompt = Array.from({ length: n }, token);
      const t0 = performance.now();
      await seq.controlledEvaluate([...prompt.slice(0, -1), [prompt[n - 1], pick]]);
      return performance.now() - t0;
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

/**
 * llama.cpp's log-probabilities for every position of `tokens` on `gguf` (one row of `vocab` per token,
 * from a fresh state, all tokens in one batch): `rwkvc logits --target llama.cpp`. node-llama-cpp hands out
 * the softmax of the logits (its sampler at temperature 1, no truncation), not the logits, so each row
 * is log p = logit − logsumexp(logits): the logits up to one constant per row, which every comparison
 * here (max |Δ| after log-softmax, top-1, log-prob of the next token) is blind to. A probability that
 * underflows f32 (a logit ~87 below the row's largest) comes back as −Infinity.
 */
export async function llamaCppLogits(gguf: string, tokens: Int32Array, vocab: number, threads = 1): Promise<{ logprobs: Float32Array; name: string } | { unavailable: string }> {
  const b = await loadBinding();
  if ('unavailable' in b) return b;
  let llama, model, context;
  try {
    llama = await b.mod.getLlama({ gpu: false, build: 'never', logLevel: b.mod.LlamaLogLevel.error, maxThreads: threads });
    model = await llama.loadModel({ modelPath: gguf });
    context = await model.createContext({ contextSize: Math.max(64, tokens.length + 1), batchSize: Math.max(64, tokens.length), threads, sequences: 1 });
  } catch (e) {
    await model?.dispose();
    await llama?.dispose();
    return { unavailable: `llama.cpp could not run ${gguf}: ${(e as Error).message.split('\n')[0]}` };
  }
  try {
    const opts = { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } } as const;
    const res = await context.getSequence().controlledEvaluate(Array.from(tokens, (t) => [t as Token, opts] as const));
    const out = new Float32Array(tokens.length * vocab);
    res.forEach((r, t) => {
      const p = r?.next?.probabilities;
      if (!p) throw new Error(`llama.cpp gave no probabilities for position ${t}`);
      for (let i = 0; i < vocab; i++) out[t * vocab + i] = Math.log(p.get(i as Token) ?? 0);
    });
    return { logprobs: out, name: `llama.cpp ${llama.llamaCppRelease.release} (node-llama-cpp ${b.version})` };
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}
