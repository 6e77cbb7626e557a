/**
 * Every target, in the order `target: 'auto'` tries them where it applies. Adding a target is an entry
 * here plus its folder (docs/adding-a-target.md); the CLI's --target choices, bench, demo, packaging
 * and the conformance tests (test/targets/) read this list.
 */
import { UserError } from '../kernels/errors.ts';
import type { Target } from './target.ts';

export const TARGETS: readonly Target[] = [
  {
    name: 'ref',
    description: 'the unfused IR graph in the reference interpreter (f64): the truth the others are checked against',
    graph: async () => (await import('./ref/runtime.ts')).loadRefTarget,
  },
  {
    name: 'plan',
    description: "the compiled kernel plan with each kernel's reference semantics (f64): checks the compiler's fusions",
    codegen: async () => (await import('./plan/codegen.ts')).codegen,
    runtime: async () => (await import('./plan/runtime.ts')).runtime,
  },
  {
    name: 'wgsl',
    description: 'WebGPU compute shaders: Dawn in Node (a hardware GPU, else SwiftShader) or navigator.gpu',
    packaged: 'targets/wgsl/runtime.ts',
    codegen: async () => (await import('./wgsl/codegen.ts')).codegen,
    runtime: async () => (await import('./wgsl/runtime.ts')).runtime,
  },
  {
    name: 'wasm',
    description: 'WASM-SIMD kernels (relaxed-SIMD FMA when the engine has it), rows split over worker threads',
    packaged: 'targets/wasm/runtime.ts',
    codegen: async () => (await import('./wasm/codegen.ts')).codegen,
    runtime: async () => (await import('./wasm/runtime.ts')).runtime,
  },
  {
    name: 'cuda',
    description: 'CUDA kernels (one .cu, a launch table, PTX the driver JITs) through the driver API: NVIDIA GPUs',
    saveOptions: { ptx: ['sm_80'] },
    codegen: async () => (await import('./cuda/codegen.ts')).codegen,
    runtime: async () => (await import('./cuda/runtime.ts')).runtime,
  },
  {
    name: 'cuda-sim',
    description: 'the generated CUDA compiled for the CPU with an emulation header (test infrastructure: checks the CUDA kernels without a GPU)',
    hidden: true,
    codegen: async () => (await import('./cuda/codegen.ts')).codegen,
    runtime: async () => (await import('./cuda/sim/runtime.ts')).runtime,
  },
];

/** Names users may pick (hidden targets are accepted but not listed). */
const targetNames = (): string[] => TARGETS.filter((t) => !t.hidden).map((t) => t.name);

/** Targets that run a compiled plan (every target but the interpreter). */
export const planTargets = (): Target[] => TARGETS.filter((t) => t.codegen && t.runtime);

export function getTarget(name: string): Target {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new UserError(`--target: unknown target '${name}' (${targetNames().join(', ')})`);
  return t;
}
