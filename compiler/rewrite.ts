/**
 * The one rewrite driver every pass uses. It walks the old graph in order and, for each node, asks the
 * pass's rules for a replacement; a node no rule replaces is copied with its inputs remapped. A rule
 * builds its replacement with `ctx.emit` and may also claim other old results (`ctx.replace`), which
 * is how a fusion that absorbs many nodes replaces all of their outputs at once. Inputs are mapped on
 * demand (`ctx.map` copies an old node early if a replacement needs it before its turn), so the new
 * graph stays in topological order. Identical nodes are merged as they are emitted (CSE comes free),
 * and nodes no output reaches are dropped at the end (DCE).
 */
import type { Graph, GraphOutput, Node, NodeAttrs, OpName, Ref } from '../ir/node.ts';
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
  return new Rewriter(g, rules).run();
}

/**
 * One rewrite's state. The bookkeeping is flat arrays indexed by result slot (slot(id, out) = base[id] + out),
 * the loops are indexed and the hot code is methods, not closures made per call: the compiler runs once per
 * command, so a pass mostly runs before the JIT has optimised it, where every iterator step and small array
 * is garbage (a 61-layer graph, ~6k nodes, goes through ~10 passes), and closures made afresh for each pass
 * would be optimised afresh for each.
 */
class Rewriter {
  private readonly old: readonly Node[];
  private readonly base: Int32Array;
  private users: Node[][] | undefined; // built on the first question: the passes that only rewrite nodes in place never ask
  private outputs: number[][] | undefined; // per old node, its results that are graph outputs
  private readonly nodes: Node[] = [];
  /** Per new node, its results: one Ref object per result, shared by every use. */
  private readonly results: Ref[][] = [];
  private readonly mapping: (Ref | undefined)[];
  private readonly handled: Uint8Array;
  private readonly claimed: Uint8Array;
  // CSE: new nodes by a hash of (op, attributes, inputs); nodes with the same hash are chained through `sameHash`
  private readonly byHash = new Map<number, number>();
  private readonly sameHash: number[] = [];
  /** Per new node, the number standing for its op and attributes. */
  private readonly attrIdOf: number[] = [];
  private readonly attrIds = new Map<string, Map<string, number>>(); // op → attributes' JSON → number
  private attrCount = 0;
  private readonly ctx: RewriteCtx;

  constructor(private readonly g: Graph, private readonly rules: Rule[]) {
    const old = (this.old = g.nodes), N = old.length;
    const base = (this.base = new Int32Array(N + 1));
    for (let i = 0; i < N; i++) base[i + 1] = base[i] + old[i].types.length;
    this.mapping = new Array(base[N]);
    this.handled = new Uint8Array(N);
    this.claimed = new Uint8Array(N);
    // rules call these detached (`xs.map(ctx.map)`), so they are bound
    this.ctx = {
      graph: g,
      users: (r) => this.usersOf(r),
      producer: (r) => old[r.id],
      map: (r) => this.map(r),
      emit: (op, inputs, attrs, loc, fusedFrom) => this.results[this.add(op, inputs, attrs, loc, fusedFrom)].slice(),
      replace: (o, now) => {
        this.mapping[base[o.id] + o.out] = now;
        this.handled[o.id] = this.claimed[o.id] = 1;
      },
      absorb: (ns) => {
        for (const n of ns) this.handled[n.id] = this.claimed[n.id] = 1;
      },
      done: (id) => this.claimed[id] === 1,
      isOutput: (r) => {
        if (!this.outputs) {
          this.outputs = new Array(N);
          for (const o of g.outputs) (this.outputs[o.ref.id] ??= []).push(o.ref.out);
        }
        return !!this.outputs[r.id]?.includes(r.out);
      },
    };
  }

  run(): Graph {
    for (let i = 0; i < this.old.length; i++) this.visit(this.old[i]);
    const outs = this.g.outputs.map((o) => ({ name: o.name, ref: this.map(o.ref) }));
    return deadCodeElimination(this.g.name, this.nodes, this.results, outs);
  }

