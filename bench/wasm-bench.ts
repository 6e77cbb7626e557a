/**
 * End-to-end speed of the WASM target (what `rwkvc bench --target wasm` prints): decode tokens/s,
 * prefill tokens/s for one prompt, the weight bytes a decode step streams, and where that sits against
 * the rooflines (bench/wasm-roofline.ts).
 *
 * Decode and the bandwidth probe take turns: 8 rounds (× repeats) of one probe pass then ≥ 8 tokens;
 * the reported speed is the median over all those tokens (≥ 64), the limit the median of the passes.
 * On a machine whose share of the memory bus drifts (other tenants), a limit measured at another
 * moment than the decode was off by ±25 % either way; taking turns puts both in the same windows.
 * The native read probe (bench/bandwidth.ts) and each peer (bench/llama-cpp.ts, bench/wllama.ts, bench/onnxruntime.ts) take their
 * turns in every round too, in the order given (each peer also prefills after each of ours).
 */
import { availableParallelism } from 'node:os';
import type { KernelPlan } from '../kernels/plan.ts';
import type { WeightProvider } from '../targets/backend.ts';
import { compileWasm, type WasmArtifact } from '../targets/wasm/codegen.ts';
import { loadWasmArtifact } from '../targets/wasm/runtime.ts';
import { measureCompute, openBandwidthProbe } from './wasm-roofline.ts';
import { openNativeProbe } from './bandwidth.ts';
import { seededRandom as rng } from '../runtime/random-model.ts';
import type { PeerSession } from './llama-cpp.ts';

export interface WasmBenchOptions {
  plan: KernelPlan;
  weights: WeightProvider;
  threads?: number;
  decodeTokens?: number;
  warmupTokens?: number;
  prefillTokens?: number;
  relaxed?: boolean;
  /** A compute limit measured before (else measured here); the reported one is the better of it and one measured after. */
  computeGflops?: number;
  /** A compiled artifact of `plan` (compiled here when absent). */
  artifact?: WasmArtifact;
  /** Decode rounds × this; prefill and the compute limit: the best of this many (default 1). */
  repeats?: number;
  /** Other implementations measured in the same rounds (same token counts), one turn each per round. */
  peers?: PeerSession[];
}

