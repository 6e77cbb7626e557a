/**
 * The claim RWKV exists for, measured (`rwkvc bench --context`): decode ms/token and the memory a
 * sequence holds at context positions 1, 256, 1k, 4k, 16k, for
 *   (a) our RWKV-6 on the WASM target: prefill (chunks of the plan's prefill program) up to position P,
 *       then time decode steps; its memory is the state, whose bytes are read back from the model;
 *   (b) a transformer of the same width, depth, feed-forward size and vocabulary (a seeded random
 *       LLaMA GGUF, runtime/checkpoint/gguf-llama.ts) in llama.cpp in the same process, flash attention
 *       on and off: batch prefill to P, then decode steps; its memory is the sequence's saved state
 *       (llama_state_seq: the KV cells in use), measured by saving it.
 * Nothing here is a formula: every time and every byte count comes from running the model.
 *
 * Positions are reached cumulatively (prefill to 1, time, prefill on to 256, …), so the largest
 * position's prefill is paid once; the timed decode steps move the position on by their count.
 *
 * Cost: that one prefill per implementation, twice for the transformer: flash attention on and off keep V
 * in different layouts, and llama.cpp refuses one's saved sequence in the other ("incompatible V
 * transposition"), so each context prefills its own. Measured in CPU-seconds at 1 thread on bench-0.1b
 * (f32, AVX-512 host): rwkvc ~4.9 ms/token; the LLaMA ~3.9 ms/token + 0.9 µs per token already in context
 * (flash attention on), ~4.6 ms + 1.2 µs (off); so to 16k about 80 + 180 + 240 s, plus ~1 min of start-up
 * and decode steps: ~9 minutes at 1 thread, ~5 at 2 on a quiet 2-core machine.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { machineLine } from './bandwidth.ts';
import { UserError } from '../kernels/errors.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KernelPlan } from '../kernels/plan.ts';
import type { WeightProvider } from '../targets/backend.ts';
import { compileWasm } from '../targets/wasm/codegen.ts';
import { loadWasmArtifact } from '../targets/wasm/runtime.ts';
import type { GgufWeights } from '../runtime/checkpoint/gguf-write.ts';

export interface ContextRow {
  /** e.g. "rwkvc RWKV-6 (wasm, 2T)", "llama.cpp LLaMA, flash attention on" */
  impl: string;
  /** Tokens in the context when the timed decode steps started. */
  position: number;
  /** Median of the timed decode steps, and their quartiles (the spread a loaded machine adds). */
  msPerToken: number;
  msQ1: number;
  msQ3: number;
  /** msPerToken over this implementation's at the first position: the trend, in a unit load cannot shift much. */
  vsFirst: number;
  /** Timed decode steps. */
  samples: number;
  /** What the sequence holds: RWKV's state, or the transformer's used KV cells (+ its small header). */
  memoryBytes: number;
  /** Time spent prefilling from the previous position to this one, and how many tokens that was. */
  prefillMs: number;
  prefillTokens: number;
}

export interface ContextBenchOptions {
  contexts: number[];
  /** Timed decode steps per position (median). */
  decode?: number;
  threads: number;
  onProgress?: (phase: string, done: number, total: number) => void;
}

/** The q-quantile of `a` (nearest rank). */
const quantile = (a: number[], q: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(q * a.length))];
const token = (V: number, i: number) => 1 + ((i * 7919) % (V - 1));

/** One implementation, driven position by position. */
export interface ContextSubject {
  impl: string;
  /** Tokens fed so far. */
  position(): number;
  /** Prefill from the current position up to `P`. */
  prefillTo(P: number): Promise<void>;
  /** Decode `n` tokens; the time of each, ms. */
  decodeRound(n: number): Promise<number[]>;
  /** Bytes the sequence holds now (measured). */
  memoryBytes(): Promise<number>;
  dispose(): Promise<void>;
}

