/** Random Finch configs and graph inputs for compiler and target tests (weights: runtime/random-model.ts). */
import type { ModelConfig } from '../../kernels/config.ts';
import { seededRandom } from '../../runtime/random-model.ts';
import { numel } from '../../ir/types.ts';
import type { Graph } from '../../ir/node.ts';

export function tinyConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  const nEmbd = over.nEmbd ?? 128, headSize = over.headSize ?? 64;
  return {
    nLayer: 2, nEmbd, headSize, nHead: nEmbd / headSize, dimFfn: Math.floor((nEmbd * 3.5) / 32) * 32,
    vocabSize: 300, loraMix: 32, loraDecay: 64, ...over,
  };
}

/** Random values for every state input of a graph, and tokens. */
export function randomInputs(g: Graph, T: number, vocab: number, seed: number): Record<string, Float64Array | Int32Array> {
  const rnd = seededRandom(seed);
  const out: Record<string, Float64Array | Int32Array> = {};
  for (const n of g.nodes)
    if (n.op === 'input')
      out[n.attrs.name] = n.attrs.role === 'tokens'
        ? Int32Array.from({ length: T }, () => Math.floor(rnd() * vocab))
        : Float64Array.from({ length: numel(n.attrs.shape, T) }, () => rnd() - 0.5);
  return out;
}
