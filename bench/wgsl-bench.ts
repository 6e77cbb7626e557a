/**
 * End-to-end WGSL benchmark: load a plan, then time decode steps and prefill chunks through the real
 * runtime (each call includes its logits readback, as a generation loop would). Dispatches and command
 * buffers per token are counted by the runtime as it encodes them (WgslModel.stats), not derived from
 * the plan.
 */
import type { KernelPlan } from '../kernels/plan.ts';
import type { WeightProvider } from '../targets/backend.ts';
import type { WgslModel, WgslOptions } from '../targets/wgsl/runtime.ts';
import { loadPlan } from '../driver/targets.ts';

export interface WgslBenchOptions {
  plan: KernelPlan;
  weights: WeightProvider;
  /** Run on this device; default: acquireGpu() (released at the end). */
  device?: GPUDevice;
  /** Timed decode steps (default 32) after `warmup` untimed ones (default 2). */
  decodeSteps?: number;
  /** Tokens per prefill call (default the plan's chunk) and timed calls (default 3). */
  prefillTokens?: number;
  prefillRuns?: number;
  warmup?: number;
  /** Everything else the runtime takes (limits, embedOnHost, pre-rendered shaders). */
  target?: Omit<WgslOptions, 'device'>;
  /** Token ids to feed (cycled); default 0, 1, 2, … modulo the vocabulary. */
  tokens?: Int32Array;
  /** Each phase as it starts ("creating 14 WGSL pipelines", "decode: 32 steps"), for a status line. */
  onPhase?: (what: string) => void;
  /** Progress within the load: the runtime's 'shaders' and 'pipelines' counts (and the weights', from `weights`). */
  onProgress?: (phase: string, done: number, total: number) => void;
}

export interface WgslBenchResult {
  adapter: string;
  loadMs: number;
  decode: { tokPerS: number; msPerToken: number; dispatchesPerToken: number; commandBuffersPerToken: number };
  prefill: { tokPerS: number; msPerCall: number; tokensPerCall: number; dispatchesPerToken: number; commandBuffersPerCall: number };
  /** Distinct pipelines (shaders) the model uses. */
  pipelines: number;
}

export async function benchWgsl(o: WgslBenchOptions): Promise<WgslBenchResult> {
  const t0 = performance.now();
  o.onPhase?.('loading: uploading weights, compiling WGSL shaders and creating pipelines (minutes on a software adapter)');
  const model = await loadPlan('wgsl', o.plan, o.weights, {
    ...o.target, ...(o.device ? { device: o.device } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  }) as WgslModel;
  const loadMs = performance.now() - t0;
  o.onPhase?.(`loaded in ${(loadMs / 1000).toFixed(1)} s (${model.shaders.length} pipelines)`);
  try {
    const vocab = o.plan.config.vocabSize;
    let next = 0;
    const tok = (n: number) => Int32Array.from({ length: n }, () => (o.tokens ? o.tokens[next++ % o.tokens.length] : next++ % vocab));
    const warmup = o.warmup ?? 2;

    // Decode: one token per call.
    const steps = o.decodeSteps ?? 32;
    o.onPhase?.(`decode: ${warmup} warm-up + ${steps} timed steps`);
    for (let i = 0; i < warmup; i++) await model.run('decode', tok(1));
    let dispatches = 0, commandBuffers = 0;
    let t = performance.now();
    for (let i = 0; i < steps; i++) {
      await model.run('decode', tok(1));
      dispatches += model.stats.last.dispatches;
      commandBuffers += model.stats.last.commandBuffers;
    }
    const decodeMs = (performance.now() - t) / steps;
    const decode = {
      tokPerS: 1000 / decodeMs, msPerToken: decodeMs,
      dispatchesPerToken: dispatches / steps, commandBuffersPerToken: commandBuffers / steps,
    };

    // Prefill: whole chunks.
    const T = Math.min(o.prefillTokens ?? o.plan.prefill.maxT, o.plan.prefill.maxT);
    const runs = o.prefillRuns ?? 3;
    o.onPhase?.(`prefill: ${runs} timed calls of ${T} tokens`);
    for (let i = 0; i < Math.min(warmup, 1); i++) await model.run('prefill', tok(T));
    dispatches = commandBuffers = 0;
    t = performance.now();
    for (let i = 0; i < runs; i++) {
      await model.run('prefill', tok(T));
      dispatches += model.stats.last.dispatches;
      commandBuffers += model.stats.last.commandBuffers;
    }
    const prefillMs = (performance.now() - t) / runs;
    const prefill = {
      tokPerS: (1000 * T) / prefillMs, msPerCall: prefillMs, tokensPerCall: T,
      dispatchesPerToken: dispatches / (runs * T), commandBuffersPerCall: commandBuffers / runs,
    };
    const info = (model.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    const adapter = [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' / ') || 'unknown adapter';
    return { adapter, loadMs, decode, prefill, pipelines: model.shaders.length };
  } finally {
    model.dispose();
  }
}
