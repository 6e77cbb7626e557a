/**
 * Peak host memory while a checkpoint loads onto a target (`rwkvc inspect --measure-load`): the process's
 * resident-set high-water mark (Linux VmHWM; elsewhere process.resourceUsage().maxRSS) read before the
 * load starts (Node, the CLI and the compiler: the baseline) and after it ends, against the bytes the
 * target had to hold (packed weights). The goal of a bounded load is peak − baseline ≤ packed bytes + 15 %.
 * The baseline is taken after a warm-up load of a seeded finch-tiny on the same target (Node, the CLI, the
 * compiler, the engine's WASM compiler, worker threads). It measures the process it runs in, so run it in
 * a fresh process (the CLI does; tests spawn one).
 */
import { readFileSync, statSync } from 'node:fs';
import type { WeightDType } from '../kernels/plan.ts';
import { openModel } from '../runtime/model.ts';
import { loadTargetForModel } from './load.ts';
import { buildGraph, DEFAULT_DSL } from './dsl.ts';
import { loadPlan } from './targets.ts';
import { compileGraph } from '../compiler/index.ts';
import { PRESETS } from '../runtime/presets.ts';
import { randomWeights } from '../runtime/random-model.ts';

/** The resident-set high-water mark and current size, in bytes. */
export function rss(): { peak: number; now: number } {
  try {
    const s = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    const peak = kb('VmHWM'), now = kb('VmRSS');
    if (Number.isFinite(peak) && Number.isFinite(now)) return { peak, now };
  } catch { /* not Linux */ }
  return { peak: process.resourceUsage().maxRSS * 1024, now: process.memoryUsage.rss() };
}

export interface LoadMeasurement {
  checkpoint: string;
  fileBytes: number;
  target: string;
  weights: WeightDType;
  threads: number;
  /** RSS high-water mark before the load (Node, the CLI, the compiler, one finch-tiny load on the target). */
  baselineBytes: number;
  /** RSS high-water mark after it. */
  peakBytes: number;
  /** The target's weight bytes (WASM: every packed weight in linear memory). */
  packedBytes: number;
  /** WASM linear memory reserved (weights, state, activations, thread scratch; untouched pages take no RAM). */
  memoryBytes?: number;
  seconds: number;
  /** (peak − baseline) / packed − 1: the goal is ≤ 0.15. */
  overhead: number;
}

export async function measureLoad(checkpoint: string, o: { target: string; weights: WeightDType; threads: number; dsl?: string }): Promise<LoadMeasurement> {
  // Warm up on a tiny seeded model first: Node, the modules, the compiler, the engine's WASM compiler and
  // the worker threads all reach their own size before the baseline, which then holds no model's bytes.
  const tiny = PRESETS['finch-tiny']!;
  const { plan } = compileGraph(await buildGraph(o.dsl ?? DEFAULT_DSL, tiny), tiny, { weights: o.weights, logits: 'last' });
  (await loadPlan(o.target, plan, randomWeights(tiny), { threads: o.threads })).dispose();
  const model = openModel(checkpoint);
  const fileBytes = statSync(checkpoint).size;
  const base = rss().peak;
  const t0 = performance.now();
  const target = await loadTargetForModel(o.target, model, { dsl: o.dsl ?? DEFAULT_DSL, weights: o.weights, threads: o.threads, logits: 'last' });
  const seconds = (performance.now() - t0) / 1000;
  const peak = rss().peak;
  model.close();
  const layout = (target as { layout?: { weights: { bytes: number }[]; staticBytes: number; threadScratchBytes: number } }).layout;
  const packedBytes = layout ? layout.weights.reduce((n, w) => n + w.bytes, 0) : NaN;
  const memoryBytes = layout ? layout.staticBytes + o.threads * layout.threadScratchBytes : undefined;
  target.dispose();
  return {
    checkpoint, fileBytes, target: o.target, weights: o.weights, threads: o.threads,
    baselineBytes: base, peakBytes: peak, packedBytes, ...(memoryBytes ? { memoryBytes } : {}), seconds,
    overhead: (peak - base) / packedBytes - 1,
  };
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

export function formatMeasurement(m: LoadMeasurement): string {
  return `load ${m.checkpoint} → ${m.target} ${m.weights}, ${m.threads} thread${m.threads === 1 ? '' : 's'}: ${m.seconds.toFixed(1)} s; ` +
    `peak RSS ${gib(m.peakBytes)} = baseline ${gib(m.baselineBytes)} + ${gib(m.peakBytes - m.baselineBytes)} ` +
    `for ${gib(m.packedBytes)} of packed weights (${m.overhead >= 0 ? '+' : ''}${(m.overhead * 100).toFixed(1)} %; goal ≤ +15 %)` +
    (m.memoryBytes ? `; linear memory ${gib(m.memoryBytes)}` : '');
}
