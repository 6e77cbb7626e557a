/**
 * onnxruntime as a peer of `--target wasm`, in the same process and the same run: the same checkpoint
 * exported to ONNX (driver/onnx: the Scan prefill model, logits of the last row; at T = 1 it is the step
 * model's graph plus a one-iteration Scan, measured equal in speed to the step model, so one session per
 * runtime serves decode and prefill and its memory is not counted twice), run by
 *   - onnxruntime-node: native MLAS kernels, CPU execution provider, intraOpNumThreads = our threads;
 *   - onnxruntime-web: its WASM build (SIMD, threads = ort.env.wasm.numThreads = our threads) in Node.
 * Each engine is loaded in turn with its load time and peak memory (the RSS high-water mark, reset
 * through /proc/self/clear_refs before it loads, less the RSS before: what that engine added at its
 * worst while loading and warming up). Then decode rounds take turns (8 × repeats rounds, each engine
 * ≥ 8 tokens per round, medians over all of them) and prefills alternate (best of repeats + 1).
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { KernelPlan } from '../kernels/plan.ts';
import type { TargetModel, WeightProvider } from '../targets/backend.ts';
import type { OpenModel } from '../runtime/model.ts';
import { loadPlan } from '../driver/targets.ts';
import { writeOnnx } from '../driver/onnx/index.ts';
import { createOrtModel } from '../driver/onnx/ort-model.ts';
import { seededRandom } from '../runtime/random-model.ts';
import type { PeerSession } from './llama-cpp.ts';

export interface EngineResult {
  name: string;
  loadMs: number;
  peakMiB: number;
  decode: { msPerToken: number; tokensPerS: number; tokens: number };
  prefill: { ms: number; tokensPerS: number; tokens: number };
}
export interface OrtBenchResult {
  weights: string;
  threads: number;
  engines: EngineResult[];
  /** engines[0] (rwkvc) against each peer: > 1 means rwkvc is faster / lighter. */
  speedups: { peer: string; decode: number; prefill: number; load: number; memory: number }[];
  skipped: string[];
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** /proc/self/status in MiB; clear_refs 5 resets VmHWM to the current RSS (Linux ≥ 4.0). */
const status = (key: 'VmRSS' | 'VmHWM') => {
  try { return Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024; } catch { return NaN; }
};
const resetPeak = () => { try { writeFileSync('/proc/self/clear_refs', '5'); } catch { /* not Linux: peaks read NaN */ } };


/** The export of `model` for the peers, written once into `cacheDir` (named by the checkpoint's size and time). */
export async function onnxFor(model: OpenModel, dsl: string, weights: 'f32' | 'f16', cacheDir: string): Promise<string> {
  const st = statSync(model.path);
  const path = join(cacheDir, `${basename(model.path).replace(/\.[^.]*$/, '')}-${st.size}-${Math.round(st.mtimeMs)}.prefill-last.${weights}.onnx`);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    await writeOnnx(model, dsl, path, { kind: 'prefill', weights, logits: 'last' });
  }
  return path;
}

interface Engine { name: string; model: TargetModel }

/** Load with its time and peak memory, warmed up (a few decode steps and a short prefill). */
async function measureLoad(name: string, load: () => Promise<TargetModel>, V: number): Promise<Engine & { loadMs: number; peakMiB: number }> {
  resetPeak();
  const before = status('VmRSS');
  const t0 = performance.now();
  const model = await load();
  const loadMs = performance.now() - t0;
  for (let i = 0; i < 4; i++) await model.run('decode', Int32Array.of((i * 131) % V));
  await model.run('prefill', Int32Array.from({ length: 16 }, (_, i) => (i * 977) % V));
  return { name, model, loadMs, peakMiB: status('VmHWM') - before };
}

