/** The compiler's entry point: graph → passes → KernelPlan. */
import type { Graph } from '../ir/node.ts';
import type { ModelConfig } from '../kernels/config.ts';
import type { KernelPlan } from '../kernels/plan.ts';
import { lowerPlan } from './lower.ts';
import { runPipeline, type CompileOptions, type PipelineHooks, type PassTiming } from './pipeline.ts';

export interface CompileResult {
  plan: KernelPlan;
  graph: Graph;
  timings: PassTiming[];
}

export function compileGraph(g: Graph, config: ModelConfig, o: CompileOptions & { chunk?: number; batch?: number }, hooks?: PipelineHooks): CompileResult {
  const { graph, timings } = runPipeline(g, o, hooks);
  hooks?.onPhase?.('passes');
  const plan = lowerPlan(graph, config, o.chunk ?? 128, o.batch ?? 0);
  hooks?.onPhase?.('lower → plan');
  return { plan, graph, timings };
}
