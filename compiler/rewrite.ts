/**
 * The one rewrite driver every pass uses. It walks the old graph in order and, for each node, asks the
 * pass's rules for a replacement; a node no rule replaces is copied with its inputs remapped. A rule
 * builds its replacement with `ctx.emit` and may also claim other old results (`ctx.replace`), which
 * is how a fusion that absorbs many nodes replaces all of their outputs at once. Inputs are mapped on
 * demand (`ctx.map` copies an old node early if a replacement needs it before its turn), so the new
 * graph stays in topological order. Identical nodes are merged as they are emitted (CSE comes free),
 * and nodes no output reaches are dropped at the end (DCE).
 */
import type { Graph, Node, NodeAttrs, OpName, Ref } from '../ir/node.ts';
import { refKey } from '../ir/node.ts';
import { inferTypes } from '../ir/infer.ts';
import type { SrcLoc } from '../ir/types.ts';

export interface RewriteCtx {
  readonly graph: Graph;
  /** Old-graph nodes that use result `r`. */
  users(r: Ref): Node[];
  /** The old node that produced `r`. */
  producer(r: Ref): Node;
  /** The new-graph value standing for old value `r` (copying its producer now if needed). */
  map(r: Ref): Ref;
  /** Add a node to the new graph; returns its results. */
  emit<K extends OpName>(op: K, inputs: Ref[], attrs: NodeAttrs[K], loc?: SrcLoc, fusedFrom?: SrcLoc[]): Ref[];
  /** Declare that old value `old` is now `now` (for nodes a fusion absorbed); the old node is then done. */
  replace(old: Ref, now: Ref): void;
  /** Mark old nodes as absorbed into a fusion: they are not copied, and nothing may use them after. */
  absorb(nodes: Iterable<Node>): void;
  /** Has a fusion already taken this old node (absorbed it or replaced its result)? */
  done(id: number): boolean;
}

/**
 * Return the new refs of n's results (fewer when a fusion absorbed the rest), or undefined to leave n
 * to the next rule (or a plain copy).
 */
export type Rule = (n: Node, ctx: RewriteCtx) => Ref[] | undefined;

export function rewrite(g: Graph, rules: Rule[]): Graph {
  const users = new Map<string, Node[]>();
  for (const n of g.nodes)
    for (const r of n.inputs) {
      const k = refKey(r);
      if (!users.has(k)) users.set(k, []);
      if (!users.get(k)!.includes(n)) users.get(k)!.push(n);
    }
  for (const o of g.outputs) {
    const k = refKey(o.ref);
    if (!users.has(k)) users.set(k, []);
  }

  const nodes: Node[] = [];
  const mapping = new Map<string, Ref>();
  const handled = new Set<number>();
  const claimed = new Set<number>();
  const interned = new Map<string, number>();

  const ctx: RewriteCtx = {
    graph: g,
    users: (r) => users.get(refKey(r)) ?? [],
    producer: (r) => g.nodes[r.id],
    map(r) {
      if (!mapping.has(refKey(r))) visit(g.nodes[r.id]);
      const m = mapping.get(refKey(r));
      if (!m) throw new Error(`rewrite: value %${r.id}#${r.out} has no replacement`);
      return m;
    },
    emit(op, inputs, attrs, loc, fusedFrom) {
      const key = `${op}|${inputs.map(refKey).join(',')}|${attrsKey(attrs)}`;
      const seen = interned.get(key);
      if (seen !== undefined && op !== 'input') return nodes[seen].types.map((_, out) => ({ id: seen, out }));
      const types = inferTypes(op, inputs.map((r) => nodes[r.id].types[r.out]), attrs);
      const id = nodes.length;
      const node = { id, op, inputs, attrs, types } as { loc?: SrcLoc; fusedFrom?: SrcLoc[] };
      if (loc) node.loc = loc;
      if (fusedFrom?.length) node.fusedFrom = fusedFrom;
      nodes.push(node as Node);
      interned.set(key, id);
      return types.map((_, out) => ({ id, out }));
    },
    replace(old, now) {
      mapping.set(refKey(old), now);
      handled.add(old.id);
      claimed.add(old.id);
    },
    absorb(ns) {
      for (const n of ns) { handled.add(n.id); claimed.add(n.id); }
    },
    done: (id) => claimed.has(id),
  };

  function visit(n: Node): void {
    if (handled.has(n.id)) return;
    // Producers first: when a replacement pulls this node in early, a fusion rooted at one of its
    // producers may absorb it (and then this node is done without being copied).
    for (const r of n.inputs) visit(g.nodes[r.id]);
    if (handled.has(n.id)) return;
    handled.add(n.id);
    for (const rule of rules) {
      const out = rule(n, ctx);
      if (out) {
        out.forEach((r, i) => mapping.set(refKey({ id: n.id, out: i }), r));
        return;
      }
    }
    const refs = ctx.emit(n.op, n.inputs.map(ctx.map), n.attrs as never, n.loc, n.fusedFrom as SrcLoc[] | undefined);
    refs.forEach((r, i) => { if (!mapping.has(refKey({ id: n.id, out: i }))) mapping.set(refKey({ id: n.id, out: i }), r); });
  }

  for (const n of g.nodes) visit(n);
  return deadCodeElimination({ name: g.name, nodes, outputs: g.outputs.map((o) => ({ name: o.name, ref: ctx.map(o.ref) })) });
}

/**
 * The attributes' JSON, once per attrs object: copied nodes keep theirs, so a pass over a 32B-layer graph
 * does not serialise every node's attributes again (the CSE key was most of a pass's time).
 */
const attrsKeys = new WeakMap<object, string>();
function attrsKey(attrs: object): string {
  let k = attrsKeys.get(attrs);
  if (k === undefined) attrsKeys.set(attrs, (k = JSON.stringify(attrs)));
  return k;
}

/** Keep the nodes some output reaches, renumbered in their order. */
function deadCodeElimination(g: Graph): Graph {
  const live = new Set<number>();
  const stack = g.outputs.map((o) => o.ref.id);
  while (stack.length) {
    const id = stack.pop()!;
    if (live.has(id)) continue;
    live.add(id);
    for (const r of g.nodes[id].inputs) stack.push(r.id);
  }
  // graph inputs stay even when unused: they are the model's interface
  for (const n of g.nodes) if (n.op === 'input') live.add(n.id);
  if (live.size === g.nodes.length) return Object.freeze({ name: g.name, nodes: Object.freeze(g.nodes), outputs: Object.freeze(g.outputs) });
  const renum = new Map<number, number>();
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    if (!live.has(n.id)) continue;
    renum.set(n.id, nodes.length);
    nodes.push({ ...n, id: nodes.length, inputs: n.inputs.map((r) => ({ id: renum.get(r.id)!, out: r.out })) } as Node);
  }
  const re = (r: Ref) => ({ id: renum.get(r.id)!, out: r.out });
  return Object.freeze({ name: g.name, nodes: Object.freeze(nodes), outputs: Object.freeze(g.outputs.map((o) => ({ name: o.name, ref: re(o.ref) }))) });
}

/** Locations of old nodes, for a fused node's `fusedFrom`. */
export function locsOf(nodes: Iterable<Node>): SrcLoc[] {
  const out: SrcLoc[] = [];
  const seen = new Set<string>();
  for (const n of nodes)
    for (const l of n.fusedFrom ?? (n.loc ? [n.loc] : [])) {
      const k = `${l.file}:${l.line}:${l.col}`;
      if (!seen.has(k)) { seen.add(k); out.push(l); }
    }
  return out;
}
