/**
 * A compiled Finch plan for any config, held in memory: what benchmarks (and the code generators'
 * tests) run when no checkpoint file is wanted, with weights from runtime/random-model.ts
 * (`randomWeights(plan.config, seed)`). It goes through the real compiler, so what is measured is what users run.
 */
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import type { ModelConfig } from '../kernels/config.ts';
import type { Kernel, KernelPlan, WeightDType } from '../kernels/plan.ts';
import { PRESETS } from '../runtime/presets.ts';

/** bench-0.1b: 12 layers, width 768, ffn 2688, vocab 65536, head 64, LoRA 32/64. */
export const BENCH_01B: ModelConfig = PRESETS['bench-0.1b'];

export interface ModelPlanOptions extends Partial<ModelConfig> {
  /** Storage of the big matrices. */
  dtype?: WeightDType;
  /** Prefill chunk. */
  prefillT?: number;
  /** Also a batch program for this many sequences. */
  batch?: number;
  /** Logits of every prefill row (default: the last only). */
  logits?: 'all' | 'last';
}

export function modelConfig(o: Partial<ModelConfig> = {}): ModelConfig {
  const cfg = { ...BENCH_01B, ...o };
  return { ...cfg, nHead: cfg.nEmbd / cfg.headSize };
}

export function modelPlan(o: ModelPlanOptions = {}): KernelPlan {
  const cfg = modelConfig(o);
  return compileGraph(finch(cfg), cfg, { weights: o.dtype ?? 'f32', logits: o.logits ?? 'last', chunk: o.prefillT ?? 512, batch: o.batch }).plan;
}

/** `plan` with both programs cut down to one kernel each and only the weights they name. */
export function singleKernelPlan(plan: KernelPlan, decode: Kernel, prefill: Kernel): KernelPlan {
  const text = JSON.stringify([decode, prefill]);
  const weights = plan.weights.filter((w) => text.includes(JSON.stringify(w.name)));
  return { ...plan, weights, decode: { ...plan.decode, kernels: [decode] }, prefill: { ...plan.prefill, kernels: [prefill] } };
}
