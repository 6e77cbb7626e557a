/**
 * `rwkvc bench --kernels`: per-kernel micro-benchmarks with benchmark.js's statistics (mean, ±RME at
 * 95 %, samples). Each case is one kernel of the real compiled model (bench-0.1b by default: layer 0's
 * fused r/k/v/g linear, its WKV, its token shift with the ddlerp LoRA, the final layernorm), cut out of
 * the plan into a plan of its own (same buffers, only the weights it reads), compiled by the WASM
 * target and timed through the runtime's synchronous call (so each sample includes the call's fixed
 * cost: the team's wake-up and barrier, ~µs). Linear kernels report the weight bytes they stream per
 * call as GB/s against the read limits (WASM probe, native memchr) and, for prefill, GFLOP/s against
 * the f32x4 multiply-add limit — all measured in the same run.
 */
import Benchmark from 'benchmark';
import type { Kernel, KernelPlan, WeightDType } from '../kernels/plan.ts';
import { singleKernelPlan } from './model-plan.ts';
import type { WeightProvider } from '../targets/backend.ts';
import { compileWasm } from '../targets/wasm/codegen.ts';
import { loadWasmArtifact } from '../targets/wasm/runtime.ts';
import { measureBandwidth, measureCompute } from './wasm-roofline.ts';
import { measureNativeBandwidth, machineLine } from './bandwidth.ts';
import { benchGpuJs, benchGpuJsChromium, gpuJsGpuModeInNode, type GpuJsRow } from './gpujs.ts';

export interface KernelRow {
  target: string;
  kernel: string;
  kind: string;
  program: 'decode' | 'prefill';
  tokens: number;
  weights?: WeightDType;
  meanMs: number;
  rmePct: number;
  samples: number;
  /** Weight bytes streamed per call over the mean (linear kernels). */
  gbs?: number;
  /** Multiply-add flops per call over the mean (linear kernels). */
  gflops?: number;
}

export interface KernelReport {
  machine: string;
  threads: number;
  limits: { wasmReadGBs: number; nativeReadGBs: number; computeGflops: number };
  rows: KernelRow[];
  /** gpu.js (bench/gpujs.ts) on the same sizes: a hand-written matvec and WKV step, or why not; and why not its GPU mode. */
  gpujs?: { rows: GpuJsRow[] } | { unavailable: string };
  gpujsGpuMode?: string;
  /** gpu.js's WebGL2 mode in headless Chromium and our WGSL kernels at the same sizes (each, or why not). */
  gpujsBrowser?: { rows: GpuJsRow[]; unavailable: string[] };
}

/** The first kernel of `kind` in layer 0 (or the model's last, for layernorm) of a program. */
function pick(kernels: Kernel[], kind: Kernel['kind']): Kernel | undefined {
  return kernels.find((k) => k.kind === kind && (k.layer === 0 || kind === 'layernorm'));
}

const BYTES: Record<string, number> = { f32: 4, bf16: 2, f16: 2, int8: 34 / 32, q4_0: 18 / 32, q4_1: 20 / 32 };

/** Time one benchmark.js case (synchronous), at least `minSamples` samples over ≥ `maxTime` s. */
function time(name: string, fn: () => void, maxTime: number): { meanMs: number; rmePct: number; samples: number } {
  const b = new Benchmark(name, fn, { maxTime, minSamples: 5, initCount: 1 });
  b.run({ async: false });
  if (b.error) throw b.error;
  return { meanMs: b.stats.mean * 1e3, rmePct: b.stats.rme, samples: b.stats.sample.length };
}

export interface KernelBenchOptions {
  /** A compiled plan per weight format (the same model). */
  plans: Partial<Record<WeightDType, KernelPlan>>;
  weights: (plan: KernelPlan) => WeightProvider;
  threads: number;
  /** benchmark.js maxTime per case, seconds (default 1). */
  maxTime?: number;
  onCase?: (name: string) => void;
  /** Also gpu.js's hand-written matvec and WKV step at the same sizes (default true). */
  gpujs?: boolean;
  /** Also gpu.js in headless Chromium (WebGL2) beside our WGSL kernels (default false: starts a browser and a GPU device). */
  gpujsBrowser?: boolean;
  /** Bytes the read-limit probes stream (default 1 GiB; tests use less). */
  probeBytes?: number;
}