export interface OrtBenchOptions {
  plan: KernelPlan;
  weights: WeightProvider;
  model: OpenModel;
  dsl: string;
  weightsName: string;
  threads: number;
  decodeTokens: number;
  prefillTokens: number;
  repeats: number;
  cacheDir: string;
  /** which peers: node (onnxruntime-node CPU EP), web (onnxruntime-web WASM EP) */
  peers?: ('node' | 'web')[];
  onPhase?: (phase: string) => void;
}

export async function benchOnnxruntime(o: OrtBenchOptions): Promise<OrtBenchResult> {
  const V = o.model.config.vocabSize, skipped: string[] = [];
  const phase = o.onPhase ?? (() => {});
  const engines: (Engine & { loadMs: number; peakMiB: number })[] = [];
  try {
    phase('rwkvc wasm: compile and load');
    engines.push(await measureLoad(`rwkvc wasm (${o.threads} threads)`, () => loadPlan('wasm', o.plan, o.weights, { threads: o.threads }), V));
    const w = o.weightsName;
    if (w !== 'f32' && w !== 'f16') skipped.push(`onnxruntime: the ONNX export stores f32 or f16 matrices, not ${w}`);
    else {
      phase(`ONNX export (${w})`);
      const file = await onnxFor(o.model, o.dsl, w, o.cacheDir);
      const bytes = readFileSync(file);
      for (const p of o.peers ?? ['node', 'web']) {
        phase(`onnxruntime-${p}: load`);
        try {
          if (p === 'node') {
            const ort = await import('onnxruntime-node');
            engines.push(await measureLoad(`onnxruntime-node ${ort.env.versions.node} (CPU EP, MLAS, ${o.threads} threads)`,
              () => createOrtModel(ort, o.model.config, null, file, { threads: o.threads, label: 'onnxruntime-node' }), V));
          } else {
            const ort = await import('onnxruntime-web');
            ort.env.wasm.numThreads = o.threads;
            engines.push(await measureLoad(`onnxruntime-web ${ort.env.versions.web} (WASM EP, SIMD, ${o.threads} threads)`,
              () => createOrtModel(ort as never, o.model.config, null, bytes, { providers: ['wasm'], label: 'onnxruntime-web' }), V));
          }
        } catch (e) {
          skipped.push(`onnxruntime-${p}: ${(e as Error).message.split('\n')[0]}`);
        }
      }
    }

    phase('decode rounds');
    const r = seededRandom(7), tok = () => Int32Array.of(Math.floor(r() * V));
    const rounds = 8 * o.repeats, perRound = Math.max(8, Math.ceil(o.decodeTokens / 8));
    const times = engines.map(() => [] as number[]);
    for (let k = 0; k < rounds; k++)
      for (const [i, e] of engines.entries())
        for (let n = 0; n < perRound; n++) {
          const t = tok(), t0 = performance.now();
          await e.model.run('decode', t);
          times[i].push(performance.now() - t0);
        }
    phase('prefill');
    const prompt = Int32Array.from({ length: o.prefillTokens }, () => Math.floor(r() * V));
    const pt = engines.map(() => [] as number[]);
    for (let k = 0; k < o.repeats + 1; k++)
      for (const [i, e] of engines.entries()) {
        const t0 = performance.now();
        await e.model.run('prefill', prompt);
        pt[i].push(performance.now() - t0);
      }
    const results: EngineResult[] = engines.map((e, i) => {
      const ms = median(times[i]), p = Math.min(...pt[i]);
      return {
        name: e.name, loadMs: e.loadMs, peakMiB: e.peakMiB,
        decode: { msPerToken: ms, tokensPerS: 1000 / ms, tokens: times[i].length },
        prefill: { ms: p, tokensPerS: o.prefillTokens / (p / 1000), tokens: o.prefillTokens },
      };
    });
    const [ours, ...peers] = results;
    return {
      weights: o.weightsName, threads: o.threads, engines: results, skipped,
      speedups: peers.map((p) => ({
        peer: p.name, decode: p.decode.msPerToken / ours.decode.msPerToken, prefill: p.prefill.ms / ours.prefill.ms,
        load: p.loadMs / ours.loadMs, memory: p.peakMiB / ours.peakMiB,
      })),
    };
  } finally {
    for (const e of engines) e.model.dispose();
  }
}

