/**
 * compileWasm: KernelPlan → WebAssembly (SIMD128, shared memory, threads) plus its memory layout: build.ts
 * renders the module text and lays out memory, assemble.ts turns the text into binaries.
 */
import type { KernelPlan } from '../../kernels/plan.ts';
import { DEFAULT_SCHEDULE, type LinearSchedule } from './linear.ts';
import type { WasmLayout } from './layout.ts';
import { assemble } from './assemble.ts';
import { build } from './build.ts';
import { planPrograms } from '../../kernels/program.ts';
import type { TargetCodegen } from '../target.ts';

export interface WasmArtifact {
  /** Plain SIMD128: runs everywhere. */
  wasm: Uint8Array<ArrayBuffer>;
  /** The same module with f32x4.relaxed_madd (FMA) in the hot loops; used when the engine validates it. */
  wasmRelaxed?: Uint8Array<ArrayBuffer>;
  layout: WasmLayout;
}

export interface CompileOptions {
  /** Also emit the relaxed-SIMD variant (default true). */
  relaxed?: boolean;
  /**
   * Profiling build: thread 0 calls the import env.mark(phase) after each phase's barrier, so a runtime
   * can time every kernel (layout.programs.*.phases names them).
   */
  profile?: boolean;
  /** Loop shapes of the linear kernels (defaults: DEFAULT_SCHEDULE, measured best on V8/x64). */
  schedule?: Partial<LinearSchedule>;
}

export function compileWasm(plan: KernelPlan, opts: CompileOptions = {}): WasmArtifact {
  const { layout, render, plain } = build(plan, !!opts.profile, { ...DEFAULT_SCHEDULE, ...opts.schedule });
  const art: WasmArtifact = { wasm: assemble(plain), layout };
  if (opts.relaxed !== false) art.wasmRelaxed = assemble(render(true), true);
  return art;
}

/** The WASM target's compile half (targets/target.ts). */
export const codegen: TargetCodegen<WasmArtifact> = {
  emit: (plan, opts = {}) => compileWasm(plan, opts as CompileOptions),
  print(_art, plan) {
    // the module's kernel functions, each with the plan kernels that call it (one phase of a kernel each)
    const b = build(plan, false, DEFAULT_SCHEDULE);
    const src = new Map(planPrograms(plan).flatMap((p) => p.kernels.map((k) => [k.name, k] as const)));
    return b.listing().map((f) => ({
      kernels: f.kernels,
      src: [...new Set(f.kernels.flatMap((k) => src.get(k)?.src ?? []))],
      title: `${f.name}: ${[...new Set(f.kernels.map((k) => src.get(k)?.kind))].join(', ')} phase (WAT, f32x4 SIMD)`,
      code: f.text,
    }));
  },
  files: (art) => ({
    'model.wasm': art.wasm,
    ...(art.wasmRelaxed ? { 'model.relaxed.wasm': art.wasmRelaxed } : {}),
    'layout.json': JSON.stringify(art.layout),
  }),
};

