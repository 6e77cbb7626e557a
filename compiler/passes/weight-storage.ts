/**
 * weight-storage: the dtype each weight is kept in on the target. The big matrices (projections, the
 * head, the embedding) take the requested format, since they are what decode streams; vectors and
 * the LoRA factors stay f32 (a small share of the bytes, and the ddlerp is sensitive to them).
 * int8 needs rows that are a whole number of 32-blocks; the embedding, read one row per token, is
 * kept in f16 under int8, and under bf16 when ln0 was folded into it.
 */
import type { WeightDType } from '../../kernels/plan.ts';
import type { Graph, Node } from '../../ir/node.ts';
import { INT8_BLOCK } from '../../kernels/dtype.ts';
import type { Rule } from '../rewrite.ts';

export function weightStorage(g: Graph, dtype: WeightDType): Rule {
  // the weight slot of every linear group and every embedding table
  const big = new Set<number>();
  const tables = new Set<number>();
  for (const n of g.nodes) {
    if (n.op === 'linear') {
      let i = 0;
      for (const gr of n.attrs.groups) { big.add(n.inputs[i + 1].id); i += 2 + gr.extra; }
    }
    if (n.op === 'embed') tables.add(n.inputs[1].id);
  }
  return (n: Node, ctx) => {
    if (n.op !== 'weight' || n.attrs.storage) return undefined;
    let storage: WeightDType = 'f32';
    const cols = n.attrs.shape[n.attrs.shape.length - 1];
    if (big.has(n.id)) storage = dtype === 'int8' && cols % INT8_BLOCK ? 'f16' : dtype;
    // The folded embedding (LN(emb) in f32) is not a bf16 table any more: rounding it back to bf16
    // moves logits by ~0.02 (RWKV6.md §3), f16 keeps 3 more bits. Decode reads one row, so it costs memory only.
    if (tables.has(n.id)) storage = dtype === 'int8' || (dtype === 'bf16' && n.attrs.fold) ? 'f16' : dtype;
    return ctx.emit('weight', [], { ...n.attrs, storage }, n.loc);
  };
}