  private usersOf(r: Ref): Node[] {
    const base = this.base;
    if (!this.users) {
      const old = this.old, users: Node[][] = (this.users = new Array(base[old.length]));
      for (let j = 0; j < old.length; j++) {
        const n = old[j], ins = n.inputs;
        for (let k = 0; k < ins.length; k++) {
          const s = base[ins[k].id] + ins[k].out, us = (users[s] ??= []);
          if (us[us.length - 1] !== n) us.push(n); // n's inputs are seen together, so a repeated user is the last one
        }
      }
    }
    return this.users[base[r.id] + r.out] ?? none;
  }

  private map(r: Ref): Ref {
    const s = this.base[r.id] + r.out;
    let m = this.mapping[s];
    if (m) return m;
    this.visit(this.old[r.id]);
    m = this.mapping[s];
    if (!m) throw new Error(`rewrite: value %${r.id}#${r.out} has no replacement`);
    return m;
  }

  /** emit, with the result types when the caller knows them (a copy whose inputs kept their types); returns the new node's id. */
  private add(op: OpName, inputs: Ref[], attrs: object, loc: SrcLoc | undefined, fusedFrom: readonly SrcLoc[] | undefined, known?: readonly TensorType[]): number {
    let ofOp = this.attrIds.get(op);
    if (!ofOp) this.attrIds.set(op, (ofOp = new Map()));
    const a = attrsKey(attrs);
    let aid = ofOp.get(a);
    if (aid === undefined) ofOp.set(a, (aid = this.attrCount++));
    let h = aid;
    for (let k = 0; k < inputs.length; k++) h = (Math.imul(h, 31) + inputs[k].id * 8 + inputs[k].out) & 0x3fffffff; // a small integer: no boxed Map keys
    const nodes = this.nodes, first = this.byHash.get(h);
    if (op !== 'input')
      for (let id = first ?? -1; id >= 0; id = this.sameHash[id]) if (this.attrIdOf[id] === aid && sameRefs(nodes[id].inputs, inputs)) return id;
    let types = known;
    if (!types) {
      const ins: TensorType[] = new Array(inputs.length);
      for (let k = 0; k < inputs.length; k++) ins[k] = nodes[inputs[k].id].types[inputs[k].out];
      types = inferTypes(op, ins, attrs as never);
    }
    const id = nodes.length;
    // every node has every field (undefined where absent), as the builder makes them: one object shape for all
    nodes.push({ id, op, inputs, attrs, types, loc: loc || undefined, fusedFrom: fusedFrom?.length ? fusedFrom : undefined } as Node);
    const refs: Ref[] = new Array(types.length);
    for (let out = 0; out < types.length; out++) refs[out] = { id, out };
    this.results.push(refs);
    this.attrIdOf.push(aid);
    this.sameHash.push(first ?? -1);
    this.byHash.set(h, id);
    return id;
  }

  private visit(n: Node): void {
    const handled = this.handled, old = this.old;
    if (handled[n.id]) return;
    // Producers first: when a replacement pulls this node in early, a fusion rooted at one of its
    // producers may absorb it (and then this node is done without being copied).
    const ins = n.inputs;
    for (let k = 0; k < ins.length; k++) if (!handled[ins[k].id]) this.visit(old[ins[k].id]);
    if (handled[n.id]) return;
    handled[n.id] = 1;
    const s = this.base[n.id], mapping = this.mapping;
    for (let j = 0; j < this.rules.length; j++) {
      const out = this.rules[j](n, this.ctx);
      if (out) {
        for (let i = 0; i < out.length; i++) mapping[s + i] = out[i];
        return;
      }
    }
    // A copy: its types are the old ones when every input kept its type (inferTypes is a function of
    // op, input types and attrs), which spares re-inferring most of the graph in every pass.
    let sameTypes = true;
    const inputs: Ref[] = new Array(ins.length);
    for (let k = 0; k < ins.length; k++) {
      const r = ins[k], m = this.map(r);
      if (sameTypes && !sameType(this.nodes[m.id].types[m.out], old[r.id].types[r.out])) sameTypes = false;
      inputs[k] = m;
    }
    const refs = this.results[this.add(n.op, inputs, n.attrs, n.loc, n.fusedFrom, sameTypes ? n.types : undefined)];
    for (let i = 0; i < refs.length; i++) mapping[s + i] ??= refs[i];
  }
}

