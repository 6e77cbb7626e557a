/**
 * logits-last: when only the next token's logits are wanted, the head (the linear producing the
 * `logits` output) computes one row instead of T: for a 512-token prefill chunk that is 511 fewer
 * V×C matvecs.
 */
import type { Graph } from '../../ir/node.ts';
import type { Rule } from '../rewrite.ts';

export function logitsLast(g: Graph): Rule {
  const head = g.outputs.find((o) => o.name === 'logits')?.ref;
  return (n, ctx) => {
    if (!head || n.id !== head.id || n.op !== 'linear' || n.attrs.groups.length !== 1 || n.attrs.rows === 'last') return undefined;
    return ctx.emit('linear', n.inputs.map(ctx.map), { ...n.attrs, rows: 'last' }, n.loc, n.fusedFrom as never);
  };
}
