/** Choosing and loading a target for a checkpoint: the one place the CLI turns `--target` into a model. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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
