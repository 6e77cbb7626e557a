/**
 * Loading models in Node, with the compiler (the driver layer): build the graph from a DSL file, compile it, load the
 * target, and (`load`) wrap it in a Session with a tokenizer. This is the one place `--target`
 * becomes a running model. A generated package does the same from a precompiled artifact, without
 * the compiler, through runtime/session.ts alone.
 */
import { UserError } from '../kernels/errors.ts';
import { initialState, openModel, type OpenModel } from '../runtime/model.ts';
import type { TargetModel, WeightProvider } from '../targets/backend.ts';
import { getTarget } from '../targets/registry.ts';
import { compileGraph } from '../compiler/index.ts';
import { checkpointProvider } from '../runtime/checkpoint/provider.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { Session } from '../runtime/session.ts';
import { loadWorldTokenizer, type WorldTokenizer } from '../runtime/tokenizer.ts';
import { loadGraph, loadPlan } from './targets.ts';
import { ALL_FORMATS, checkFits } from './limits.ts';
import { buildGraph, DEFAULT_DSL } from './dsl.ts';
import { checkThreads } from './threads.ts';

export interface TargetChoice {
  dsl: string;
  weights: string;
  threads?: number;
  logits: 'all' | 'last';
  /** Also compile a batch program for up to this many sequences decoded together. */
  batch?: number;
  /** Progress while compiling and loading weights (phase, done, total). */
  onProgress?: (phase: string, done: number, total: number) => void;
}

/** Weights for a plan from a checkpoint, reporting progress as each is read. */
export function weightProvider(plan: KernelPlan, model: OpenModel, onProgress?: TargetChoice['onProgress']): WeightProvider {
  return checkpointProvider(plan, model.ckpt, onProgress);
}

export async function loadTargetForModel(target: string, model: OpenModel, o: TargetChoice): Promise<TargetModel> {
  checkThreads(o.threads);
  const graph = await buildGraph(o.dsl, model.config);
  if (getTarget(target).graph) return loadGraph(target, graph, model.read);
  const compile = (weights: WeightDType) => compileGraph(graph, model.config, { weights, logits: o.logits, batch: o.batch }).plan;
  const plan = compile(o.weights as WeightDType);
  // Before anything is allocated: a model that cannot fit is one line naming the need, the limit and what fits.
  // (GPU targets check when lowering for the device's own limits, which only the opened device knows.)
  if (target === 'wasm') await checkFits(target, plan, { threads: o.threads }, { formats: ALL_FORMATS, plan: compile });
  return loadPlan(target, plan, weightProvider(plan, model, o.onProgress), { threads: o.threads, onProgress: o.onProgress });
}

export interface LoadOptions {
  /** A registered target (targets/registry.ts); default 'wasm'. */
  target?: string;
  /** Storage of the big matrices. Default f32. */
  weights?: WeightDType;
  /** WASM worker threads. Default: all cores. */
  threads?: number;
  /** Path of rwkv_vocab_v20230424.txt, or a tokenizer; needed for text (generate). */
  vocab?: string | WorldTokenizer;
  /** Compile a batch program too, for Session.decodeBatch of up to this many sequences. */
  batch?: number;
  /** Model description. Default examples/finch.ts of this package. */
  dsl?: string;
  /** Progress while loading (phase name, done, total). */
  onProgress?: (phase: string, done: number, total: number) => void;
}

export async function load(checkpoint: string, o: LoadOptions = {}): Promise<Session> {
  const model = openModel(checkpoint);
  const target = await loadTargetForModel(o.target ?? 'wasm', model, {
    dsl: o.dsl ?? DEFAULT_DSL, weights: o.weights ?? 'f32', threads: o.threads, logits: 'last', batch: o.batch, onProgress: o.onProgress,
  });
  const init = initialState(model);
  model.close();
  const tok = typeof o.vocab === 'string' ? loadWorldTokenizer(o.vocab) : o.vocab;
  return new Session(target, model.config, tok, init);
}