/**
 * Would a rewrite with no rules change g: are two nodes the same (op, attributes and inputs; graph inputs
 * excepted) or does no output reach a node? A scan without building a graph, for the cse-dce pass's `applies`.
 */
export function hasDuplicatesOrDead(g: Graph): boolean {
  const nodes = g.nodes, N = nodes.length;
  const byHash = new Map<number, number>(), sameHash = new Int32Array(N).fill(-1), attrIdOf = new Int32Array(N);
  const attrIds = new Map<string, Map<string, number>>();
  let attrCount = 0;
  for (let id = 0; id < N; id++) {
    const n = nodes[id];
    let ofOp = attrIds.get(n.op);
    if (!ofOp) attrIds.set(n.op, (ofOp = new Map()));
    const a = attrsKey(n.attrs);
    let aid = ofOp.get(a);
    if (aid === undefined) ofOp.set(a, (aid = attrCount++));
    attrIdOf[id] = aid;
    let h = aid;
    for (let k = 0; k < n.inputs.length; k++) h = (Math.imul(h, 31) + n.inputs[k].id * 8 + n.inputs[k].out) & 0x3fffffff;
    const first = byHash.get(h);
    if (n.op !== 'input')
      for (let o = first ?? -1; o >= 0; o = sameHash[o]) if (attrIdOf[o] === aid && sameRefs(nodes[o].inputs, n.inputs)) return true;
    sameHash[id] = first ?? -1;
    byHash.set(h, id);
  }
  return markLive(nodes, g.outputs).count !== N;
}

/** The nodes an output reaches, and graph inputs even when unused (they are the model's interface). */
function markLive(nodes: readonly Node[], outputs: readonly GraphOutput[]): { live: Uint8Array; count: number } {
  const live = new Uint8Array(nodes.length), stack: number[] = [];
  for (let i = 0; i < outputs.length; i++) stack.push(outputs[i].ref.id);
  for (let i = 0; i < nodes.length; i++) if (nodes[i].op === 'input') stack.push(i);
  let count = 0;
  while (stack.length) {
    const id = stack.pop()!;
    if (live[id]) continue;
    live[id] = 1;
    count++;
    const ins = nodes[id].inputs;
    for (let k = 0; k < ins.length; k++) if (!live[ins[k].id]) stack.push(ins[k].id);
  }
  return { live, count };
}

const sameType = (a: TensorType, b: TensorType) => a === b || (a.dtype === b.dtype && sameShape(a.shape, b.shape));

const none: Node[] = [];

function sameRefs(a: readonly Ref[], b: readonly Ref[]): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k].id !== b[k].id || a[k].out !== b[k].out) return false;
  return true;
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

/**
 * Keep the nodes some output reaches, renumbered in their order. The nodes (and `results`, their Refs) were
 * made by this rewrite and nothing else holds them yet, so they are renumbered in place.
 */
function deadCodeElimination(name: string, nodes: Node[], results: Ref[][], outputs: GraphOutput[]): Graph {
  const M = nodes.length;
  const { live, count } = markLive(nodes, outputs);
  if (count === M) return Object.freeze({ name, nodes: Object.freeze(nodes), outputs: Object.freeze(outputs) });
  // renumbered: live node i becomes `renum[i]`; its Ref objects are renumbered with it, so every use follows
  const renum = new Int32Array(M);
  const kept: Node[] = [];
  for (let i = 0; i < M; i++) {
    if (!live[i]) continue;
    renum[i] = kept.length;
    kept.push(nodes[i]);
  }
  for (let j = 0; j < kept.length; j++) {
    const ins = kept[j].inputs, now: Ref[] = new Array(ins.length);
    for (let k = 0; k < ins.length; k++) now[k] = results[ins[k].id][ins[k].out];
    (kept[j] as { inputs: readonly Ref[] }).inputs = now;
  }
  const outs = outputs.map((o) => ({ name: o.name, ref: results[o.ref.id][o.ref.out] }));
  for (let i = 0; i < M; i++) {
    if (!live[i]) continue;
    (nodes[i] as { id: number }).id = renum[i];
    const rs = results[i];
    for (let k = 0; k < rs.length; k++) (rs[k] as { id: number }).id = renum[i];
  }
  return Object.freeze({ name, nodes: Object.freeze(kept), outputs: Object.freeze(outs) });
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
