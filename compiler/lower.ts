/**
 * Lowering: a fully fused graph becomes a KernelPlan. Each kernel node becomes one kernel (via
 * ir/fused.ts, the same mapping the interpreter uses); weights get stable names that say their
 * transform; state outputs are checked to update their input buffers in place; activations get
 * arena offsets from the memory plan.
 */
import type { BufferDecl, Kernel, KernelPlan, Program, WeightDecl } from '../kernels/plan.ts';
import type { ModelConfig } from '../kernels/config.ts';
import type { Graph, Node, NodeOf, Ref } from '../ir/node.ts';
import { refKey } from '../ir/node.ts';
import { fusedKernel, isFused, wkvInputs } from '../ir/fused.ts';
import { printNode } from '../ir/print.ts';
import { fmtLoc } from '../ir/types.ts';
import { UserError } from '../kernels/errors.ts';
import { planMemory } from './memory.ts';
import { kernelBuffers } from '../kernels/program.ts';

function weightName(n: NodeOf<'weight'>): string {
  const a = n.attrs;
  return a.name + (a.transpose ? '^T' : '') + (a.fold ? '+ln0' : '') + (a.repeat ? `*${a.repeat.times}` : '');
}

function layerOf(g: Graph, n: Node): number | null {
  for (const r of n.inputs) {
    const p = g.nodes[r.id];
    const m = p.op === 'weight' ? /^(?:blocks|model\.layers)\.(\d+)\./.exec(p.attrs.name) : null;
    if (m) return Number(m[1]);
  }
  return null;
}

function weightDecls(g: Graph): WeightDecl[] {
  const seen = new Map<string, WeightDecl>();
  for (const n of g.nodes) {
    if (n.op !== 'weight') continue;
    const a = n.attrs, name = weightName(n);
    if (seen.has(name)) continue;
    seen.set(name, {
      name, shape: [...a.shape], dtype: a.storage ?? 'f32',
      source: { tensor: a.name, stored: [...(a.stored ?? a.shape)], ...(a.transpose ? { transpose: true } : {}), ...(a.fold ? { fold: a.fold } : {}), ...(a.repeat ? { repeat: a.repeat } : {}) },
    });
  }
  return [...seen.values()];
}

/**
 * batch: the program decodes maxT independent sequences, one token each: state buffers get a leading
 * row per sequence, the recurrent kernels read their own row, and the head computes every row.
 */
function lowerProgram(g: Graph, maxT: number, batch = false): Program {
  // Names: state inputs and graph outputs keep their names; other activations get a{id}.
  const outName = new Map<string, string>();
  for (const o of g.outputs) outName.set(refKey(o.ref), o.name);
  const inputName = new Map<number, string>();
  for (const n of g.nodes) if (n.op === 'input') inputName.set(n.id, n.attrs.name);
  const value = (r: Ref) => outName.get(refKey(r)) ?? inputName.get(r.id) ?? `a${r.id}${r.out ? '_' + r.out : ''}`;
  const weight = (r: Ref) => {
    const p = g.nodes[r.id];
    if (p.op !== 'weight') throw new UserError(`${fmtLoc(p.loc)}: a kernel reads a computed value where a weight is expected: ${printNode(g, p)}`);
    return weightName(p);
  };

  const kernels: Kernel[] = [];
  const counts = new Map<string, number>();
  for (const n of g.nodes) {
    if (n.op === 'input' || n.op === 'weight' || n.op === 'const') continue;
    const layer = layerOf(g, n);
    const base = `${layer === null ? '' : `L${layer}.`}${n.op}`;
    const idx = counts.get(base) ?? 0;
    counts.set(base, idx + 1);
    const name = `${base}${idx ? '.' + idx : ''}`;
    const src = (n.fusedFrom ?? (n.loc ? [n.loc] : [])).map(fmtLoc);
    const outs = n.types.map((_, i) => value({ id: n.id, out: i }));
    if (isFused(n)) {
      const k = fusedKernel(n, { value, weight, outs }, name, layer, src);
      // state results must be the state inputs, updated in place
      const stateIn = n.op === 'wkv_fused' ? value(wkvInputs.of(n).state) : k.kind === 'token_shift' ? k.shiftIn : undefined;
      const stateOut = k.kind === 'wkv' ? k.state : k.kind === 'token_shift' ? k.shiftOut : undefined;
      if (stateIn && stateOut && stateIn !== stateOut && (stateIn.startsWith('state.') || stateOut.startsWith('state.')))
        throw new UserError(`${src[0] ?? '?'}: state '${stateIn}' must be written back to the output of the same name (got '${stateOut}')`);
      if (batch && (k.kind === 'token_shift' || k.kind === 'wkv')) k.batch = true;
      if (batch && k.kind === 'linear') k.rows = 'all';
      kernels.push(k);
    } else if (n.op === 'embed') {
      kernels.push({ kind: 'embed', name, layer, src, tokens: value(n.inputs[0]), table: weight(n.inputs[1]), out: outs[0] });
    } else if (n.op === 'layernorm') {
      kernels.push({ kind: 'layernorm', name, layer, src, rows: 'all', x: value(n.inputs[0]), w: weight(n.inputs[1]), b: weight(n.inputs[2]), eps: n.attrs.eps, out: outs[0] });
    } else if (n.op === 'rmsnorm') {
      kernels.push({ kind: 'layernorm', name, layer, src, rows: 'all', x: value(n.inputs[0]), w: weight(n.inputs[1]), b: null, rms: true, eps: n.attrs.eps, out: outs[0] });
    } else {
      throw new UserError(`${fmtLoc(n.loc)}: cannot compile '${n.op === 'unary' || n.op === 'binary' ? n.attrs.fn : n.op}': ` +
        `no kernel computes it on its own, and no fusion took it in (${printNode(g, n)})`);
    }
  }

  const buffers: BufferDecl[] = [];
  const declared = new Set<string>();
  for (const n of g.nodes) {
    n.types.forEach((t, out) => {
      if (n.op === 'weight' || n.op === 'const') return;
      const name = value({ id: n.id, out });
      if (declared.has(name)) return;
      declared.add(name);
      const role = bufferRole(n, name, outName.has(refKey({ id: n.id, out })));
      // batch: one state row per sequence, and the head computes every row
      let shape: BufferDecl['shape'] = [...t.shape];
      if (batch && role === 'state') shape = ['T', ...t.shape];
      if (batch && role === 'output') shape = ['T', ...t.shape.slice(1)];
      buffers.push({ name, dtype: t.dtype === 'i32' ? 'i32' : 'f32', shape, role });
    });
  }
  const used = new Set(kernels.flatMap(kernelBuffers));
  const live = buffers.filter((b) => b.role !== 'activation' || used.has(b.name));
  const peak = planMemory(kernels, live, maxT);
  return { maxT, kernels, buffers: live, activationPeakBytes: peak };
}

function bufferRole(n: Node, name: string, isOutput: boolean): BufferDecl['role'] {
  if (n.op === 'input') return n.attrs.role === 'tokens' ? 'input' : 'state';
  if (name.startsWith('state.')) return 'state';
  return isOutput ? 'output' : 'activation';
}



export function lowerPlan(g: Graph, config: ModelConfig, chunk: number, batch = 0, model = g.name): KernelPlan {
  return {
    format: 'rwkvc-plan', version: 1, model, config,
    weights: weightDecls(g),
    decode: lowerProgram(g, 1),
    prefill: lowerProgram(g, chunk),
    ...(batch > 1 ? { batch: lowerProgram(g, batch, true) } : {}),
  };
}
