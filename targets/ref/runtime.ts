/**
 * The `ref` target: the unfused IR graph run by the reference interpreter (f64). It is what the
 * official numbers are checked against, and what `--target plan` is checked against.
 */
import type { Graph } from '../../ir/node.ts';
import { interpret, type Inputs } from '../../ir/interp.ts';
import type { TensorReader } from '../../kernels/weights.ts';
import type { StateTensors, TargetModel } from '../backend.ts';
import { numel } from '../../ir/types.ts';
import { guardDisposed } from '../model-base.ts';

export function loadRefTarget(graph: Graph, read: TensorReader): TargetModel {
  // read every weight now: the checkpoint may be closed once the model is loaded
  const cache = new Map<string, Float32Array>();
  for (const n of graph.nodes) {
    if (n.op !== 'weight') continue;
    for (const name of [n.attrs.name, ...(n.attrs.fold ? [n.attrs.fold.w, n.attrs.fold.b] : [])])
      if (!cache.has(name)) cache.set(name, read(name));
  }
  const cachedRead = (name: string) => cache.get(name) ?? read(name);
  const state = new Map<string, Float64Array>();
  for (const n of graph.nodes)
    if (n.op === 'input' && n.attrs.role === 'state') state.set(n.attrs.name, new Float64Array(numel(n.attrs.shape, 1)));

  return guardDisposed({
    target: 'ref',
    maxTokens: Infinity,
    async run(_program, tokens) {
      const inputs: Inputs = { tokens, ...Object.fromEntries(state) };
      const out = interpret(graph, tokens.length, inputs, cachedRead);
      for (const name of state.keys()) state.set(name, out[name].data);
      return Float32Array.from(out.logits.data);
    },
    readState: async () => Object.fromEntries([...state].map(([k, v]) => [k, Float32Array.from(v)])) as StateTensors,
    writeState: async (s) => { for (const [k, v] of Object.entries(s)) if (state.has(k)) state.set(k, Float64Array.from(v)); },
    dispose: () => {},
  });
}
