/**
 * The IR verifier: topological order, references in range, and every node's types as inferTypes
 * computes them. Errors name the DSL source line of the offending node. Broken IR straight from the
 * DSL is the user's mistake (UserError); after a compiler pass it is rwkvc's own (CompilerBug).
 */
import { CompilerBug, UserError } from '../kernels/errors.ts';
import { inferTypes } from './infer.ts';
import type { Graph } from './node.ts';
import { printNode } from './print.ts';
import { fmtLoc, fmtType, sameShape } from './types.ts';

/**
 * Graphs that passed. A graph is immutable data (ir/node.ts), and the verifier a function of it alone, so a
 * graph checked once is not checked again: `compile` verifies the DSL's graph as it loads it and as the
 * pipeline starts (a 61-layer graph's types inferred once more for nothing).
 */
const verified = new WeakSet<Graph>();

export function verifyGraph(g: Graph, stage = 'input', culprit: 'user' | 'compiler' = 'user'): void {
  if (verified.has(g)) return;
  const fail = (msg: string): never => {
    throw culprit === 'user' ? new UserError(msg) : new CompilerBug(msg);
  };
  const bad = (n: { loc?: Parameters<typeof fmtLoc>[0] } | undefined, msg: string): never =>
    fail(`${fmtLoc(n?.loc)}: IR verification failed after ${stage}: ${msg}`);
  g.nodes.forEach((n, idx) => {
    if (n.id !== idx) bad(n, `node %${n.id} is stored at position ${idx}`);
    for (const r of n.inputs) {
      if (r.id >= n.id) bad(n, `${printNode(g, n)} uses %${r.id}, which is not defined before it`);
      if (r.out >= g.nodes[r.id].types.length) bad(n, `%${r.id} has no result #${r.out}`);
    }
    let types;
    try {
      types = inferTypes(n.op, n.inputs.map((r) => g.nodes[r.id].types[r.out]), n.attrs);
    } catch (e) {
      return bad(n, `${n.op}: ${(e as Error).message}`);
    }
    const same = types.length === n.types.length && types.every((t, i) => t.dtype === n.types[i].dtype && sameShape(t.shape, n.types[i].shape));
    if (!same) bad(n, `${printNode(g, n)}: types should be ${types.map(fmtType).join(', ')}`);
  });
  const names = new Set<string>();
  for (const o of g.outputs) {
    if (names.has(o.name)) fail(`IR verification failed after ${stage}: output '${o.name}' is defined twice`);
    names.add(o.name);
    if (!g.nodes[o.ref.id] || o.ref.out >= g.nodes[o.ref.id].types.length)
      fail(`IR verification failed after ${stage}: output '${o.name}' refers to a missing value`);
  }
  if (Object.isFrozen(g) && Object.isFrozen(g.nodes)) verified.add(g); // a graph whose node list can change is checked each time
}
