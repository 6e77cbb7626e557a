/**
 * fuse-horizontal: linear nodes that do not depend on each other and become ready at the same point
 * (the same number of kernels from the inputs) run as one launch with several groups: r, k, v, g and
 * the decay LoRA after the time-mix token shift; k and r after the channel-mix token shift.
 */
import type { Graph, Node, NodeOf, Ref } from '../../ir/node.ts';
import { isFused, linearInputs } from '../../ir/fused.ts';
import type { Rule } from '../rewrite.ts';
import { locsOf } from '../rewrite.ts';

const isKernel = (n: Node) => isFused(n) || n.op === 'embed' || n.op === 'layernorm' || n.op === 'rmsnorm';

/** Kernels on the longest path from the inputs to each node. */
function kernelLevels(g: Graph): number[] {
  const lvl: number[] = [];
  for (const n of g.nodes) lvl[n.id] = Math.max(0, ...n.inputs.map((r) => lvl[r.id])) + (isKernel(n) ? 1 : 0);
  return lvl;
}

export function fuseHorizontal(g: Graph): Rule {
  const lvl = kernelLevels(g);
  const batches = new Map<string, NodeOf<'linear'>[]>();
  for (const n of g.nodes)
    if (n.op === 'linear') {
      const key = `${lvl[n.id]}/${n.attrs.rows}`;
      if (!batches.has(key)) batches.set(key, []);
      batches.get(key)!.push(n);
    }
  return (n, ctx) => {
    if (n.op !== 'linear') return undefined;
    const batch = batches.get(`${lvl[n.id]}/${n.attrs.rows}`)!;
    if (batch.length < 2 || batch[0] !== n) return undefined;
    const inputs = linearInputs.pack(batch.flatMap((m) => linearInputs.of(m)).map((g) => ({ x: ctx.map(g.x), w: ctx.map(g.w), extra: g.extra.map(ctx.map) })));
    const refs = ctx.emit('linear', inputs, { groups: batch.flatMap((m) => m.attrs.groups), rows: n.attrs.rows }, n.loc, locsOf(batch));
    let i = 0;
    for (const m of batch) for (let o = 0; o < m.types.length; o++) ctx.replace({ id: m.id, out: o }, refs[i++]);
    return refs.slice(0, n.types.length);
  };
}
