/**
 * ONNX export of a model graph: the RWKV-6 recurrence as plain ONNX ops (opset 17), runnable by any ONNX
 * runtime (onnxruntime, Triton's ONNX backend).
 *
 * Which stage: the IR after canonicalize, constant-fold, cse-dce and fold-ln0, i.e. before the fusion
 * passes. Every unfused IR op has a direct ONNX form (matmul → Gemm/MatMul, layernorm →
 * LayerNormalization, shift → Concat/Slice, the recurrence → a few MatMul/Mul/Add), whereas the fused
 * nodes (token_shift with its LoRA, wkv_fused with GroupNorm and gate, multi-group linears with Expr
 * prologues/epilogues) exist to cut our own kernel launches and would have to be unfused again; ONNX
 * runtimes do their own fusion. fold-ln0 is kept: it is a weight transform (LN of the embedding table,
 * in f32 as the official package does), so the model Gathers a ready row.
 *
 * Two models: `step` (token int64 [1] → logits [V], T = 1 everywhere, the recurrence as straight-line
 * ops) and `prefill` (tokens int64 [T] → logits [T, V] or the last row [V]): everything but the
 * recurrence is sequence-parallel over T rows, the recurrence is an ONNX Scan over T whose body is the
 * same straight-line step. Both take and return the state under the names the state and golden files
 * use (state.{l}.att_shift [C], state.{l}.wkv [H, N(key), N(value)], state.{l}.ffn_shift [C]; outputs
 * next.state.{l}.…).
 */
import type { Graph, Node, Ref } from '../../ir/node.ts';
import { refKey } from '../../ir/node.ts';
import type { ModelConfig } from '../../kernels/config.ts';
import { UserError } from '../../kernels/errors.ts';
import { toF16 } from '../../kernels/dtype.ts';
import { materializeWeight, type TensorReader } from '../../kernels/weights.ts';
import { fmtLoc } from '../../ir/types.ts';
import { rewrite } from '../../compiler/rewrite.ts';
import { PASSES } from '../../compiler/pipeline.ts';
import { AT, DT, encodeModel, type AttrP, type GraphP, type ModelP, type NodeP, type TensorP, type ValueInfoP } from './proto.ts';

export const OPSET = 17;
export const ONNX_WEIGHTS = ['f32', 'f16'] as const;
export type OnnxWeights = (typeof ONNX_WEIGHTS)[number];

export interface OnnxExportOptions {
  kind: 'step' | 'prefill';
  /** f16: every matrix (rank ≥ 2 weight) stored as FLOAT16 and Cast to f32 where used; activations stay f32. */
  weights: OnnxWeights;
  /** prefill only: logits of every position ([T, V]) or of the last ([V], the head runs one row). */
  logits?: 'all' | 'last';
  /**
   * Keep tensor bytes out of the protobuf (its limit is 2 GiB): initializers point at `location`, a file
   * beside the model, and the bytes come back in `data` to be written there in order.
   */
  externalData?: string;
  /** Free-form provenance, stored as doc_string. */
  doc?: string;
}

export interface OnnxExport {
  model: Uint8Array;
  /** With externalData: the chunks of the data file, in order. */
  data: Uint8Array[];
  inputs: string[];
  outputs: string[];
}

/** The graph the exporter reads: the passes before fusion (see the module comment). */
export function exportStage(g: Graph): Graph {
  const upTo = PASSES.findIndex((p) => p.name === 'fold-ln0');
  for (const p of PASSES.slice(0, upTo + 1)) g = rewrite(g, p.rules(g, { weights: 'f32', logits: 'all' }));
  return g;
}

/** Size of the bytes a model with `config` stores, roughly: decides external data. */
export function weightBytes(config: ModelConfig, weights: OnnxWeights): number {
  const { nLayer: L, nEmbd: C, dimFfn: F, vocabSize: V } = config;
  const per = weights === 'f16' ? 2 : 4;
  return per * (2 * V * C + L * (5 * C * C + 2 * C * F + C * (5 * config.loraMix + config.loraDecay) * 2 + C * C));
}

