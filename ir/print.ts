/** A readable text form of a graph: one line per node, `%id = op(inputs) {attrs} : types  # dsl line`. */
import type { Expr } from '../kernels/plan.ts';
import type { Graph, Node, Ref } from './node.ts';
import { fmtLoc, fmtType } from './types.ts';

const fmtRef = (g: Graph, r: Ref) => (g.nodes[r.id]?.types.length > 1 ? `%${r.id}#${r.out}` : `%${r.id}`);

function fmtExpr(e: Expr): string {
  switch (e.op) {
    case 'acc': return 'acc';
    case 'x': return 'x';
    case 'load': return `in${e.buf}`;
    case 'const': return String(e.value);
    default: return `${e.op}(${e.args.map(fmtExpr).join(', ')})`;
  }
}

function fmtAttrs(n: Node): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(n.attrs)) {
    if (n.op === 'linear' && k === 'groups') {
      const gs = n.attrs.groups.map((g) =>
        [g.prologue && `pro=${fmtExpr(g.prologue)}`, g.epilogue && `epi=${fmtExpr(g.epilogue)}`].filter(Boolean).join(' ') || 'plain');
      parts.push(`groups=[${gs.join('; ')}]`);
    } else parts.push(`${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
  return parts.length ? ` {${parts.join(', ')}}` : '';
}

export function printNode(g: Graph, n: Node): string {
  const op = n.op === 'unary' || n.op === 'binary' ? n.attrs.fn : n.op;
  const attrs = n.op === 'unary' || n.op === 'binary' ? '' : fmtAttrs(n);
  const lhs = n.types.length > 1 ? `(${n.types.map((_, i) => `%${n.id}#${i}`).join(', ')})` : `%${n.id}`;
  const where = n.fusedFrom?.length ? `  # fused from ${n.fusedFrom.length} nodes, ${fmtLoc(n.fusedFrom[0])}…` : n.loc ? `  # ${fmtLoc(n.loc)}` : '';
  return `${lhs} = ${op}(${n.inputs.map((r) => fmtRef(g, r)).join(', ')})${attrs} : ${n.types.map(fmtType).join(', ')}${where}`;
}

export function printGraph(g: Graph): string {
  const lines = [`graph ${g.name} {`];
  for (const n of g.nodes) lines.push('  ' + printNode(g, n));
  for (const o of g.outputs) lines.push(`  output ${o.name} = ${fmtRef(g, o.ref)}`);
  lines.push('}');
  return lines.join('\n');
}
