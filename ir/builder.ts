/**
 * The DSL's foundation: a builder that records nodes, infers and checks their types as they are made,
 * and remembers the DSL source line of each call. A model layer is an ordinary TypeScript function
 * that takes a Builder and Tensors and returns Tensors.
 */
import { fileURLToPath } from 'node:url';
import { UserError } from '../kernels/errors.ts';
import type { BinaryOp, Graph, GraphOutput, Node, NodeAttrs, OpName, Ref, UnaryOp, WkvAttrs } from './node.ts';
import { inferTypes } from './infer.ts';
import { fmtLoc, type DType, type Shape, type SrcLoc, type TensorType } from './types.ts';

/** A handle on one result of a node, with the elementwise ops as methods for readable layer code. */
export class Tensor {
  constructor(readonly b: Builder, readonly ref: Ref, readonly type: TensorType) {}
  get shape(): Shape { return this.type.shape; }
  add(o: Tensor | number): Tensor { return this.b.binary('add', this, o); }
  sub(o: Tensor | number): Tensor { return this.b.binary('sub', this, o); }
  mul(o: Tensor | number): Tensor { return this.b.binary('mul', this, o); }
  neg(): Tensor { return this.b.unary('neg', this); }
  tanh(): Tensor { return this.b.unary('tanh', this); }
  exp(): Tensor { return this.b.unary('exp', this); }
  sigmoid(): Tensor { return this.b.unary('sigmoid', this); }
  silu(): Tensor { return this.b.unary('silu', this); }
  relu(): Tensor { return this.b.unary('relu', this); }
  square(): Tensor { return this.b.unary('square', this); }
}

const here = fileURLToPath(new URL('.', import.meta.url));
const paths = new Map<string, string>();
const filePath = (url: string) => {
  let p = paths.get(url);
  if (p === undefined) paths.set(url, (p = fileURLToPath(url)));
  return p;
};

const outsideIr = (file: string) => !(file.startsWith(here) || file.startsWith('node:') || file.includes('node_modules'));

/**
 * The first stack frame outside ir/: the DSL line that asked for this node. A formatted stack trace costs a
 * source-map lookup per frame under tsx (most of building a 64-layer graph), so the caller's frame is first
 * found unformatted, as V8's call sites, and its formatted location is worked out once per call site: a
 * model's layers call the same DSL lines over and over.
 */
function callerLoc(): SrcLoc | undefined {
  const key = callSiteKey();
  if (key === undefined) return formattedCallerLoc();
  if (process.cwd() !== sitesCwd) { sites.clear(); sitesCwd = process.cwd(); } // locations are relative to it
  let loc = sites.get(key);
  if (loc === undefined && !sites.has(key)) sites.set(key, (loc = formattedCallerLoc()));
  return loc;
}
const sites = new Map<string, SrcLoc | undefined>();
let sitesCwd = '';

/** The caller's frame in the code as it runs (before source maps): '<url>:<line>:<col>'. */
function callSiteKey(): string | undefined {
  const { stackTraceLimit, prepareStackTrace } = Error;
  // the DSL line is at most ~4 calls up, and each frame captured costs; a deeper one is found by the fallback
  Error.stackTraceLimit = 6;
  Error.prepareStackTrace = (_e, frames) => frames;
  const holder: { stack?: NodeJS.CallSite[] } = {};
  Error.captureStackTrace(holder, callSiteKey);
  const frames = holder.stack;
  Error.prepareStackTrace = prepareStackTrace;
  Error.stackTraceLimit = stackTraceLimit;
  if (!Array.isArray(frames)) return undefined; // another engine's stack traces
  for (let i = 0; i < frames.length; i++) { // indexed: this runs once per node, mostly before the JIT has optimised it
    const f = frames[i], url = f.getFileName(), line = f.getLineNumber();
    if (!url || line === null) continue;
    if (outsideIr(url.startsWith('file://') ? filePath(url) : url)) return `${url}:${line}:${f.getColumnNumber()}`;
  }
  return undefined;
}

/** callerLoc from the formatted stack trace (source-mapped where the runtime maps them). */
function formattedCallerLoc(): SrcLoc | undefined {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 12;
  const stack = new Error().stack?.split('\n').slice(1) ?? [];
  Error.stackTraceLimit = limit;
  for (const frame of stack) {
    const m = /\(?((?:file:\/\/)?[^()\s]+):(\d+):(\d+)\)?$/.exec(frame.trim());
    if (!m) continue;
    let file = m[1].startsWith('file://') ? filePath(m[1]) : m[1];
    if (!outsideIr(file)) continue;
    if (file.startsWith(process.cwd() + '/')) file = file.slice(process.cwd().length + 1);
    return { file, line: Number(m[2]), col: Number(m[3]) };
  }
  return undefined;
}

