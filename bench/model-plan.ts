/**
 * A compiled Finch plan for any config, with seeded random weights (the same generator as
 * `rwkvc random-model`), held in memory: what target tests and benchmarks run when no checkpoint
 * file is wanted. It goes through the real compiler, so what is measured is what users run.
 */
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import type { ModelConfig } from '../kernels/config.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { expectedTensors } from '../runtime/checkpoint/config.ts';
import { PRESETS } from '../runtime/presets.ts';
import { seededRandom, valuesFor } from '../runtime/random-model.ts';
import type { WeightProvider } from '../targets/backend.ts';

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

/** Seeded random checkpoint tensors for `cfg`, made once each when first read. */
export function randomWeights(cfg: ModelConfig, seed = 1): WeightProvider {
  const read = randomTensors(cfg, seed);
  return (d) => materializeWeight(d.source, read);
}

/** The checkpoint tensors behind randomWeights, by official name (e.g. to write them as GGUF). */
export function randomTensors(cfg: ModelConfig, seed = 1): (name: string) => Float32Array {
  const shapes = expectedTensors(cfg);
  const made = new Map<string, Float32Array>();
  const read = (name: string) => {
    let v = made.get(name);
    if (!v) {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`no tensor ${name} in a ${cfg.nLayer}-layer model`);
      let h = seed;
      for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 0x9e3779b1);
      made.set(name, (v = valuesFor(name, shape, seededRandom(h))));
    }
    return v;
  };
  return read;
}

export { seededRandom as rng };
