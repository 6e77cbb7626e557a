/**
 * weight-storage: the dtype each weight is kept in on the target. Every matrix a decode step streams
 * (projections, the head, the ddlerp and decay LoRA factors: these are 9% of the f32 bytes of a
 * 0.1B model, so leaving them f32 under int8 costs ~10% of decode speed) takes the requested format,
 * as rwkv.cpp quantises every 2-D tensor; vectors stay f32. int8, q4_0 and q4_1 need rows that are a
 * whole number of 32-blocks, else f16; the embedding, read one row per token, is kept in f16 under them
 * (it costs memory only, not decode bandwidth), and under bf16 when ln0 was folded into it.
 */
import type { WeightDType } from '../../kernels/plan.ts';
import type { Graph, Node } from '../../ir/node.ts';
import { linearInputs, tokenShiftInputs, wkvInputs } from '../../ir/fused.ts';
import { INT8_BLOCK, isBlockFormat } from '../../kernels/dtype.ts';
import type { Rule } from '../rewrite.ts';

export function weightStorage(g: Graph, dtype: WeightDType): Rule {
  // the weight slot of every linear group and every embedding table
  const big = new Set<number>();
  const tables = new Set<number>();
  for (const n of g.nodes) {
    if (n.op === 'linear') for (const gr of linearInputs.of(n)) big.add(gr.w.id);
    if (n.op === 'embed') tables.add(n.inputs[1].id);
    const lora = n.op === 'token_shift' ? tokenShiftInputs.of(n).lora : null;
    if (lora) big.add(lora.a.id).add(lora.b.id);
    const decay = n.op === 'wkv_fused' ? wkvInputs.of(n).decay : null;
    if (decay?.kind === 'lora') big.add(decay.b.id);
  }
  return (n: Node, ctx) => {
    if (n.op !== 'weight' || n.attrs.storage) return undefined;
    let storage: WeightDType = 'f32';
    const cols = n.attrs.shape[n.attrs.shape.length - 1];
    if (big.has(n.id)) storage = isBlockFormat(dtype) && cols % INT8_BLOCK ? 'f16' : dtype;
    // The folded embedding (LN(emb) in f32) is not a bf16 table any more: rounding it back to bf16
    // moves logits by ~0.02 (RWKV6.md §3), f16 keeps 3 more bits. Decode reads one row, so it costs memory only.
    if (tables.has(n.id)) storage = isBlockFormat(dtype) || (dtype === 'bf16' && n.attrs.fold) ? 'f16' : dtype;
    return ctx.emit('weight', [], { ...n.attrs, storage }, n.loc);
  };
}