const i64 = (v: readonly number[]) => new Uint8Array(BigInt64Array.from(v.map((x) => BigInt(x))).buffer);
const f32Bytes = (v: Float32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
const INT64_MAX = Number.MAX_SAFE_INTEGER;

/** Names unique across the main graph and the Scan body (ONNX forbids a subgraph shadowing an outer name). */
class Names {
  private n = 0;
  next(hint: string): string { return `${hint}_${this.n++}`; }
}

/** One ONNX graph being written: its nodes, and small constants as its own initializers. */
class GraphWriter {
  readonly nodes: NodeP[] = [];
  readonly inits: TensorP[] = [];
  private consts = new Map<string, string>();
  constructor(readonly names: Names) {}

  op(opType: string, input: string[], attrs: AttrP[] = [], hint = opType, outs = 1, doc?: string): string[] {
    const output = Array.from({ length: outs }, () => this.names.next(hint));
    this.nodes.push({ opType, input, output, name: output[0], attribute: attrs, ...(doc ? { docString: doc } : {}) });
    return output;
  }
  op1(opType: string, input: string[], attrs: AttrP[] = [], doc?: string): string {
    return this.op(opType, input, attrs, opType, 1, doc)[0];
  }
  /** A constant int64 tensor (shapes, axes, indices), shared by value. */
  ints(v: readonly number[], scalar = false): string {
    const key = `i${scalar ? 's' : ''}${v.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = this.names.next('const');
      this.inits.push({ name, dims: scalar ? [] : [v.length], dataType: DT.INT64, rawData: i64(v) });
      this.consts.set(key, name);
    }
    return name;
  }
  floats(v: readonly number[], dims: number[]): string {
    const key = `f${dims.join('x')}:${v.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = this.names.next('const');
      this.inits.push({ name, dims, dataType: DT.FLOAT, rawData: f32Bytes(Float32Array.from(v)) });
      this.consts.set(key, name);
    }
    return name;
  }
  reshape(x: string, shape: number[]): string { return this.op1('Reshape', [x, this.ints(shape)]); }
}

const attrI = (name: string, i: number): AttrP => ({ name, type: AT.INT, i });
const attrF = (name: string, f: number): AttrP => ({ name, type: AT.FLOAT, f });
const attrInts = (name: string, ints: number[]): AttrP => ({ name, type: AT.INTS, ints });

const tensorInfo = (name: string, elemType: number, dims: (number | string)[], doc?: string): ValueInfoP => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  ...(doc ? { docString: doc } : {}),
});

/** A value: its ONNX name and whether it is still FLOAT16 (a weight not yet Cast). */
interface Val { name: string; f16: boolean }

const UNARY: Record<string, string> = { neg: 'Neg', tanh: 'Tanh', exp: 'Exp', sigmoid: 'Sigmoid', relu: 'Relu' };
const BINARY: Record<string, string> = { add: 'Add', sub: 'Sub', mul: 'Mul' };

/**
 * One step of the recurrence for all heads (RWKV6.md §2): r, k, v, w as [C] or [1, C] rows, S [H, N, N]
 * indexed [key i][value j], u as [H, N, 1] (or null). Returns y (as [H, 1, N]) and the new S.
 */
function wkvStep(gw: GraphWriter, a: { headSize: number; order: string; kDecayScale: boolean; rScale: number },
  H: number, r: string, k: string, v: string, w: string, S: string, u: string | null): { y: string; S: string } {
  const N = a.headSize;
  if (a.rScale !== 1) r = gw.op1('Mul', [r, gw.floats([a.rScale], [])]);
  if (a.kDecayScale) k = gw.op1('Mul', [k, gw.op1('Sub', [gw.floats([1], []), w])]);
  const col = (x: string) => gw.reshape(x, [H, N, 1]);   // a key-indexed column per head
  const row = (x: string) => gw.reshape(x, [H, 1, N]);   // a value-indexed row per head
  const kv = gw.op1('Mul', [col(k), row(v)]);            // k_i v_j  [H, N, N]
  const wc = col(w);
  const next = gw.op1('Add', [gw.op1('Mul', [wc, S]), kv]);
  if (a.order === 'read_first') {
    const read = u ? gw.op1('Add', [S, gw.op1('Mul', [u, kv])]) : S;
    return { y: gw.op1('MatMul', [row(r), read]), S: next };
  }
  return { y: gw.op1('MatMul', [row(r), next]), S: next };
}