export class Builder {
  private nodes: Node[] = [];
  private outputs: GraphOutput[] = [];
  private consts = new Map<number, Tensor>();

  constructor(readonly name: string) {}

  /** Add a node; its result types are inferred and checked now, so a DSL mistake points at its line. */
  node<K extends OpName>(op: K, inputs: Tensor[], attrs: NodeAttrs[K], loc = callerLoc()): Tensor[] {
    const refs: Ref[] = new Array(inputs.length), ins: TensorType[] = new Array(inputs.length);
    for (let i = 0; i < inputs.length; i++) {
      if (inputs[i].b !== this) throw new UserError(`${fmtLoc(loc)}: ${op}: an input comes from another model builder`);
      refs[i] = inputs[i].ref;
      ins[i] = inputs[i].type;
    }
    const id = this.nodes.length;
    let types: TensorType[];
    try {
      types = inferTypes(op, ins, attrs);
    } catch (e) {
      throw new UserError(`${fmtLoc(loc)}: ${op}: ${(e as Error).message}`);
    }
    // fusedFrom too (undefined): nodes the passes make have it, and one object shape keeps their code monomorphic
    this.nodes.push({ id, op, inputs: refs, attrs, types, loc, fusedFrom: undefined } as Node);
    return types.map((t, out) => new Tensor(this, { id, out }, t));
  }

  private one<K extends OpName>(op: K, inputs: Tensor[], attrs: NodeAttrs[K]): Tensor {
    return this.node(op, inputs, attrs, callerLoc())[0];
  }

  input(name: string, role: 'tokens' | 'state', dtype: DType, shape: Shape): Tensor {
    return this.one('input', [], { name, role, dtype, shape });
  }

  /** A checkpoint tensor viewed with `shape`; `stored` is its shape in the file when different. */
  weight(name: string, shape: readonly number[], stored?: readonly number[]): Tensor {
    return this.one('weight', [], stored ? { name, shape, stored } : { name, shape });
  }

  const(value: number): Tensor {
    let t = this.consts.get(value);
    if (!t) this.consts.set(value, (t = this.one('const', [], { value })));
    return t;
  }

  unary(fn: UnaryOp, x: Tensor): Tensor { return this.node('unary', [x], { fn }, callerLoc())[0]; }
  binary(fn: BinaryOp, a: Tensor, b: Tensor | number): Tensor {
    const loc = callerLoc();
    return this.node('binary', [a, typeof b === 'number' ? this.const(b) : b], { fn }, loc)[0];
  }
  embed(tokens: Tensor, table: Tensor): Tensor { return this.one('embed', [tokens, table], {}); }
  layerNorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor { return this.one('layernorm', [x, w, b], { eps }); }
  /** RMSNorm (Qwen2 / QRWKV6): x / sqrt(mean(x²) + eps) ⊙ w. */
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor { return this.one('rmsnorm', [x, w], { eps }); }
  groupNorm(x: Tensor, w: Tensor, b: Tensor, groups: number, eps: number): Tensor {
    return this.one('groupnorm', [x, w, b], { groups, eps });
  }
  /** nn.Linear: W is [out, in]. */
  linear(x: Tensor, w: Tensor): Tensor { return this.one('matmul', [x, w], { layout: 'out_in' }); }
  /** x · W with W stored [in, out] (the LoRA factors). */
  matmul(x: Tensor, w: Tensor): Tensor { return this.one('matmul', [x, w], { layout: 'in_out' }); }
  shift(x: Tensor, prev: Tensor): Tensor { return this.one('shift', [x, prev], {}); }
  last(x: Tensor): Tensor { return this.one('last', [x], {}); }
  slice(x: Tensor, start: number, size: number): Tensor { return this.one('slice', [x], { start, size }); }
  index(x: Tensor, i: number): Tensor { return this.one('index', [x], { i }); }
  repeat(x: Tensor, group: number, times: number): Tensor { return this.one('repeat', [x], { group, times }); }
  /** The recurrence: returns [y [T, C], new state [H, N, N]]. Pass u = null for no bonus. */
  wkv(r: Tensor, k: Tensor, v: Tensor, w: Tensor, u: Tensor | null, state: Tensor, attrs: Omit<WkvAttrs, 'bonus'>): [Tensor, Tensor] {
    const ins = u ? [r, k, v, w, state, u] : [r, k, v, w, state];
    const [y, s] = this.node('wkv', ins, { ...attrs, bonus: !!u }, callerLoc());
    return [y, s];
  }

  output(name: string, t: Tensor): void {
    if (this.outputs.some((o) => o.name === name)) throw new UserError(`${fmtLoc(callerLoc())}: output '${name}' is defined twice`);
    this.outputs.push({ name, ref: t.ref });
  }

  build(): Graph {
    return Object.freeze({ name: this.name, nodes: Object.freeze([...this.nodes]), outputs: Object.freeze([...this.outputs]) });
  }
}

