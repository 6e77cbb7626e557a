/**
 * How far a reduced weight format moves a model's outputs from its f32 run, and the same for llama.cpp on
 * the GGUF export (the README's Accuracy table, and test/q4.test.ts's asserted bounds on the fixtures):
 *
 *   rel    max |Δlogit| / max |logit of the f32 run|, over every position and vocabulary entry
 *   top1   the fraction of positions whose largest logit is the f32 run's
 *   dlp    mean over positions t < T−1 of log p_f32(x[t+1]) − log p(x[t+1]): the log of the perplexity
 *          ratio on the sequence itself (> 0: the reduced format predicts it worse)
 *   lsm    max |Δ log-softmax| / max |logit of the f32 run|: rel without the per-row constant, the
 *          measure that can compare with llama.cpp (whose binding gives probabilities, not logits)
 *   rms    the root mean square of Δ log-softmax over all entries, / max |logit|: the typical error
 *          (max picks one entry of T·V, so it is noisy when two formats are close)
 *
 *   npx tsx bench/accuracy.ts --model M [--preset P [--layers L] --seed S] [--tokens N] [--target wasm] [--threads 2]
 *                             [--formats int8,q4_0,q4_1] [--llama q4_0,q4_1] [--sequences N]
 *
 * With --preset a seeded random checkpoint of that shape (--layers: only its first L layers, e.g. finch-1b6's
 * width and vocabulary where its f32 run would not fit a wasm32 memory) is written to out/cache/ (f32, so
 * the f32 run is the checkpoint's own values). Tokens are seeded uniform ids: the dlp of a random model on random ids
 * measures how much the format moves the distribution, not language-model quality.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WeightDType } from '../kernels/plan.ts';
import { loadTargetForModel } from '../driver/load.ts';
import { DEFAULT_DSL } from '../driver/dsl.ts';
import { initialState, openModel, type OpenModel } from '../runtime/model.ts';
import { runTokens } from '../runtime/run-tokens.ts';
import { PRESETS } from '../runtime/presets.ts';
import { seededRandom, writeRandomModel } from '../runtime/random-model.ts';
import { GGUF_WEIGHTS, ggufFor, llamaCppLogits } from './llama-cpp.ts';

export interface Accuracy { rel: number; top1: number; dlp: number; lsm: number; rms: number }

/** Row-wise log-softmax (f64 sums). Rows that are already log-probabilities come back unchanged (up to rounding). */
export function logSoftmax(x: Float32Array, V: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / V; r++) {
    let m = -Infinity, z = 0;
    for (let i = 0; i < V; i++) m = Math.max(m, x[r * V + i]);
    for (let i = 0; i < V; i++) z += Math.exp(x[r * V + i] - m);
    const lz = m + Math.log(z);
    for (let i = 0; i < V; i++) out[r * V + i] = x[r * V + i] - lz;
  }
  return out;
}

/** `got` against `ref` (both [T, V] logits or log-probabilities), on the sequence `tokens`; `scale` = max |logit| of the f32 run. */
export function compare(got: Float32Array, ref: Float32Array, tokens: Int32Array, V: number, scale = maxAbs(ref)): Accuracy {
  const T = tokens.length, a = logSoftmax(got, V), b = logSoftmax(ref, V);
  let rel = 0, lsm = 0, top1 = 0, dlp = 0, ss = 0, n = 0;
  for (let t = 0; t < T; t++) {
    let ia = 0, ib = 0;
    for (let i = 0; i < V; i++) {
      const k = t * V + i;
      rel = Math.max(rel, Math.abs(got[k] - ref[k]));
      // entries llama.cpp rounds to p = 0 (−∞) are left out of lsm: no finite bound holds for them
      if (Number.isFinite(a[k]) && Number.isFinite(b[k])) { lsm = Math.max(lsm, Math.abs(a[k] - b[k])); ss += (a[k] - b[k]) ** 2; n++; }
      if (got[k] > got[t * V + ia]) ia = i;
      if (ref[k] > ref[t * V + ib]) ib = i;
    }
    if (ia === ib) top1++;
    if (t + 1 < T) dlp += b[t * V + tokens[t + 1]] - a[t * V + tokens[t + 1]];
  }
  return { rel: rel / scale, top1: top1 / T, dlp: dlp / Math.max(1, T - 1), lsm: lsm / scale, rms: Math.sqrt(ss / Math.max(1, n)) / scale };
}

export function maxAbs(v: Float32Array): number {
  let m = 0;
  for (const x of v) if (Number.isFinite(x)) m = Math.max(m, Math.abs(x));
  return m;
}

/** Seeded uniform token ids. */
export function seededTokens(n: number, vocab: number, seed = 7): Int32Array {
  const rnd = seededRandom(seed);
  return Int32Array.from({ length: n }, () => Math.floor(rnd() * vocab));
}

