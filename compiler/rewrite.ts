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
import { inferTypes } from '../ir/infer.ts';
import { sameShape, type SrcLoc, type TensorType } from '../ir/types.ts';

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
  /** Is old value `r` a graph output? */
  isOutput(r: Ref): boolean;
}

/**
 * Return the new refs of n's results (fewer when a fusion absorbed the rest), or undefined to leave n
 * to the next rule (or a plain copy).
 */
export type Rule = (n: Node, ctx: RewriteCtx) => Ref[] | undefined;

export function rewrite(g: Graph, rules: Rule[]): Graph {
  // Per old node and result, indexed by id then out: rewriting a 64-layer graph takes ~10 passes, so the
  // bookkeeping is arrays, not maps keyed by strings.
  const N = g.nodes.length;
  let users: Node[][][] | undefined; // built on the first question: the passes that only rewrite nodes in place never ask
  const usersOf = (r: Ref) => {
    if (!users) {
      users = new Array(N);
      for (const n of g.nodes)
        for (const i of n.inputs) {
          const byOut = (users[i.id] ??= []), us = (byOut[i.out] ??= []);
          if (us[us.length - 1] !== n) us.push(n); // n's inputs are seen together, so a repeated user is the last one
        }
    }
    return users[r.id]?.[r.out] ?? none;
  };
  let outputs: number[][] | undefined; // per old node, its results that are graph outputs

  const nodes: Node[] = [];
  const mapping: (Ref | undefined)[][] = new Array(N);
  const handled = new Uint8Array(N);
  const claimed = new Uint8Array(N);
  const interned = new Map<string, number>();
  const mapped = (r: Ref) => mapping[r.id]?.[r.out];
  const setMapping = (r: Ref, now: Ref) => { (mapping[r.id] ??= [])[r.out] = now; };

  /** emit, with the result types when the caller knows them (a copy whose inputs kept their types). */
  function add(op: OpName, inputs: Ref[], attrs: object, loc: SrcLoc | undefined, fusedFrom: readonly SrcLoc[] | undefined, known?: readonly TensorType[]): Ref[] {
    let key = op + '|';
    for (const r of inputs) key += r.out ? `${r.id}.${r.out},` : `${r.id},`;
    key += '|' + attrsKey(attrs);
    const seen = interned.get(key);
    if (seen !== undefined && op !== 'input') return refsOf(seen, nodes[seen].types.length);
    const types = known ?? inferTypes(op, inputs.map((r) => nodes[r.id].types[r.out]), attrs as never);
    const id = nodes.length;
    const node = { id, op, inputs, attrs, types } as { loc?: SrcLoc; fusedFrom?: readonly SrcLoc[] };
    if (loc) node.loc = loc;
    if (fusedFrom?.length) node.fusedFrom = fusedFrom;
    nodes.push(node as Node);
    interned.set(key, id);
    return refsOf(id, types.length);
  }

  const ctx: RewriteCtx = {
    graph: g,
    users: usersOf,
    producer: (r) => g.nodes[r.id],
    map(r) {
      let m = mapped(r);
      if (m) return m;
      visit(g.nodes[r.id]);
      m = mapped(r);
      if (!m) throw new Error(`rewrite: value %${r.id}#${r.out} has no replacement`);
      return m;
    },
    emit: (op, inputs, attrs, loc, fusedFrom) => add(op, inputs, attrs, loc, fusedFrom),
    replace(old, now) {
      setMapping(old, now);
      handled[old.id] = claimed[old.id] = 1;
    },
    absorb(ns) {
      for (const n of ns) handled[n.id] = claimed[n.id] = 1;
    },
    done: (id) => claimed[id] === 1,
    isOutput(r) {
      if (!outputs) {
        outputs = new Array(N);
        for (const o of g.outputs) (outputs[o.ref.id] ??= []).push(o.ref.out);
      }
      return !!outputs[r.id]?.includes(r.out);
    },
  };

  function visit(n: Node): void {
    if (handled[n.id]) return;
    // Producers first: when a replacement pulls this node in early, a fusion rooted at one of its
    // producers may absorb it (and then this node is done without being copied).
    for (const r of n.inputs) if (!handled[r.id]) visit(g.nodes[r.id]);
    if (handled[n.id]) return;
    handled[n.id] = 1;
    for (const rule of rules) {
      const out = rule(n, ctx);
      if (out) {
        out.forEach((r, i) => setMapping({ id: n.id, out: i }, r));
        return;
      }
    }
    // A copy: its types are the old ones when every input kept its type (inferTypes is a function of
    // op, input types and attrs), which spares re-inferring most of the graph in every pass.
    let sameTypes = true;
    const inputs = n.inputs.map((r) => {
      const m = ctx.map(r);
      if (sameTypes && !sameType(nodes[m.id].types[m.out], g.nodes[r.id].types[r.out])) sameTypes = false;
      return m;
    });
    const refs = add(n.op, inputs, n.attrs, n.loc, n.fusedFrom, sameTypes ? n.types : undefined);
    refs.forEach((r, i) => { if (!mapped({ id: n.id, out: i })) setMapping({ id: n.id, out: i }, r); });
  }

  for (const n of g.nodes) visit(n);
  return deadCodeElimination({ name: g.name, nodes, outputs: g.outputs.map((o) => ({ name: o.name, ref: ctx.map(o.ref) })) });
}