export interface WasmBenchResult {
  threads: number;
  variant: 'relaxed' | 'simd';
  decode: { tokensPerS: number; msPerToken: number; tokens: number };
  prefill: { tokensPerS: number; ms: number; tokens: number; matmulGflops: number };
  weightBytesPerToken: number;
  /** rooflineGBs: the WASM read probe; nativeGBs: glibc memchr through Buffer.indexOf (bench/bandwidth.ts), both in the same rounds. */
  bandwidth: { rooflineGBs: number; achievedGBs: number; fraction: number; nativeGBs: number; nativeFraction: number };
  compute: { rooflineGflops: number; fraction: number };
  /** prefill: the peer's on a prompt of `tokens`; oursTokensPerS: ours on the same prompt length. */
  peers: { name: string; weights: string; decode: { tokensPerS: number; msPerToken: number; tokens: number }; prefill: { tokensPerS: number; ms: number; tokens: number; oursTokensPerS: number } }[];
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** Multiply-add flops of the prefill program's matrix products for T tokens (the head counts one row). */
export function prefillMatmulFlops(plan: KernelPlan, T: number): number {
  const shape = new Map(plan.weights.map((w) => [w.name, w.shape]));
  const mat = (n: string) => { const s = shape.get(n)!; return s.reduce((a, b) => a * b, 1); };
  let f = 0;
  for (const k of plan.prefill.kernels) {
    if (k.kind === 'linear') for (const g of k.groups) f += 2 * mat(g.w) * (k.rows === 'last' ? 1 : T);
    if (k.kind === 'token_shift' && k.lora) f += 2 * (mat(k.lora.a) + mat(k.lora.b)) * T;
    if (k.kind === 'wkv' && k.decay.kind === 'lora') f += 2 * mat(k.decay.b) * T;
  }
  return f;
}

export async function benchWasm(o: WasmBenchOptions): Promise<WasmBenchResult> {
  const threads = o.threads ?? availableParallelism();
  const decodeTokens = Math.max(64, o.decodeTokens ?? 64);
  const prefillTokens = o.prefillTokens ?? 512;
  if (prefillTokens > o.plan.prefill.maxT) throw new Error(`the plan's prefill program takes at most ${o.plan.prefill.maxT} tokens`);
  const before = o.computeGflops ?? (await measureCompute(threads, { relaxed: o.relaxed })).gflops;
  const art = o.artifact ?? compileWasm(o.plan);
  const m = await loadWasmArtifact(art, o.weights, { threads, relaxed: o.relaxed });
  try {
    const V = o.plan.config.vocabSize, r = rng(7);
    const tok = () => Int32Array.of(Math.floor(r() * V));
    for (let i = 0; i < (o.warmupTokens ?? 8); i++) m.runSync('decode', tok());
    const repeats = Math.max(1, o.repeats ?? 1);
    const rounds = 8 * repeats, perRound = Math.max(8, Math.ceil(decodeTokens / 8));
    const peers = o.peers ?? [];
    const times: number[] = [], probes: number[] = [], native: number[] = [], peerTimes = peers.map(() => [] as number[]);
    for (const p of peers) await p.decodeRound(8); // its warm-up
    const bw = await openBandwidthProbe(threads);
    const nb = await openNativeProbe(threads);
    try {
      for (let k = 0; k < rounds; k++) {
        probes.push(bw.pass());
        native.push(await nb.pass());
        for (let i = 0; i < perRound; i++) {
          const t = tok(), t0 = performance.now();
          m.runSync('decode', t);
          times.push(performance.now() - t0);
        }
        for (const [j, p] of peers.entries()) peerTimes[j].push(...(await p.decodeRound(perRound)));
      }
    } finally {
      await bw.dispose();
      await nb.dispose();
    }
    const msPerToken = median(times), bandwidthGBs = median(probes), nativeGBs = median(native);

    const prompt = Int32Array.from({ length: prefillTokens }, () => Math.floor(r() * V));
    m.runSync('prefill', prompt.subarray(0, Math.min(prefillTokens, 64))); // tier-up of the prefill kernels
    // each peer's prompt length, and ours timed at every such length (best of the same number of turns)
    const peerLen = peers.map((p) => Math.min(prefillTokens, p.prefillCap ?? prefillTokens));
    const ours = new Map<number, number[]>([prefillTokens, ...peerLen].map((n) => [n, []]));
    const peerPt = peers.map(() => [] as number[]);
    for (const p of peers) await p.prefill(Math.min(prefillTokens, 64));
    for (let i = 0; i < repeats + 1; i++) {
      for (const [n, t] of ours) {
        const t0 = performance.now();
        m.runSync('prefill', prompt.subarray(0, n));
        t.push(performance.now() - t0);
      }
      for (const [j, p] of peers.entries()) peerPt[j].push(await p.prefill(peerLen[j]));
    }
    const best = (n: number) => Math.min(...ours.get(n)!);
    const pt = ours.get(prefillTokens)!;
    const prefillMs = Math.min(...pt);
    const computeGflops = Math.max(before, (await measureCompute(threads, { relaxed: o.relaxed })).gflops);
    const bytes = art.layout.decodeWeightBytes;
    const achievedGBs = bytes / msPerToken / 1e6;
    const matmulGflops = prefillMatmulFlops(o.plan, prefillTokens) / prefillMs / 1e6;
    return {
      threads, variant: m.variant,
      decode: { tokensPerS: 1000 / msPerToken, msPerToken, tokens: rounds * perRound },
      prefill: { tokensPerS: prefillTokens / (prefillMs / 1000), ms: prefillMs, tokens: prefillTokens, matmulGflops },
      weightBytesPerToken: bytes,
      bandwidth: { rooflineGBs: bandwidthGBs, achievedGBs, fraction: achievedGBs / bandwidthGBs, nativeGBs, nativeFraction: achievedGBs / nativeGBs },
      compute: { rooflineGflops: computeGflops, fraction: matmulGflops / computeGflops },
      peers: peers.map((p, j) => ({
        name: p.name, weights: p.weights,
        decode: { tokensPerS: 1000 / median(peerTimes[j]), msPerToken: median(peerTimes[j]), tokens: peerTimes[j].length },
        prefill: { tokensPerS: peerLen[j] / (Math.min(...peerPt[j]) / 1000), ms: Math.min(...peerPt[j]), tokens: peerLen[j], oursTokensPerS: peerLen[j] / (best(peerLen[j]) / 1000) },
      })),
    };
  } finally {
    m.dispose();
  }
}
