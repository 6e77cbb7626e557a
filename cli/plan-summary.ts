/** What `rwkvc compile` and `inspect` print about a plan: kernels per layer, activation peaks, weight bytes, the fused kernels' DSL lines. */
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { INT8_BLOCK } from '../kernels/dtype.ts';

const BYTES: Record<WeightDType, number> = { f32: 4, bf16: 2, f16: 2, int8: 1 + 2 / INT8_BLOCK, q4_0: 0.5 + 2 / INT8_BLOCK, q4_1: 0.5 + 4 / INT8_BLOCK };

export interface PlanSummary {
  model: string;
  config: KernelPlan['config'];
  decodeKernels: number;
  prefillKernels: number;
  decodeKernelsPerLayer: number;
  prefillKernelsPerLayer: number;
  decodeKernelsOutsideLayers: number;
  activationPeakBytes: { decode: number; prefill: number; prefillChunk: number };
  weightBytes: Record<string, number>;
  totalWeightBytes: number;
  fused: { kernel: string; kind: string; src: string[] }[];
}

export function summarizePlan(plan: KernelPlan): PlanSummary {
  const perLayer = (ks: KernelPlan['decode']['kernels']) => {
    const byLayer = new Map<number, number>();
    for (const k of ks) if (k.layer !== null) byLayer.set(k.layer, (byLayer.get(k.layer) ?? 0) + 1);
    return Math.max(0, ...byLayer.values());
  };
  const weightBytes: Record<string, number> = {};
  for (const w of plan.weights) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    weightBytes[w.dtype] = (weightBytes[w.dtype] ?? 0) + Math.round(n * BYTES[w.dtype]);
  }
  return {
    model: plan.model,
    config: plan.config,
    decodeKernels: plan.decode.kernels.length,
    prefillKernels: plan.prefill.kernels.length,
    decodeKernelsPerLayer: perLayer(plan.decode.kernels),
    prefillKernelsPerLayer: perLayer(plan.prefill.kernels),
    decodeKernelsOutsideLayers: plan.decode.kernels.filter((k) => k.layer === null).length,
    activationPeakBytes: { decode: plan.decode.activationPeakBytes, prefill: plan.prefill.activationPeakBytes, prefillChunk: plan.prefill.maxT },
    weightBytes,
    totalWeightBytes: Object.values(weightBytes).reduce((a, b) => a + b, 0),
    fused: plan.decode.kernels.filter((k) => k.layer === 0 || k.layer === null).map((k) => ({ kernel: k.name, kind: k.kind, src: k.src })),
  };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;

export function formatSummary(s: PlanSummary, withGroups = true): string {
  const c = s.config;
  const lines = [
    `model ${s.model}: ${c.nLayer} layers, width ${c.nEmbd}, ${c.nHead} heads of ${c.headSize}, ffn ${c.dimFfn}, vocab ${c.vocabSize}`,
    `decode:  ${s.decodeKernelsPerLayer} kernels per layer, ${s.decodeKernels} in all (${s.decodeKernelsOutsideLayers} for embedding and head); activation peak ${s.activationPeakBytes.decode} bytes`,
    `prefill: ${s.prefillKernelsPerLayer} kernels per layer, ${s.prefillKernels} in all; activation peak ${mib(s.activationPeakBytes.prefill)} for a ${s.activationPeakBytes.prefillChunk}-token chunk`,
    `weights: ${Object.entries(s.weightBytes).map(([d, b]) => `${d} ${mib(b)}`).join(', ')} (total ${mib(s.totalWeightBytes)})`,
  ];
  if (withGroups) {
    lines.push('fused kernels (layer 0, embedding and head) and the DSL lines they came from:');
    for (const f of s.fused) lines.push(`  ${f.kernel.padEnd(18)} ${f.kind.padEnd(12)} ${f.src.join(' ')}`);
  }
  return lines.join('\n');
}
