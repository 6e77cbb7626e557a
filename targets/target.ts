/**
 * What a target is. A target turns a KernelPlan into an artifact (its codegen) and runs an artifact
 * with weights (its runtime). The two halves live in separate modules so that a runtime, and a package
 * that ships it, never reaches the code generator:
 *
 *   plan ──codegen.emit──▶ artifact ──codegen.files──▶ files on disk / in a package
 *                             │                            │
 *                             └────────runtime.load◀───runtime.open
 *
 * targets/registry.ts lists every target; nothing else names them.
 */
import type { KernelPlan } from '../kernels/plan.ts';
import type { TensorReader } from '../kernels/weights.ts';
import type { TargetModel, TargetOptions, WeightProvider } from './backend.ts';

/** One generated kernel's text, for `rwkvc compile --emit kernels`. */
export interface KernelSource {
  /** The plan kernels (by name) that run this code. */
  kernels: string[];
  /** DSL source lines the plan kernels were fused from. */
  src: string[];
  /** One line saying what the code is. */
  title: string;
  code: string;
}

/** Files of a saved artifact: path (relative to the artifact's folder) → bytes or text. */
export type ArtifactFiles = Record<string, Uint8Array | string>;

/** Options that shape the generated code. */
export interface EmitOptions {
  /** The device's limits (GPU targets split work to fit them); absent: the target's defaults. */
  limits?: Record<string, number>;
  /** Target-specific switches (e.g. the WASM profiling build). */
  [option: string]: unknown;
}

/** The compile half: needs the compiler's output only, runs in Node at compile time. */
export interface TargetCodegen<A = unknown> {
  emit(plan: KernelPlan, opts?: EmitOptions): A;
  /** Every kernel the artifact holds, as text. */
  print(artifact: A, plan: KernelPlan): KernelSource[];
  /** The artifact as files (what `rwkvc compile -o` and a package write). */
  files(artifact: A): ArtifactFiles;
}

/** A device opened before codegen, because its limits shape the code (WebGPU); handed to load. */
export interface OpenedDevice {
  limits: Record<string, number>;
  /** What it is, in words. */
  description: string;
  release(): void;
}

/** The run half: needs the artifact only (no compiler), runs in Node and, for some targets, browsers. */
export interface TargetRuntime<A = unknown> {
  /** How messages name it ('WASM', 'WebGPU'). */
  label: string;
  /** An artifact back from its files (the inverse of codegen.files). */
  open(files: ArtifactFiles): A;
  /** The plan an artifact runs (its weights are what `load` asks the provider for). */
  plan(artifact: A): KernelPlan;
  /** Why it cannot run here (no GPU, no driver), or null; asked before `target: 'auto'` tries it. */
  unavailable?(): Promise<string | null>;
  /** What runs a loaded model, for display (threads, SIMD variant, the adapter). */
  describe?(model: TargetModel): { description: string; threads?: number; adapter?: string; notes?: string[] };
  /** GPU targets: open the device first, so codegen can respect its limits. */
  openDevice?(opts: TargetOptions): Promise<OpenedDevice>;
  /** Loads the artifact; an `opened` device becomes the model's (its dispose releases it). */
  load(artifact: A, weights: WeightProvider, opts?: TargetOptions & { opened?: OpenedDevice; [option: string]: unknown }): Promise<TargetModel>;
}

export interface Target {
  name: string;
  /** One line for `--help` and the README's table. */
  description: string;
  /** Test infrastructure or a simulator: accepted by name, left out of the lists users see. */
  hidden?: boolean;
  /**
   * The runtime module, from the repository root, when a generated package ships this target (it must
   * run without the compiler; `--emit package` copies it and what it imports).
   */
  packaged?: string;
  /** Emit options when the artifact is written to files (e.g. CUDA: also PTX for sm_80). */
  saveOptions?: EmitOptions;
  /**
   * The reference interpreter runs the unfused IR graph itself (no plan, no artifact). The graph is
   * ir/node.ts's Graph, typed opaquely here: targets build on the plan, not on the IR.
   */
  graph?: () => Promise<(graph: never, read: TensorReader) => TargetModel>;
  codegen?: () => Promise<TargetCodegen>;
  runtime?: () => Promise<TargetRuntime>;
}