/** (a): our RWKV-6, compiled from `plan`, on the WASM target. */
export async function rwkvSubject(plan: KernelPlan, weights: WeightProvider, threads: number): Promise<ContextSubject> {
  const m = await loadWasmArtifact(compileWasm(plan), weights, { threads });
  const V = plan.config.vocabSize, chunk = plan.prefill.maxT;
  let pos = 0;
  const feed = (n: number) => { const t = Int32Array.from({ length: n }, (_, i) => token(V, pos + i)); pos += n; return t; };
  // warm-up (tier-up of both programs), then start over from the zero state
  m.runSync('prefill', feed(Math.min(chunk, 16)));
  for (let i = 0; i < 4; i++) m.runSync('decode', feed(1));
  await m.writeState(Object.fromEntries(Object.entries(await m.readState()).map(([k, v]) => [k, new Float32Array(v.length)])));
  pos = 0;
  return {
    impl: `rwkvc RWKV-6 (wasm ${m.variant}, ${threads}T)`,
    position: () => pos,
    async prefillTo(P) { while (pos < P) m.runSync('prefill', feed(Math.min(chunk, P - pos))); },
    async decodeRound(n) {
      const times: number[] = [];
      for (let i = 0; i < n; i++) { const t = feed(1), s = performance.now(); m.runSync('decode', t); times.push(performance.now() - s); }
      return times;
    },
    // the state is everything a sequence holds between tokens: its size read back from the model
    memoryBytes: async () => Object.values(await m.readState()).reduce((s, v) => s + v.byteLength, 0),
    async dispose() { m.dispose(); },
  };
}

type LlamaModel = import('node-llama-cpp').LlamaModel;

