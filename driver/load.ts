/**
 * Loading models in Node, with the compiler (the driver layer): build the graph from a DSL file, compile it, load the
 * target, and (`load`) wrap it in a Session with a tokenizer. This is the one place `--target`
 * becomes a running model. A generated package does the same from a precompiled artifact, without
 * the compiler, through runtime/session.ts alone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Graph } from '../ir/node.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { initialState, openModel, type OpenModel } from '../runtime/model.ts';
import type { TargetModel, WeightProvider } from '../targets/backend.ts';
import { getTarget } from '../targets/registry.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { Session } from '../runtime/session.ts';
import { loadWorldTokenizer, type WorldTokenizer } from '../runtime/tokenizer.ts';
import { loadGraph, loadPlan } from './targets.ts';

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

/** Does the nearest package.json above `dir` say "type": "module" (so tsx loads .ts there as ESM)? */
function isEsmFolder(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p)) {
      try { return JSON.parse(readFileSync(p, 'utf8')).type === 'module'; } catch { return false; }
    }
    if (dirname(d) === d) return false;
  }
}

/** Load a DSL file and build its graph for `config`. */
export async function buildGraph(dsl: string, config: ModelConfig): Promise<Graph> {
  let mod: { default?: unknown };
  if (!existsSync(dsl)) throw new UserError(`${dsl}: no such model description`);
  if (dsl.endsWith('.ts') && !isEsmFolder(dirname(resolve(dsl))))
    throw new UserError(`${dsl}: a model description is an ES module: name it .mts, or put it beside a package.json with "type": "module"`);
  try {
    mod = await import(pathToFileURL(resolve(dsl)).href);
  } catch (e) {
    throw new UserError(`${dsl}: cannot load the model description: ${(e as Error).message.split('\n')[0]}`);
  }
  const fn = mod.default;
  if (typeof fn !== 'function') throw new UserError(`${dsl}: the default export must be a function (config) => Graph`);
  return (fn as (c: ModelConfig) => Graph)(config);
}

/** Weights for a plan from a checkpoint, reporting progress as each is read. */
export function weightProvider(plan: KernelPlan, model: OpenModel, onProgress?: TargetChoice['onProgress']): WeightProvider {
  let done = 0;
  return (d) => {
    const v = materializeWeight(d.source, model.read);
    onProgress?.('weights', ++done, plan.weights.length);
    return v;
  };
}

export async function loadTargetForModel(target: string, model: OpenModel, o: TargetChoice): Promise<TargetModel> {
  const graph = await buildGraph(o.dsl, model.config);
  if (getTarget(target).graph) return loadGraph(target, graph, model.read);
  const { plan } = compileGraph(graph, model.config, { weights: o.weights as WeightDType, logits: o.logits, batch: o.batch });
  return loadPlan(target, plan, weightProvider(plan, model, o.onProgress), { threads: o.threads });
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

export const DEFAULT_DSL = resolve(import.meta.dirname, '..', 'examples', 'finch.ts');

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
