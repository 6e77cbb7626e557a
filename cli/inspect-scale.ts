/**
 * `rwkvc inspect <model> --scale`: the numbers that decide where a large model runs, from its compiled
 * plans (one per weight format): weight bytes, bytes a decoded token reads, the recurrent state of one
 * sequence against the KV cache a transformer of the same shape (layers, k/v heads, head size) keeps at
 * 4k and 32k tokens of context, and how many sequences one H200 holds beside the weights.
 */
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import type { AnyModelConfig } from '../kernels/config.ts';
import { INT8_BLOCK } from '../kernels/dtype.ts';
import { elems } from '../kernels/program.ts';

/** Bytes per weight as stored: Q8_0 is 34 bytes per 32, Q4_0 18, Q4_1 20 (ggml's blocks, as ours). */
const PER_WEIGHT: Record<string, number> = { f32: 4, bf16: 2, f16: 2, int8: 1 + 2 / INT8_BLOCK, q4_0: 0.5 + 2 / INT8_BLOCK, q4_1: 0.5 + 4 / INT8_BLOCK };

/** One H200: 141 GB of HBM3e (NVIDIA's figure, decimal). */
export const H200_BYTES = 141e9;
/** Kept free on the device for the runtime, activations and fragmentation. */
const RESERVE = 0.05;
const CONTEXTS = [4096, 32768];

export interface FormatScale {
  format: WeightDType;
  weightBytes: number;
  /** Bytes one decoded token reads: every matrix once, one embedding row. */
  tokenBytes: number;
  /** Sequences one H200 holds beside the weights (RWKV state each), and a same-shape transformer at each context (KV cache each). */
  h200: { rwkv: number; transformer: Record<number, number> };
}

export interface ScaleReport {
  /** State of one sequence (f32), bytes. */
  stateBytes: number;
  /** A transformer of the same shape: f16 K and V, per sequence at each context. */
  kvCacheBytes: Record<number, number>;
  kvShape: { layers: number; kvHeads: number; headSize: number };
  formats: FormatScale[];
}

function bytesOf(plan: KernelPlan) {
  const table = new Set(plan.decode.kernels.flatMap((k) => (k.kind === 'embed' ? [k.table] : [])));
  let weights = 0, token = 0;
  for (const w of plan.weights) {
    const n = w.shape.reduce((a, b) => a * b, 1), b = n * PER_WEIGHT[w.dtype];
    weights += b;
    token += table.has(w.name) ? b / w.shape[0] : b;
  }
  return { weights, token };
}

/** `plans`: one compiled plan per weight format (the format the weights pass was given). */
export function scaleReport(plans: { format: WeightDType; plan: KernelPlan }[]): ScaleReport {
  const cfg = plans[0].plan.config as AnyModelConfig;
  const stateBytes = plans[0].plan.decode.buffers.filter((b) => b.role === 'state').reduce((s, b) => s + elems(b, 1) * 4, 0);
  const kvShape = { layers: cfg.nLayer, kvHeads: cfg.nKvHead ?? cfg.nHead, headSize: cfg.headSize };
  const kvPerToken = 2 * kvShape.layers * kvShape.kvHeads * kvShape.headSize * 2;
  const kvCacheBytes = Object.fromEntries(CONTEXTS.map((n) => [n, kvPerToken * n]));
  const free = (w: number) => Math.max(0, H200_BYTES * (1 - RESERVE) - w);
  return {
    stateBytes, kvCacheBytes, kvShape,
    formats: plans.map(({ format, plan }) => {
      const { weights, token } = bytesOf(plan);
      return {
        format, weightBytes: weights, tokenBytes: token,
        h200: {
          rwkv: Math.floor(free(weights) / stateBytes),
          transformer: Object.fromEntries(CONTEXTS.map((n) => [n, Math.floor(free(weights) / kvCacheBytes[n])])),
        },
      };
    }),
  };
}

const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;

export function formatScale(r: ScaleReport): string {
  const { layers, kvHeads, headSize } = r.kvShape;
  const lines = [
    `state per sequence: ${(r.stateBytes / 2 ** 20).toFixed(1)} MiB (f32), the same at any context length; a transformer of this shape ` +
      `(${layers} layers, ${kvHeads} k/v heads of ${headSize}, f16 KV cache): ${CONTEXTS.map((n) => `${gb(r.kvCacheBytes[n])} at ${n / 1024}k`).join(', ')}` +
      ` (the state equals its cache at ${Math.round(r.stateBytes / (r.kvCacheBytes[CONTEXTS[0]] / CONTEXTS[0]))} tokens)`,
    `format   weights       per token   one H200 (141 GB, ${RESERVE * 100}% kept free): sequences beside the weights`,
  ];
  for (const f of r.formats) {
    const fits = f.weightBytes <= H200_BYTES * (1 - RESERVE);
    lines.push(`${f.format.padEnd(8)} ${gb(f.weightBytes).padStart(10)}  ${gb(f.tokenBytes).padStart(10)}   ` +
      (fits ? `RWKV ${f.h200.rwkv}; transformer ${CONTEXTS.map((n) => `${f.h200.transformer[n]} at ${n / 1024}k`).join(', ')}` : 'weights do not fit'));
  }
  return lines.join('\n');
}
