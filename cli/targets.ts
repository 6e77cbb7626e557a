/** Choosing and loading a target for a checkpoint: the one place the CLI turns `--target` into a model. */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Graph } from '../ir/node.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { UserError } from '../runtime/errors.ts';
import type { OpenModel } from '../runtime/model.ts';
import type { TargetModel } from '../targets/backend.ts';
import { loadRefTarget } from '../targets/ref/runtime.ts';
import { loadPlanTarget } from '../targets/plan/runtime.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import type { WeightDType } from '../kernels/plan.ts';

export const TARGETS = ['ref', 'plan'];

export interface TargetChoice {
  dsl: string;
  weights: string;
  threads?: number;
  logits: 'all' | 'last';
}

/** Load a DSL file and build its graph for `config`. */
export async function buildGraph(dsl: string, config: ModelConfig): Promise<Graph> {
  let mod: { default?: unknown };
  try {
    mod = await import(pathToFileURL(resolve(dsl)).href);
  } catch (e) {
    throw new UserError(`${dsl}: cannot load the model description: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof mod.default !== 'function') throw new UserError(`${dsl}: the default export must be a function (config) => Graph`);
  return (mod.default as (c: ModelConfig) => Graph)(config);
}

export async function loadTargetForModel(target: string, model: OpenModel, o: TargetChoice): Promise<TargetModel> {
  const graph = await buildGraph(o.dsl, model.config);
  switch (target) {
    case 'ref':
      return loadRefTarget(graph, model.read);
    case 'plan': {
      const { plan } = compileGraph(graph, model.config, { weights: o.weights as WeightDType, logits: o.logits });
      return loadPlanTarget(plan, (d) => materializeWeight(d.source, model.read));
    }
    default:
      throw new UserError(`--target: unknown target '${target}'`);
  }
}