const sameType = (a: TensorType, b: TensorType) => a === b || (a.dtype === b.dtype && sameShape(a.shape, b.shape));

const none: Node[] = [];

function refsOf(id: number, count: number): Ref[] {
  if (count === 1) return [{ id, out: 0 }];
  const refs: Ref[] = [];
  for (let out = 0; out < count; out++) refs.push({ id, out });
  return refs;
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
  const live = new Uint8Array(g.nodes.length);
  const stack = g.outputs.map((o) => o.ref.id);
  // graph inputs stay even when unused: they are the model's interface
  for (const n of g.nodes) if (n.op === 'input') stack.push(n.id);
  let count = 0;
  while (stack.length) {
    const id = stack.pop()!;
    if (live[id]) continue;
    live[id] = 1;
    count++;
    for (const r of g.nodes[id].inputs) if (!live[r.id]) stack.push(r.id);
  }
  if (count === g.nodes.length) return Object.freeze({ name: g.name, nodes: Object.freeze(g.nodes), outputs: Object.freeze(g.outputs) });
  const renum = new Int32Array(g.nodes.length);
  const nodes: Node[] = [];
  const re = (r: Ref) => ({ id: renum[r.id], out: r.out });
  for (const n of g.nodes) {
    if (!live[n.id]) continue;
    renum[n.id] = nodes.length;
    const copy = { id: nodes.length, op: n.op, inputs: n.inputs.map(re), attrs: n.attrs, types: n.types } as { loc?: SrcLoc; fusedFrom?: readonly SrcLoc[] };
    if (n.loc) copy.loc = n.loc;
    if (n.fusedFrom) copy.fusedFrom = n.fusedFrom;
    nodes.push(copy as Node);
  }
  return Object.freeze({ name: g.name, nodes: Object.freeze(nodes), outputs: Object.freeze(g.outputs.map((o) => ({ name: o.name, ref: re(o.ref) }))) });
}

/** Locations of old nodes, for a fused node's `fusedFrom`. */
export function locsOf(nodes: Iterable<Node>): SrcLoc[] {
  const out: SrcLoc[] = [];
  const seen = new Set<string>(), seenObjects = new Set<SrcLoc>(); // nodes from one DSL line share its SrcLoc object
  const add = (l: SrcLoc) => {
    if (seenObjects.has(l)) return;
    seenObjects.add(l);
    const k = `${l.file}:${l.line}:${l.col}`;
    if (!seen.has(k)) { seen.add(k); out.push(l); }
  };
  for (const n of nodes)
    if (n.fusedFrom) for (const l of n.fusedFrom) add(l);
    else if (n.loc) add(n.loc);
  return out;
}
