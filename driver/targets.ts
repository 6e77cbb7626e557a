/**
 * A plan on a target, through the registry: open the device (GPU targets, whose limits shape the code),
 * generate the artifact, load it with weights. The one place a target name becomes a running model.
 */
import type { Graph } from '../ir/node.ts';
import type { KernelPlan } from '../kernels/plan.ts';
import type { TensorReader } from '../kernels/weights.ts';
import { UserError } from '../kernels/errors.ts';
import type { TargetModel, TargetOptions, WeightProvider } from '../targets/backend.ts';
import { getTarget } from '../targets/registry.ts';
import type { Target } from '../targets/target.ts';

export interface PlanLoadOptions extends TargetOptions {
  /** Lower (never raise) device limits, e.g. to exercise a GPU target's split paths. */
  limits?: Record<string, number>;
  /** Anything else is handed to the target's codegen and runtime (e.g. wgsl's embedOnHost, wasm's relaxed). */
  [option: string]: unknown;
}

function planTarget(name: string): Required<Pick<Target, 'codegen' | 'runtime'>> & Target {
  const t = getTarget(name);
  if (!t.codegen || !t.runtime) throw new UserError(`target '${name}' runs the IR graph, not a compiled plan`);
  return t as Required<Pick<Target, 'codegen' | 'runtime'>> & Target;
}

/** The smaller of each limit. */
function capLimits(device: Record<string, number> | undefined, cap: Record<string, number> | undefined) {
  if (!device) return cap;
  const out = { ...device };
  for (const [k, v] of Object.entries(cap ?? {})) out[k] = Math.min(v, out[k] ?? Infinity);
  return out;
}


export async function loadPlan(name: string, plan: KernelPlan, weights: WeightProvider, opts: PlanLoadOptions = {}): Promise<TargetModel> {
  const t = planTarget(name);
  const [codegen, runtime] = await Promise.all([t.codegen(), t.runtime()]);
  const opened = await runtime.openDevice?.(opts);
  try {
    const artifact = codegen.emit(plan, { ...opts, limits: capLimits(opened?.limits, opts.limits) });
    return await runtime.load(artifact, weights, { ...opts, opened });
  } catch (e) {
    opened?.release();
    throw e;
  }
}

/** The unfused graph on a target that runs IR (the reference interpreter, 'ref'). */
export async function loadGraph(name: string, graph: Graph, read: TensorReader): Promise<TargetModel> {
  const t = getTarget(name);
  if (!t.graph) throw new UserError(`target '${name}' runs a compiled plan, not the IR graph`);
  return ((await t.graph()) as (g: Graph, r: TensorReader) => TargetModel)(graph, read);
}