/** Logits of every position of `tokens` on `target` with weights stored as `weights` (seq mode, from the model's initial state). */
export async function ourLogits(model: OpenModel, tokens: Int32Array, target: string, weights: WeightDType, threads?: number): Promise<Float32Array> {
  const m = await loadTargetForModel(target, model, { dsl: DEFAULT_DSL, weights, threads, logits: 'all' });
  try {
    const init = initialState(model);
    if (init) await m.writeState(init);
    return await runTokens(m, tokens, { kind: 'seq' }, model.config.vocabSize);
  } finally {
    m.dispose();
  }
}

/** llama.cpp's log-probabilities on the GGUF export of `path` in `weights` (cached in `cacheDir`), or why not. */
export async function llamaLogits(path: string, model: OpenModel, tokens: Int32Array, weights: WeightDType, cacheDir: string, threads = 1): Promise<Float32Array | { unavailable: string }> {
  const gguf = ggufFor(path, model.config, model.read, GGUF_WEIGHTS[weights], cacheDir);
  const r = await llamaCppLogits(gguf, tokens, model.config.vocabSize, threads);
  return 'unavailable' in r ? r : r.logprobs;
}

const fmt = (a: Accuracy) => `${(100 * a.rel).toFixed(2)}% | ${(100 * a.top1).toFixed(1)}% | ${a.dlp.toFixed(4)} | ${(100 * a.lsm).toFixed(2)}% | ${(100 * a.rms).toFixed(3)}%`;

async function main(): Promise<void> {
  const arg = (k: string, d: string) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? process.argv[i + 1] : d; };
  const cache = join('out', 'cache');
  let path = arg('model', '');
  const preset = arg('preset', '');
  if (preset) {
    if (!PRESETS[preset]) throw new Error(`no preset ${preset}`);
    const cfg = { ...PRESETS[preset], nLayer: Number(arg('layers', String(PRESETS[preset].nLayer))) };
    path = join(cache, `accuracy-${preset}-L${cfg.nLayer}-seed${arg('seed', '1')}.safetensors`);
    if (!existsSync(path)) { mkdirSync(cache, { recursive: true }); writeRandomModel(path, cfg, Number(arg('seed', '1')), 'f32'); }
  }
  const model = openModel(path);
  const V = model.config.vocabSize, target = arg('target', 'wasm'), threads = Number(arg('threads', '2'));
  const formats = arg('formats', 'int8,q4_0,q4_1').split(',').filter(Boolean) as WeightDType[];
  const llama = arg('llama', '').split(',').filter(Boolean) as WeightDType[];
  const sequences = Number(arg('sequences', '1')), ratios: Record<string, number[]> = {};
  const t0 = performance.now();
  // --sequences N: N seeded sequences (seeds 7, 8, …), each from the zero state; the rms ratio of ours to
  // llama.cpp's per sequence shows whether a difference between them is systematic or the sequence's
  for (let seed = 7; seed < 7 + sequences; seed++) {
    const tokens = seededTokens(Number(arg('tokens', '256')), V, seed);
    const f32 = await ourLogits(model, tokens, target, 'f32', threads);
    const scale = maxAbs(f32), ours: Partial<Record<WeightDType, Accuracy>> = {};
    console.log(`${path}: L${model.config.nLayer} C${model.config.nEmbd} V${V}, ${tokens.length} seeded tokens (seed ${seed}), ${target} ${threads} threads; max |logit| ${scale.toFixed(3)}`);
    console.log('| storage | max \\|Δlogit\\| / max \\|logit\\| | top-1 | mean Δ log p | max \\|Δ log-softmax\\| | rms Δ log-softmax |');
    for (const w of formats) console.log(`| rwkvc ${w} | ${fmt(ours[w] = compare(await ourLogits(model, tokens, target, w, threads), f32, tokens, V, scale))} |`);
    if (!llama.length) continue;
    const lf32 = await llamaLogits(path, model, tokens, 'f32', cache, threads);
    if ('unavailable' in lf32) { console.log(lf32.unavailable); continue; }
    console.log(`| llama.cpp f32 vs rwkvc f32 | ${fmt(compare(lf32, f32, tokens, V, scale))} |`);
    for (const w of llama) {
      const l = await llamaLogits(path, model, tokens, w, cache, threads);
      if ('unavailable' in l) continue;
      const theirs = compare(l, lf32, tokens, V, scale);
      console.log(`| llama.cpp ${GGUF_WEIGHTS[w]} vs llama.cpp f32 | ${fmt(theirs)} |`);
      if (ours[w]) (ratios[w] ??= []).push(ours[w].rms / theirs.rms);
    }
  }
  for (const [w, r] of Object.entries(ratios))
    console.log(`rms Δ log-softmax, rwkvc ${w} / llama.cpp ${GGUF_WEIGHTS[w as WeightDType]} over ${r.length} sequence(s): ${r.map((x) => x.toFixed(4)).join(' ')}; ` +
      `mean ${(r.reduce((a, b) => a + b, 0) / r.length).toFixed(4)}, ours lower in ${r.filter((x) => x < 1).length}`);
  console.log(`(${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  model.close();
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