/** The LLaMA GGUF loaded once in llama.cpp (both flash-attention contexts share its weights); or why not. */
async function openLlamaModel(gguf: string, threads: number): Promise<{ model: LlamaModel; dispose(): Promise<void> } | { unavailable: string }> {
  let mod: typeof import('node-llama-cpp');
  try { mod = await import('node-llama-cpp'); } catch (e) { return { unavailable: `node-llama-cpp is not installed (${(e as Error).message.split('\n')[0]})` }; }
  let llama;
  try {
    llama = await mod.getLlama({ gpu: false, build: 'never', logLevel: mod.LlamaLogLevel.error, maxThreads: threads });
    const model = await llama.loadModel({ modelPath: gguf });
    return { model, async dispose() { await model.dispose(); await llama!.dispose(); } };
  } catch (e) {
    await llama?.dispose();
    return { unavailable: `llama.cpp could not load ${gguf}: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** (b): the LLaMA in llama.cpp, flash attention on or off, with room for `contextSize` tokens; or why it could not run. */
export async function llamaSubject(model: LlamaModel, weights: GgufWeights, vocabSize: number, flashAttention: boolean, threads: number, contextSize: number): Promise<ContextSubject | { unavailable: string }> {
  let context;
  try {
    context = await model.createContext({ contextSize, batchSize: 512, threads, sequences: 1, flashAttention });
  } catch (e) {
    return { unavailable: `llama.cpp could not make a ${contextSize}-token context (flash attention ${flashAttention ? 'on' : 'off'}): ${(e as Error).message.split('\n')[0]}` };
  }
  const seq = context.getSequence();
  const pick = { generateNext: { token: true, options: { temperature: 0 } } } as const;
  let pos = 0;
  const toks = (n: number) => { const t = Array.from({ length: n }, (_, i) => token(vocabSize, pos + i) as import('node-llama-cpp').Token); pos += n; return t; };
  const decodeRound = async (n: number) => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) { const t = toks(1), s = performance.now(); await seq.controlledEvaluate([[t[0], pick]]); times.push(performance.now() - s); }
    return times;
  };
  // warm-up: a batch and a few steps (the first calls build and reserve ggml's graphs), then start over
  await seq.evaluateWithoutGeneratingNewTokens(toks(64));
  await decodeRound(4);
  await seq.clearHistory();
  pos = 0;
  const dir = mkdtempSync(join(tmpdir(), 'rwkvc-ctx-'));
  return {
    impl: `llama.cpp LLaMA ${weights.toUpperCase()}, flash attention ${flashAttention ? 'on' : 'off'} (${threads}T)`,
    position: () => pos,
    // batches of 2048 tokens (llama.cpp splits them into its 512-token batches)
    async prefillTo(P) { while (pos < P) await seq.evaluateWithoutGeneratingNewTokens(toks(Math.min(2048, P - pos))); },
    decodeRound,
    // the sequence's state as llama.cpp saves it (llama_state_seq: the KV cells in use, plus a small header)
    async memoryBytes() {
      const file = join(dir, 'seq.bin');
      const { fileSize } = await seq.saveStateToFile(file);
      rmSync(file, { force: true });
      return fileSize;
    },
    async dispose() {
      await context.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Every subject at every position. At each position all are prefilled to it, then decode in turns
 * (`rounds` rounds of `perRound` steps each, subject after subject): a machine whose load drifts
 * (other tenants) slows all of them in the same windows, so their ratios hold even when the absolute
 * times move.
 */
export async function runContext(subjects: ContextSubject[], contexts: number[], rounds = 4, perRound = 4, onProgress?: (phase: string, done: number, total: number) => void): Promise<ContextRow[]> {
  const rows: ContextRow[] = [];
  const last = Math.max(...contexts);
  for (const P of [...contexts].sort((a, b) => a - b)) {
    const start = subjects.map((s) => ({ from: s.position(), ms: 0, position: 0, times: [] as number[] }));
    for (const [i, s] of subjects.entries()) {
      onProgress?.(`prefill ${s.impl} to`, Math.min(P, last), last);
      const t0 = performance.now();
      await s.prefillTo(P);
      start[i].ms = performance.now() - t0;
      start[i].position = s.position();
    }
    onProgress?.('decode rounds at', P, last);
    for (let r = 0; r < rounds; r++) for (const [i, s] of subjects.entries()) start[i].times.push(...await s.decodeRound(perRound));
    for (const [i, s] of subjects.entries()) {
      const t = start[i].times, ms = quantile(t, 0.5);
      const first = rows.find((x) => x.impl === s.impl)?.msPerToken ?? ms;
      rows.push({
        impl: s.impl, position: start[i].position, msPerToken: ms, msQ1: quantile(t, 0.25), msQ3: quantile(t, 0.75), vsFirst: ms / first, samples: t.length,
        memoryBytes: await s.memoryBytes(), prefillMs: start[i].ms, prefillTokens: start[i].position - start[i].from,
      });
    }
  }
  return rows;
}

/** Parse "1,256,1k,4k,16k" (k = 1024). */
export function parseContexts(s: string): number[] {
  const out = s.split(',').map((x) => x.trim()).map((x) => {
    const m = /^(\d{1,6})(k?)$/i.exec(x);
    const n = m ? Number(m[1]) * (m[2] ? 1024 : 1) : NaN;
    if (!(n >= 1 && n <= 262144)) throw new UserError(`--contexts: '${x.slice(0, 40)}' is not a position from 1 to 256k (e.g. 1,256,1k,4k,16k)`);
    return n;
  });
  return [...new Set(out)].sort((a, b) => a - b);
}

export interface ContextReport {
  machine: string;
  contexts: number[];
  rows: ContextRow[];
  skipped: string[];
}

/**
 * Every implementation at every position, in one process: rwkvc on `plan`, then the LLaMA of the same
 * shape (written once into `cacheDir`) in llama.cpp with flash attention on, then off.
 */
export async function benchContext(plan: KernelPlan, weights: WeightProvider, ggufWeights: GgufWeights, cacheDir: string, o: ContextBenchOptions): Promise<ContextReport> {
  const { writeLlamaGguf } = await import('../runtime/checkpoint/gguf-llama.ts');
  const cfg = plan.config, last = Math.max(...o.contexts), rounds = 4, perRound = Math.max(1, Math.ceil((o.decode ?? 16) / rounds));
  const gguf = join(cacheDir, `llama-L${cfg.nLayer}-C${cfg.nEmbd}-F${cfg.dimFfn}-V${cfg.vocabSize}-H${cfg.headSize}-seed1.${ggufWeights}.gguf`);
  if (!existsSync(gguf)) { mkdirSync(cacheDir, { recursive: true }); o.onProgress?.('random LLaMA GGUF', 0, 1); writeLlamaGguf(gguf, cfg, ggufWeights); }
  const subjects: ContextSubject[] = [], skipped: string[] = [];
  const llama = await openLlamaModel(gguf, o.threads);
  try {
    subjects.push(await rwkvSubject(plan, weights, o.threads));
    // room for every position plus the decode steps timed at each
    const contextSize = last + rounds * perRound * o.contexts.length + 64;
    if ('unavailable' in llama) skipped.push(llama.unavailable);
    else for (const fa of [true, false]) {
      const s = await llamaSubject(llama.model, ggufWeights, cfg.vocabSize, fa, o.threads, contextSize);
      if ('unavailable' in s) skipped.push(s.unavailable); else subjects.push(s);
    }
    return { machine: machineLine(), contexts: o.contexts, rows: await runContext(subjects, o.contexts, rounds, perRound, o.onProgress), skipped };
  } finally {
    for (const s of subjects) await s.dispose();
    if (!('unavailable' in llama)) await llama.dispose();
  }
}

/** The report as a text table: one row per position, one column pair (ms/token, memory) per implementation. */
export function formatContext(r: ContextReport): string {
  const impls = [...new Set(r.rows.map((x) => x.impl))];
  const lines = [`decode ms/token and sequence memory by context position (${r.machine})`];
  for (const impl of impls) {
    lines.push(`  ${impl}`);
    const mine = r.rows.filter((x) => x.impl === impl);
    for (const x of mine)
      lines.push(`    position ${String(x.position).padStart(6)}: ${x.vsFirst.toFixed(2).padStart(5)}× position ${mine[0].position}; ${x.msPerToken.toFixed(2).padStart(8)} ms/token ` +
        `(quartiles ${x.msQ1.toFixed(2)}–${x.msQ3.toFixed(2)} of ${x.samples}), memory ${(x.memoryBytes / 2 ** 20).toFixed(2).padStart(8)} MiB; prefill of ${x.prefillTokens} tokens ${(x.prefillMs / 1000).toFixed(1)} s`);
  }
  for (const s of r.skipped) lines.push(`  skipped: ${s}`);
  return lines.join('\n');
}

/**
 * Three charts against position (log₂ axis), one line per implementation: decode ms/token relative to the
 * first position (the trend), decode ms/token (medians with quartile bars), and the sequence's memory.
 */
export async function contextSvg(r: ContextReport): Promise<string> {
  const { concatSpec, renderSvg } = await import('./plot.ts');
  type Spec = Parameters<typeof concatSpec>[0][number];
  const chart = (title: string, yTitle: string, y: (x: ContextRow) => [number, number, number] | [number]) => ({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title, width: 360, height: 220, background: 'white',
    data: { values: r.rows.map((x) => { const [v, lo, hi] = y(x); return { x: x.position, y: v, lo, hi, series: x.impl }; }) },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: 'tokens in context', scale: { type: 'log', base: 2 } },
      // whole names, one a line: the flash-attention variants differ only at their end
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 1, labelLimit: 0 } },
    },
    layer: [
      { mark: { type: 'line', point: true, tooltip: true }, encoding: { y: { field: 'y', type: 'quantitative', title: yTitle, scale: { zero: true } } } },
      ...(y(r.rows[0]).length > 1 ? [{ mark: { type: 'rule' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } }] : []),
    ],
  }) as unknown as Spec;
  return renderSvg(concatSpec([
    chart('decode ms/token relative to the first position', `× position ${r.contexts[0]}`, (x) => [x.vsFirst, x.msQ1 * x.vsFirst / x.msPerToken, x.msQ3 * x.vsFirst / x.msPerToken]),
    chart('decode ms/token (median; bars: quartiles)', 'ms/token', (x) => [x.msPerToken, x.msQ1, x.msQ3]),
    chart('sequence memory (RWKV state; transformer KV cache in use)', 'MiB', (x) => [x.memoryBytes / 2 ** 20]),
  ]));
}