export async function benchKernels(o: KernelBenchOptions): Promise<KernelReport> {
  const maxTime = o.maxTime ?? 1;
  const rows: KernelRow[] = [];
  const first = Object.values(o.plans)[0]!;
  const kinds: Kernel['kind'][] = ['linear', 'wkv', 'token_shift', 'layernorm'];
  for (const [dtype, plan] of Object.entries(o.plans) as [WeightDType, KernelPlan][]) {
    // linear per format; the other kinds once (they read no big matrices: the first format's plan)
    for (const kind of plan === first ? kinds : ['linear' as const]) {
      const d = pick(plan.decode.kernels, kind), p = pick(plan.prefill.kernels, kind);
      if (!d || !p) continue;
      const one = singleKernelPlan(plan, d, p);
      o.onCase?.(`${d.name} ${dtype}`);
      const m = await loadWasmArtifact(compileWasm(one), o.weights(one), { threads: o.threads });
      try {
        const T = plan.prefill.maxT, V = plan.config.vocabSize;
        const tok1 = Int32Array.of(1), tokT = Int32Array.from({ length: T }, (_, i) => (i * 7919) % V);
        const elems = kind === 'linear' && d.kind === 'linear' ? d.groups.reduce((s, g) => s + one.weights.find((w) => w.name === g.w)!.shape.reduce((a, b) => a * b, 1), 0) : 0;
        for (const [program, tokens] of [['decode', tok1], ['prefill', tokT]] as const) {
          const t = time(`${d.name} ${program}`, () => m.runSync(program, tokens), maxTime);
          const row: KernelRow = { target: `wasm ${m.variant}`, kernel: kind === 'wkv' ? `wkv (${program === 'decode' ? 'step' : `sequence of ${T}`})` : d.name, kind, program, tokens: tokens.length, ...t };
          if (elems) {
            row.weights = dtype;
            row.gbs = (elems * BYTES[dtype]) / t.meanMs / 1e6;
            row.gflops = (2 * elems * tokens.length) / t.meanMs / 1e6;
          }
          rows.push(row);
        }
      } finally {
        m.dispose();
      }
    }
  }
  let gpujs: KernelReport['gpujs'], gpujsGpuMode: string | undefined;
  if (o.gpujs !== false) {
    o.onCase?.('gpu.js');
    const g = await benchGpuJs(first.config, maxTime);
    gpujs = 'unavailable' in g ? g : { rows: g };
    gpujsGpuMode = await gpuJsGpuModeInNode();
  }
  let gpujsBrowser: KernelReport['gpujsBrowser'];
  if (o.gpujsBrowser) {
    o.onCase?.('gpu.js in Chromium, rwkvc wgsl');
    gpujsBrowser = await benchGpuJsChromium(first.config, maxTime, { wgsl: { plan: first, weights: o.weights } });
  }
  // the limits after the kernels, on the same threads
  const limits = {
    wasmReadGBs: await measureBandwidth(o.threads, { bytes: o.probeBytes }),
    nativeReadGBs: await measureNativeBandwidth(o.threads, 4, o.probeBytes),
    computeGflops: (await measureCompute(o.threads)).gflops,
  };
  return { machine: machineLine(), threads: o.threads, limits, rows, ...(gpujs ? { gpujs, gpujsGpuMode } : {}), ...(gpujsBrowser ? { gpujsBrowser } : {}) };
}

export function formatKernels(r: KernelReport): string {
  const l = r.limits;
  const lines = [`per-kernel micro-benchmarks (benchmark.js), ${r.threads} thread(s); ${r.machine}`,
    `limits in this run: WASM read ${l.wasmReadGBs.toFixed(1)} GB/s, native read (memchr) ${l.nativeReadGBs.toFixed(1)} GB/s, f32x4 multiply-add ${l.computeGflops.toFixed(1)} GFLOP/s`];
  for (const x of r.rows) {
    const rate = x.gbs === undefined ? '' : x.program === 'decode'
      ? `  ${x.gbs.toFixed(1)} GB/s = ${(100 * x.gbs / l.wasmReadGBs).toFixed(0)}% WASM read, ${(100 * x.gbs / l.nativeReadGBs).toFixed(0)}% native`
      : `  ${x.gflops!.toFixed(1)} GFLOP/s = ${(100 * x.gflops! / l.computeGflops).toFixed(0)}% of the FMA limit`;
    lines.push(`  ${x.target.padEnd(13)} ${`${x.kernel}${x.weights ? ` ${x.weights}` : ''}`.padEnd(28)} ${x.program.padEnd(7)} T=${String(x.tokens).padEnd(4)} ` +
      `${x.meanMs.toFixed(3).padStart(9)} ms ±${x.rmePct.toFixed(1)}% (${x.samples} samples)${rate}`);
  }
  if (r.gpujs && 'unavailable' in r.gpujs) lines.push(`  gpu.js: ${r.gpujs.unavailable}`);
  else if (r.gpujs) {
    lines.push('  gpu.js (hand-written JavaScript kernels, same sizes; 1 thread — its CPU mode is plain JS):');
    for (const g of r.gpujs.rows) lines.push(`    ${g.mode} ${g.kernel.padEnd(24)} ${g.meanMs.toFixed(3).padStart(9)} ms ±${g.rmePct.toFixed(1)}% (${g.samples} samples)${g.gbs ? `  ${g.gbs.toFixed(2)} GB/s` : ''}`);
    if (r.gpujsGpuMode) lines.push(`    ${r.gpujsGpuMode}`);
  }
  if (r.gpujsBrowser) {
    lines.push('  gpu.js on WebGL2 in headless Chromium beside rwkvc wgsl, same sizes (SwiftShader is a software rasteriser: compare the ratio, not the speed):');
    for (const g of r.gpujsBrowser.rows) lines.push(`    ${g.mode.padEnd(30)} ${g.kernel.padEnd(24)} ${g.meanMs.toFixed(3).padStart(9)} ms ±${g.rmePct.toFixed(1)}% (${g.samples} samples)${g.gbs ? `  ${g.gbs.toFixed(2)} GB/s` : ''}`);
    for (const kernel of new Set(r.gpujsBrowser.rows.map((g) => g.kernel))) {
      const [a, b] = ['gpu.js', 'rwkvc'].map((m) => r.gpujsBrowser!.rows.find((g) => g.kernel === kernel && g.mode.startsWith(m)));
      if (a && b) lines.push(`    ${kernel}: rwkvc wgsl ${(a.meanMs / b.meanMs).toFixed(2)}× gpu.js webgl2 (> 1: rwkvc faster)`);
    }
    for (const u of r.gpujsBrowser.unavailable) lines.push(`    ${u}`);
  }
  return lines.join('\n');
}