/** Export `graph` (straight from the DSL; the pre-fusion passes run here) with the checkpoint's weights. */
export function exportOnnx(dslGraph: Graph, config: ModelConfig, read: TensorReader, o: OnnxExportOptions): OnnxExport {
  if (!(ONNX_WEIGHTS as readonly string[]).includes(o.weights))
    throw new UserError(`--weights: the ONNX export stores f32 or f16 matrices, not '${o.weights}'`);
  const g = exportStage(dslGraph);
  const step = o.kind === 'step';
  const lastOnly = !step && o.logits === 'last';
  const { nHead: H, vocabSize: V } = config;
  const names = new Names();
  const gw = new GraphWriter(names);
  const weightInits: TensorP[] = [];
  const data: Uint8Array[] = [];
  let dataOffset = 0;
  const vals = new Map<string, Val>();
  const weightByKey = new Map<string, Val>();
  const casts = new Map<string, string>();
  const inputs: ValueInfoP[] = [];
  const get = (r: Ref): Val => vals.get(refKey(r))!;
  /** The f32 form of a value: a FLOAT16 weight gets one Cast, shared by all its users. */
  const f32 = (v: Val): string => {
    if (!v.f16) return v.name;
    let c = casts.get(v.name);
    if (!c) casts.set(v.name, (c = gw.op('Cast', [v.name], [attrI('to', DT.FLOAT)], `${v.name}.f32`)[0]));
    return c;
  };
  const logitsRef = g.outputs.find((x) => x.name === 'logits')?.ref;
  const rowsDim: number | string = step ? 1 : 'T';
  const dims = (shape: readonly (number | 'T')[]) => shape.map((d) => (d === 'T' ? rowsDim : d));

  const addWeight = (n: Extract<Node, { op: 'weight' }>): Val => {
    const a = n.attrs;
    const key = JSON.stringify([a.name, a.stored ?? a.shape, a.transpose ?? false, a.fold ?? null]);
    const have = weightByKey.get(key);
    if (have) return have;
    const v = materializeWeight({ tensor: a.name, stored: [...(a.stored ?? a.shape)], transpose: a.transpose, fold: a.fold }, read);
    const half = o.weights === 'f16' && a.shape.length >= 2;
    const raw = half ? (() => { const h = toF16(v); return new Uint8Array(h.buffer, h.byteOffset, h.byteLength); })() : f32Bytes(v);
    const name = a.fold ? `${a.name}+ln0` : a.transpose ? `${a.name}.T` : a.name;
    const t: TensorP = { name, dims: [...a.shape], dataType: half ? DT.FLOAT16 : DT.FLOAT };
    if (o.externalData) {
      // 64-byte aligned, so a runtime can map the file
      const pad = (64 - (dataOffset % 64)) % 64;
      if (pad) { data.push(new Uint8Array(pad)); dataOffset += pad; }
      t.dataLocation = 1;
      t.externalData = [{ key: 'location', value: o.externalData }, { key: 'offset', value: String(dataOffset) }, { key: 'length', value: String(raw.length) }];
      data.push(raw);
      dataOffset += raw.length;
    } else t.rawData = raw;
    weightInits.push(t);
    const val = { name, f16: half };
    weightByKey.set(key, val);
    return val;
  };

  for (const n of g.nodes) {
    const doc = n.loc ? fmtLoc(n.loc) : undefined;
    const put = (name: string, out = 0, f16 = false) => vals.set(refKey({ id: n.id, out }), { name, f16 });
    const x = n.inputs.map(get);
    switch (n.op) {
      case 'input': {
        const a = n.attrs;
        if (a.role === 'tokens') {
          const name = step ? 'token' : 'tokens';
          inputs.push(tensorInfo(name, DT.INT64, [rowsDim], 'token ids'));
          put(name);
        } else {
          inputs.push(tensorInfo(a.name, DT.FLOAT, dims(a.shape)));
          put(a.name);
        }
        break;
      }
      case 'weight': {
        const w = addWeight(n);
        put(w.name, 0, w.f16);
        break;
      }
      case 'const':
        put(gw.floats([n.attrs.value], []));
        break;
      case 'embed': {
        // Gather the rows first, then Cast only them (an f16 table stays f16 in memory)
        const rows = gw.op1('Gather', [x[1].name, x[0].name], [attrI('axis', 0)], doc);
        put(x[1].f16 ? f32({ name: rows, f16: true }) : rows);
        break;
      }
      case 'layernorm':
        put(gw.op1('LayerNormalization', [f32(x[0]), f32(x[1]), f32(x[2])], [attrI('axis', -1), attrF('epsilon', n.attrs.eps)], doc));
        break;
      case 'groupnorm': {
        // GroupNormalization's scale/bias changed meaning between opsets 18 and 21: its decomposition
        // instead (LayerNormalization over each group's N values, then the per-channel affine).
        const C = n.types[0].shape[n.types[0].shape.length - 1] as number, G = n.attrs.groups, N = C / G;
        const grouped = gw.reshape(f32(x[0]), [-1, G, N]);
        const normed = gw.op1('LayerNormalization', [grouped, gw.floats(new Array(N).fill(1), [N])], [attrI('axis', -1), attrF('epsilon', n.attrs.eps)], doc);
        put(gw.op1('Add', [gw.op1('Mul', [gw.reshape(normed, [-1, C]), f32(x[1])]), f32(x[2])]));
        break;
      }
      case 'matmul': {
        let a = f32(x[0]);
        // The head under --logits last: one row in, one row out.
        if (lastOnly && logitsRef?.id === n.id) a = gw.op1('Slice', [a, gw.ints([-1]), gw.ints([INT64_MAX]), gw.ints([0])]);
        put(n.attrs.layout === 'out_in'
          ? gw.op1('Gemm', [a, f32(x[1])], [attrI('transB', 1)], doc)
          : gw.op1('MatMul', [a, f32(x[1])], [], doc));
        break;
      }
      case 'unary': {
        const v = f32(x[0]), fn = n.attrs.fn;
        if (fn === 'square') put(gw.op1('Mul', [v, v], [], doc));
        else if (fn === 'silu') put(gw.op1('Mul', [v, gw.op1('Sigmoid', [v])], [], doc));
        else put(gw.op1(UNARY[fn], [v], [], doc));
        break;
      }
      case 'binary':
        put(gw.op1(BINARY[n.attrs.fn], [f32(x[0]), f32(x[1])], [], doc));
        break;
      case 'shift': {
        // row 0 from the state, rows 1.. from rows ..T-2 (T = 1: just the state)
        const C = n.types[0].shape[1] as number;
        const prev = gw.reshape(f32(x[1]), [1, C]);
        put(step ? prev : gw.op1('Concat', [prev, gw.op1('Slice', [f32(x[0]), gw.ints([0]), gw.ints([-1]), gw.ints([0])])], [attrI('axis', 0)], doc));
        break;
      }
      case 'last': {
        const rows = step ? f32(x[0]) : gw.op1('Slice', [f32(x[0]), gw.ints([-1]), gw.ints([INT64_MAX]), gw.ints([0])], [], doc);
        put(gw.reshape(rows, n.types[0].shape as number[]));
        break;
      }
      case 'slice': {
        const { start, size } = n.attrs;
        put(gw.op1('Slice', [x[0].name, gw.ints([start]), gw.ints([start + size]), gw.ints([-1])], [], doc), 0, x[0].f16);
        break;
      }
      case 'index':
        put(gw.op1('Gather', [x[0].name, gw.ints([n.attrs.i], true)], [attrI('axis', 0)], doc), 0, x[0].f16);
        break;
      case 'repeat': {
        const { group, times } = n.attrs, W = n.types[0].shape[n.types[0].shape.length - 1] as number / times;
        const split = gw.reshape(f32(x[0]), [-1, W / group, 1, group]);
        const tiled = gw.op1('Tile', [split, gw.ints([1, 1, times, 1])], [], doc);
        put(gw.reshape(tiled, n.types[0].shape.map((d) => (d === 'T' ? -1 : d)) as number[]));
        break;
      }
      case 'wkv': {
        const a = n.attrs, N = a.headSize;
        const [r, k, v, w, S] = x.slice(0, 5).map(f32);
        const u = a.bonus ? gw.reshape(f32(x[5]), [H, N, 1]) : null;
        if (step) {
          const res = wkvStep(gw, a, H, r, k, v, w, S, u);
          put(gw.reshape(res.y, [1, H * N]), 0);
          put(res.S, 1);
        } else {
          // Scan over T: the state is carried, r/k/v/w are scanned along axis 0, y_t is stacked.
          const body = new GraphWriter(names);
          const [bS, br, bk, bv, bw] = ['S', 'r', 'k', 'v', 'w'].map((s) => names.next(`scan_${s}`));
          const res = wkvStep(body, a, H, br, bk, bv, bw, bS, u);
          const yOut = body.reshape(res.y, [H * N]);
          const SOut = body.op1('Identity', [res.S]);
          const C = H * N;
          const bodyGraph: GraphP = {
            name: names.next('wkv_step'), node: body.nodes, initializer: body.inits,
            input: [tensorInfo(bS, DT.FLOAT, [H, N, N]), ...[br, bk, bv, bw].map((s) => tensorInfo(s, DT.FLOAT, [C]))],
            output: [tensorInfo(SOut, DT.FLOAT, [H, N, N]), tensorInfo(yOut, DT.FLOAT, [C])],
          };
          const [Sn, y] = gw.op('Scan', [S, r, k, v, w], [{ name: 'body', type: AT.GRAPH, g: bodyGraph }, attrI('num_scan_inputs', 4)], 'wkv', 2, doc);
          put(y, 0);
          put(Sn, 1);
        }
        break;
      }
      default:
        throw new UserError(`ONNX export: ${fmtLoc(n.loc)}: op '${n.op}' has no ONNX form (the exporter reads the graph before fusion)`);
    }
  }

  const outputs: ValueInfoP[] = [];
  for (const out of g.outputs) {
    const v = f32(get(out.ref));
    const type = g.nodes[out.ref.id].types[out.ref.out];
    if (out.name === 'logits') {
      const oneRow = step || lastOnly;
      gw.nodes.push({ opType: 'Reshape', input: [v, gw.ints(oneRow ? [V] : [-1, V])], output: ['logits'], name: 'logits' });
      outputs.push(tensorInfo('logits', DT.FLOAT, oneRow ? [V] : ['T', V]));
    } else {
      // the state comes back as next.<its input name>; any other output under its own name
      const name = out.name.startsWith('state.') ? `next.${out.name}` : out.name;
      gw.nodes.push({ opType: 'Identity', input: [v], output: [name], name });
      outputs.push(tensorInfo(name, DT.FLOAT, dims(type.shape)));
    }
  }

  const model: ModelP = {
    irVersion: 8,
    producerName: 'rwkvc',
    producerVersion: '0.1.0',
    ...(o.doc ? { docString: o.doc } : {}),
    opsetImport: [{ domain: '', version: OPSET }],
    metadataProps: [
      { key: 'rwkvc.kind', value: o.kind },
      { key: 'rwkvc.weights', value: o.weights },
      { key: 'rwkvc.logits', value: step ? 'last' : (o.logits ?? 'all') },
      { key: 'rwkvc.config', value: JSON.stringify(config) },
    ],
    graph: {
      name: `${g.name}_${o.kind}`,
      node: gw.nodes,
      initializer: [...weightInits, ...gw.inits],
      input: inputs,
      output: outputs,
    },
  };
  return { model: encodeModel(model), data, inputs: inputs.map((i) => i.name), outputs: outputs.map((i) => i.name) };
}