export function formatOrtBench(r: OrtBenchResult, cpu: string): string {
  const lines = [`onnxruntime peers, weights ${r.weights}, ${r.threads} thread(s), same run, interleaved rounds; CPU: ${cpu}`,
    `${'engine'.padEnd(62)} ${'decode tok/s'.padStart(12)} ${'prefill tok/s'.padStart(13)} ${'load s'.padStart(7)} ${'peak MiB'.padStart(9)}`];
  for (const e of r.engines)
    lines.push(`${e.name.padEnd(62)} ${e.decode.tokensPerS.toFixed(2).padStart(12)} ${e.prefill.tokensPerS.toFixed(1).padStart(13)} ${(e.loadMs / 1000).toFixed(1).padStart(7)} ${e.peakMiB.toFixed(0).padStart(9)}`);
  for (const s of r.speedups)
    lines.push(`rwkvc vs ${s.peer}: decode ${s.decode.toFixed(2)}×, prefill ${s.prefill.toFixed(2)}×, load ${s.load.toFixed(2)}×, peak memory ${s.memory.toFixed(2)}× (> 1: rwkvc faster / smaller)`);
  for (const s of r.skipped) lines.push(`skipped: ${s}`);
  return lines.join('\n');
}

/**
 * onnxruntime-node (CPU EP) or onnxruntime-web (WASM EP) on the export as a peer of `rwkvc bench --target wasm --peer …`,
 * so its turns interleave with ours and the other peers' (bench/wasm-bench.ts); or why it cannot run this format.
 * Each round starts from the zero state, as llama.cpp's does.
 */
export async function openOrtPeer(kind: 'node' | 'web', model: OpenModel, dsl: string, weights: string, threads: number, cacheDir: string): Promise<PeerSession | { unavailable: string }> {
  if (weights !== 'f32' && weights !== 'f16') return { unavailable: `the ONNX export stores f32 or f16 matrices, not ${weights}` };
  let m: TargetModel, name: string;
  try {
    const file = await onnxFor(model, dsl, weights, cacheDir);
    if (kind === 'node') {
      const ort = await import('onnxruntime-node');
      name = `onnxruntime-node ${ort.env.versions.node} (CPU EP, MLAS, ${threads} threads)`;
      m = await createOrtModel(ort, model.config, null, file, { threads, label: 'onnxruntime-node' });
    } else {
      const ort = await import('onnxruntime-web');
      ort.env.wasm.numThreads = threads;
      name = `onnxruntime-web ${ort.env.versions.web} (WASM EP, SIMD, ${threads} threads)`;
      m = await createOrtModel(ort as never, model.config, null, readFileSync(file), { providers: ['wasm'], label: 'onnxruntime-web' });
    }
  } catch (e) {
    return { unavailable: (e as Error).message.split('\n')[0] };
  }
  const V = model.config.vocabSize, r = seededRandom(11), tok = () => Math.floor(r() * V);
  const zero = Object.fromEntries(Object.entries(await m.readState()).map(([k, v]) => [k, new Float32Array(v.length)]));
  return {
    name, weights: weights.toUpperCase(),
    async decodeRound(n) {
      await m.writeState(zero);
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = Int32Array.of(tok()), t0 = performance.now();
        await m.run('decode', t);
        times.push(performance.now() - t0);
      }
      return times;
    },
    async prefill(n) {
      await m.writeState(zero);
      const prompt = Int32Array.from({ length: n }, tok), t0 = performance.now();
      await m.run('prefill', prompt);
      return performance.now() - t0;
    },
    async dispose() { m.dispose(); },
  };
}
