/**
 * Lowering a plan program to GPU steps, for a device's limits:
 *
 * - `layoutMemory` places every f32 buffer in one address space: `mem` (tokens, logits, the activation
 *   arena) from 0, then the state, in parts that each fit one binding (a part holds whole state
 *   buffers, a layer's or several layers'). One read_write binding serves every activation a kernel
 *   touches; a kernel that touches state (token_shift, wkv) binds the part that holds it as well. Offsets
 *   are plain numbers in a uniform, in the one address space: a target with plain pointers (CUDA) keeps
 *   it all in one buffer; WebGPU keeps mem and each part in a buffer of its own, and a shader subtracts
 *   its part's base (`st0`) from state offsets.
 * - Each kernel becomes a dispatch (shader key + uniform values + the weight buffers it binds + its grid
 *   for T tokens). A linear kernel's groups share one dispatch; a weight larger than the storage-binding
 *   limit is split by rows into pieces (each its own binding), and when the pieces outnumber the storage
 *   bindings a shader may have, the groups are spread over several dispatches.
 * - An embedding table too large for one binding stays on the host: `host_embed` gathers the rows there.
 *
 * Anything a device cannot do raises a UserError that names the limit and the tensor or kernel.
 */
import type { BufferDecl, Kernel, KernelPlan, Program, WeightDecl } from '../../kernels/plan.ts';
import { UserError } from '../../kernels/errors.ts';
import { normalizeExpr } from '../../kernels/expr.ts';
import { checkRowFormat, elems, planPrograms } from '../../kernels/program.ts';
import { int8ScaleWord, matrixBytes, rowStride, scaleWord, type WFormat } from './formats.ts';
import { isBlockFormat } from '../../kernels/dtype.ts';
import {
  MM, WG, invocations, matvecLanes, storageBindings, workgroupBytes, type LinearGroupKey, type ShaderKey,
} from './keys.ts';

/** The device limits lowering depends on. */
export interface Limits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxStorageBuffersPerShaderStage: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
}

/** The default limits (WebGPU's: what any adapter grants without asking). */
export const DEFAULT_LIMITS: Limits = {
  maxStorageBufferBindingSize: 128 << 20,
  maxBufferSize: 256 << 20,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
};

/** A GPU weight buffer: rows of a plan weight in its storage format, or f32 values packed end to end. */
export type WeightRef =
  | { kind: 'rows'; weight: string; fmt: WFormat; row0: number; rows: number; cols: number }
  /** The dequantized values of each part (vectors and small matrices), concatenated, as f32. */
  | { kind: 'pack'; parts: string[] };

export const weightRefId = (r: WeightRef): string => JSON.stringify(r);

export interface DispatchStep {
  kind: 'dispatch';
  kernel: string;
  key: ShaderKey;
  params: Record<string, number>;
  weights: WeightRef[];
  /** The state part the kernel reads and writes (index into MemLayout.parts); present iff usesState(key). */
  statePart?: number;
  grid(T: number): [number, number, number];
}

/** out[t, :] = table[tokens[t], :], done on the host (the table does not fit one binding). */
export interface HostEmbedStep {
  kind: 'host_embed';
  kernel: string;
  table: WeightRef & { kind: 'rows' };
  /** Element offset of `out` in mem, and the row width. */
  out: number;
  cols: number;
}

export type Step = DispatchStep | HostEmbedStep;

/** A state buffer's place: element offset in the address space, size, and the part that holds it (none: in mem). */
export interface StateSlot { offset: number; elems: number; part?: number }

export interface MemLayout {
  /** Total f32 elements of the address space: mem, then every state part. */
  elems: number;
  /** Elements of mem, [0, memElems): tokens, logits, the activation arena. */
  memElems: number;
  /** State parts, after mem: element offset (base) and size; each fits one binding. */
  parts: { base: number; elems: number }[];
  /** The model's state buffers by name; elements of them (without alignment). */
  state: Map<string, StateSlot>;
  stateElems: number;
  /** The batch program's state buffers ([B, …], B = its maxT), in parts of their own. */
  batchState: Map<string, StateSlot>;
  batchStateElems: number;
  tokens: number;
  output: number;
  outputElems: number;
  arena: number;
}

/** A MemLayout as plain JSON (artifacts carry it). */
export type MemLayoutJson = Omit<MemLayout, 'state' | 'batchState'> & {
  state: Record<string, StateSlot>;
  batchState: Record<string, StateSlot>;
};

export const memLayoutJson = (l: MemLayout): MemLayoutJson =>
  ({ ...l, state: Object.fromEntries(l.state), batchState: Object.fromEntries(l.batchState) });

export interface LoweredProgram {
  steps: Step[];
  layout: MemLayout;
  /** Element offset in mem of each buffer the program declares. */
  offsets: Map<string, number>;
  output: BufferDecl | null;
}


const align64 = (n: number) => Math.ceil(n / 64) * 64; // 256 bytes: copies and readbacks stay aligned
const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** The largest buffer one binding can see. */
function bindingMax(limits: Limits): number {
  return Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
}


/**
 * The state buffers each program keeps in parts: those only state kernels touch, as their state (a
 * token_shift's shiftIn/shiftOut, a wkv's state). A state buffer any kernel reads otherwise (a test
 * harness declares every buffer as state) stays in mem, where every kernel sees it.
 */
function partResident(programs: Program[]): Set<string> {
  const inParts = new Set<string>(), inMem = new Set<string>();
  for (const p of programs) {
    const state = new Set(p.buffers.filter((b) => b.role === 'state').map((b) => b.name));
    for (const k of p.kernels) {
      const own = k.kind === 'token_shift' ? [k.shiftIn, k.shiftOut] : k.kind === 'wkv' ? [k.state] : [];
      for (const n of own) inParts.add(n);
      const walk = (v: unknown, key: string, top: boolean): void => {
        if (typeof v === 'string') {
          if (state.has(v) && !(top && own.length && (key === 'shiftIn' || key === 'shiftOut' || key === 'state'))) inMem.add(v);
        } else if (v && typeof v === 'object') for (const [k2, v2] of Object.entries(v)) walk(v2, k2, false);
      };
      for (const [key, v] of Object.entries(k)) if (key !== 'name' && key !== 'src') walk(v, key, true);
    }
  }
  return new Set([...inParts].filter((n) => !inMem.has(n)));
}

function layoutMemory(plan: KernelPlan, limits: Limits, dev = 'device'): MemLayout {
  const programs = planPrograms(plan);
  const max = bindingMax(limits);
  const limitName = limits.maxStorageBufferBindingSize <= limits.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
  const model = [plan.decode, plan.prefill], batch = plan.batch ? [plan.batch] : [];
  const inParts = partResident(programs);
  // A state buffer that cannot have a binding of its own is the one refusal the parts leave.
  for (const [list, T] of [[model, 1], [batch, plan.batch?.maxT ?? 0]] as const)
    for (const p of list)
      for (const b of p.buffers)
        if (b.role === 'state' && inParts.has(b.name) && elems(b, T) * 4 > max)
          throw new UserError(`${dev} limit ${limitName} = ${max} bytes is too small for state buffer ${b.name}: it takes ${elems(b, T) * 4} bytes (${MiB(elems(b, T) * 4)}) in one binding`);
  const state = new Map<string, StateSlot>(), batchState = new Map<string, StateSlot>();
  const parts: { base: number; elems: number }[] = [];
  let at = 0;
  // Each state buffer once (decode and prefill share the model's; the batch program has its own [B, …]),
  // in declaration order (a layer's buffers sit together). Those in mem first; those in parts after mem,
  // a new part when the next buffer would not fit the current one's binding, the batch program's in parts
  // of their own.
  const place = (list: Program[], T: number, m: Map<string, StateSlot>, wantParts: boolean) => {
    let part: { base: number; elems: number } | null = null;
    for (const p of list)
      for (const b of p.buffers) {
        if (b.role !== 'state' || inParts.has(b.name) !== wantParts) continue;
        const n = elems(b, T);
        const prev = m.get(b.name);
        if (prev && prev.elems !== n) throw new Error(`state buffer ${b.name} has different sizes in decode and prefill`);
        if (prev) continue;
        if (!wantParts) { m.set(b.name, { offset: at, elems: n }); at = align64(at + n); continue; }
        if (!part || (at - part.base + n) * 4 > max) parts.push((part = { base: at, elems: 0 }));
        m.set(b.name, { offset: at, elems: n, part: parts.length - 1 });
        part.elems = at + n - part.base; // not the alignment after it: a part's size is what its binding sees
        at = align64(at + n);
      }
  };
  place(model, 1, state, false);
  place(batch, plan.batch?.maxT ?? 0, batchState, false);
  const memState = at;
  const maxT = Math.max(...programs.map((p) => p.maxT));
  const tokens = at;
  at = align64(at + maxT);
  const output = at;
  const outputElems = Math.max(0, ...programs.flatMap((p) => p.buffers.filter((b) => b.role === 'output').map((b) => elems(b, p.maxT))));
  at = align64(at + outputElems);
  const arena = at;
  let arenaElems = 0;
  for (const p of programs) {
    arenaElems = Math.max(arenaElems, Math.ceil(p.activationPeakBytes / 4));
    for (const b of p.buffers) {
      if (b.role !== 'activation') continue;
      if (b.offset === undefined || b.offset % 4) throw new Error(`activation ${b.name} has no 4-byte aligned arena offset`);
      arenaElems = Math.max(arenaElems, b.offset / 4 + elems(b, p.maxT));
    }
  }
  const memElems = align64(arena + arenaElems);
  if (memElems * 4 > max)
    throw new UserError(
      `${dev} limit ${limitName} = ${max} bytes is too small for this model's f32 memory: ` +
        `${memState ? `state ${MiB(memState * 4)} + ` : ''}tokens and logits ${MiB((arena - memState) * 4)} + activations ${MiB(arenaElems * 4)} = ${memElems * 4} bytes ` +
        `in one binding (use a smaller prefill chunk or batch, or a device with a larger limit)`,
    );
  at = memElems;
  place(model, 1, state, true);
  place(batch, plan.batch?.maxT ?? 0, batchState, true);
  const sum = (m: Map<string, StateSlot>) => [...m.values()].reduce((n, s) => n + s.elems, 0);
  return { elems: at, memElems, parts, state, stateElems: sum(state), batchState, batchStateElems: sum(batchState), tokens, output, outputElems, arena };
}

export interface LowerOptions {
  /** How limit errors name the device ('WebGPU device', 'CUDA device'). */
  device?: string;
  /** Keep the embedding on the host even when it fits a binding. */
  embedOnHost?: boolean;
}

export function lowerPlan(plan: KernelPlan, program: Program, limits: Limits, opts: LowerOptions = {}): LoweredProgram {
  const dev = opts.device ?? 'device';
  const layout = layoutMemory(plan, limits, dev);
  const decls = new Map(program.buffers.map((b) => [b.name, b]));
  const offsets = new Map<string, number>();
  let output: BufferDecl | null = null;
  for (const b of program.buffers) {
    switch (b.role) {
      case 'state': offsets.set(b.name, (program === plan.batch ? layout.batchState : layout.state).get(b.name)!.offset); break;
      case 'input': offsets.set(b.name, layout.tokens); break;
      case 'output': offsets.set(b.name, layout.output); output = b; break;
      case 'activation': offsets.set(b.name, layout.arena + b.offset! / 4); break;
    }
  }
  // Token rows go in a grid dimension (token_shift, layernorm, embed, matmul tiles).
  if (program.maxT > limits.maxComputeWorkgroupsPerDimension)
    throw new UserError(`${dev} limit maxComputeWorkgroupsPerDimension = ${limits.maxComputeWorkgroupsPerDimension} is smaller than the program's ${program.maxT} tokens per call (use a smaller chunk)`);
  const weights = new Map(plan.weights.map((w) => [w.name, w]));
  const ctx = new Ctx(program, decls, offsets, weights, limits, dev, program === plan.batch ? layout.batchState : layout.state, layout);
  const steps: Step[] = [];
  for (const k of program.kernels) {
    for (const s of lowerKernel(k, ctx, opts)) {
      if (s.kind === 'dispatch') checkShaderLimits(s, limits, dev);
      steps.push(s);
    }
  }
  return { steps, layout, offsets, output };
}

/** What lowering a kernel needs to look up. */
class Ctx {
  constructor(
    readonly program: Program,
    readonly decls: Map<string, BufferDecl>,
    readonly offsets: Map<string, number>,
    readonly weights: Map<string, WeightDecl>,
    readonly limits: Limits,
    readonly dev: string,
    readonly stateSlots: Map<string, StateSlot>,
    readonly layout: MemLayout,
  ) {}

  /** The one state part that holds every buffer named (a state kernel binds one), and its base as `st0`. */
  statePart(kernel: string, names: string[]): { statePart: number; st0: number } {
    const parts = new Set(names.map((n) => {
      const s = this.stateSlots.get(n);
      if (s?.part === undefined) throw new Error(`${kernel}: its state ${n} is not in a state part (not a state buffer, or other kernels read it)`);
      return s.part;
    }));
    if (parts.size !== 1) throw new Error(`${kernel}: its state buffers ${names.join(', ')} lie in different parts`);
    const [statePart] = parts;
    return { statePart, st0: this.layout.parts[statePart].base };
  }

  off(name: string): number {
    const o = this.offsets.get(name);
    if (o === undefined) throw new Error(`plan names buffer '${name}' that the program does not declare`);
    return o;
  }
  /** Elements per row of a buffer (its last axis). */
  width(name: string): number {
    this.off(name); // declared?
    const b = this.decls.get(name)!;
    return b.shape[b.shape.length - 1] as number;
  }
  weight(name: string): WeightDecl {
    const w = this.weights.get(name);
    if (!w) throw new Error(`plan names weight '${name}' that it does not declare`);
    return w;
  }
  numel(name: string): number {
    return this.weight(name).shape.reduce((a, b) => a * b, 1);
  }
  /** [start, end) of a buffer in mem at maxT rows. */
  region(name: string): [number, number] {
    const o = this.off(name);
    return [o, o + elems(this.decls.get(name)!, this.program.maxT)];
  }
  /** An f32 pack of weights; it must fit one binding. */
  pack(kernel: string, parts: string[]): WeightRef {
    const bytes = parts.reduce((n, p) => n + this.numel(p) * 4, 0);
    if (bytes > bindingMax(this.limits))
      throw new UserError(
        `${this.dev} limit maxStorageBufferBindingSize = ${bindingMax(this.limits)} bytes is too small for ` +
          `kernel ${kernel}: its f32 weights ${parts.join(', ')} take ${bytes} bytes in one binding`,
      );
    return { kind: 'pack', parts };
  }
}

function lowerKernel(k: Kernel, ctx: Ctx, opts: LowerOptions): Step[] {
  const lim = ctx.limits;
  switch (k.kind) {
    case 'embed': {
      const w = ctx.weight(k.table);
      const [V, C] = w.shape;
      if (C !== ctx.width(k.out)) throw new Error(`${k.name}: table rows are ${C} wide, ${k.out} is ${ctx.width(k.out)}`);
      noOverlap(ctx, k.name, [k.out], [k.tokens]);
      const table = { kind: 'rows' as const, weight: k.table, fmt: w.dtype, row0: 0, rows: V, cols: C };
      // a 4-bit table (never chosen by the weights pass, which keeps the embedding f16) is widened on the host
      if (opts.embedOnHost || w.dtype === 'q4_0' || w.dtype === 'q4_1' || matrixBytes(w.dtype, V, C) > bindingMax(lim))
        return [{ kind: 'host_embed', kernel: k.name, table, out: ctx.off(k.out), cols: C }];
      return [{
        kind: 'dispatch', kernel: k.name, key: { kind: 'embed', fmt: w.dtype }, weights: [table],
        params: {
          tok: ctx.off(k.tokens), out: ctx.off(k.out), c: C, stride: rowStride(w.dtype, C),
          ...(w.dtype === 'int8' ? { w0_sc: int8ScaleWord(V, C) } : {}),
        },
        grid: (T) => [Math.ceil(C / WG), T, 1],
      }];
    }
    case 'layernorm': {
      const C = ctx.numel(k.w);
      // In place is fine: a workgroup reads its whole row (the statistics) before writing it.
      return [{
        kind: 'dispatch', kernel: k.name, key: k.b ? { kind: 'layernorm' } : { kind: 'layernorm', rms: true }, weights: [ctx.pack(k.name, k.b ? [k.w, k.b] : [k.w])],
        params: { x: ctx.off(k.x), out: ctx.off(k.out), c: C, last: k.rows === 'last' ? 1 : 0, eps: k.eps },
        grid: (T) => [k.rows === 'last' ? 1 : T, 1, 1],
      }];
    }
    case 'token_shift': {
      const C = ctx.width(k.x);
      const S = k.outs.length;
      if (k.mix.length !== S) throw new Error(`${k.name}: ${k.mix.length} mix vectors for ${S} outputs`);
      const parts = [...(k.ln ? [k.ln.w, ...(k.ln.b ? [k.ln.b] : [])] : []), ...k.mix, ...(k.lora ? [k.lora.mu] : [])];
      for (const p of parts) if (ctx.numel(p) !== C) throw new Error(`${k.name}: ${p} is not [${C}]`);
      if (k.lora && (ctx.numel(k.lora.a) !== S * k.lora.dim * C || ctx.numel(k.lora.b) !== S * C * k.lora.dim))
        throw new Error(`${k.name}: LoRA matrices are not [${S}·${k.lora.dim}, ${C}] and [${S}, ${C}, ${k.lora.dim}]`);
      // shiftOut may alias shiftIn (the kernel allows it); the outputs must not alias the inputs.
      noOverlap(ctx, k.name, [...k.outs], [k.x, k.shiftIn]);
      noOverlap(ctx, k.name, [...k.outs], [k.shiftOut]);
      const weights = [ctx.pack(k.name, parts), ...(k.lora ? [ctx.pack(k.name, [k.lora.a]), ctx.pack(k.name, [k.lora.b])] : [])];
      const { statePart, st0 } = ctx.statePart(k.name, [k.shiftIn, k.shiftOut]);
      return [{
        kind: 'dispatch', kernel: k.name, statePart,
        key: { kind: 'token_shift', ln: !!k.ln, ...(k.ln && !k.ln.b ? { rms: true } : {}), outs: S, lora: k.lora ? { dim: k.lora.dim } : null, batch: !!k.batch },
        weights,
        params: {
          x: ctx.off(k.x), c: C, shift_in: ctx.off(k.shiftIn), shift_out: ctx.off(k.shiftOut),
          ...Object.fromEntries(k.outs.map((o, s) => [`out${s}`, ctx.off(o)])), eps: k.ln?.eps ?? 0, st0,
        },
        grid: (T) => [T, 1, 1],
      }];
    }
    case 'wkv': {
      const C = ctx.width(k.r), N = k.headSize;
      if (C % N) throw new Error(`${k.name}: width ${C} is not a multiple of the head size ${N}`);
      const parts = [
        ...(k.decay.kind === 'lora' ? [k.decay.base] : []), ...(k.u ? [k.u] : []), ...(k.norm ? [k.norm.w, k.norm.b] : []),
      ];
      const inputs = [k.r, k.k, k.v, k.decay.kind === 'lora' ? k.decay.z : k.decay.w, ...(k.gate ? [k.gate] : [])];
      noOverlap(ctx, k.name, [k.out], [...inputs, k.state]);
      const weights = [ctx.pack(k.name, parts)];
      if (k.decay.kind === 'lora') weights.push(ctx.pack(k.name, [k.decay.b]));
      const { statePart, st0 } = ctx.statePart(k.name, [k.state]);
      return [{
        kind: 'dispatch', kernel: k.name, statePart,
        key: {
          kind: 'wkv', headSize: N, decay: k.decay.kind, loraDim: k.decay.kind === 'lora' ? k.decay.dim : 0, u: !!k.u,
          order: k.order, kDecayScale: k.kDecayScale, norm: !!k.norm, gate: !!k.gate, batch: !!k.batch,
        },
        weights,
        params: {
          r: ctx.off(k.r), k: ctx.off(k.k), v: ctx.off(k.v), state: ctx.off(k.state), out: ctx.off(k.out), c: C,
          ...(k.decay.kind === 'lora' ? { z: ctx.off(k.decay.z) } : { w: ctx.off(k.decay.w) }),
          ...(k.gate ? { gate: ctx.off(k.gate) } : {}), r_scale: k.rScale, eps: k.norm?.eps ?? 0, st0,
        },
        grid: (T) => [C / N, k.batch ? T : 1, 1], // batch: a workgroup per (head, sequence)
      }];
    }
    case 'linear': return lowerLinear(k, ctx);
  }
}

/** One group's piece: rows [row0, row0 + rows) of its weight, with their own binding. */
interface Piece {
  key: LinearGroupKey;
  ref: WeightRef & { kind: 'rows' };
  params: Record<string, number>; // without the g{i}_ prefix
  proLoads: string[];
  epiLoads: string[];
}

function lowerLinear(k: Extract<Kernel, { kind: 'linear' }>, ctx: Ctx): Step[] {
  const lim = ctx.limits;
  const matvec = k.rows === 'last' || ctx.program.maxT === 1;
  const pieces: Piece[] = [];
  const outputs: string[] = [];
  const reads: string[][] = [];
  k.groups.forEach((g) => {
    const w = ctx.weight(g.w);
    const [O, I] = w.shape;
    if (ctx.width(g.x) !== I) throw new Error(`${k.name}: ${g.x} is ${ctx.width(g.x)} wide, ${g.w} takes ${I}`);
    if (ctx.width(g.y) !== O) throw new Error(`${k.name}: ${g.y} is ${ctx.width(g.y)} wide, ${g.w} gives ${O}`);
    checkRowFormat(g.w, w.dtype, I);
    const pro = g.prologue ? normalizeExpr(g.prologue) : null;
    const epi = g.epilogue ? normalizeExpr(g.epilogue) : null;
    // The epilogue may read y's own elements (a residual written in place): each one is read and then
    // written by the same invocation. Anything else a group reads must not overlap what any group writes.
    const own = [g.x, ...(pro?.loads ?? []), ...(epi?.loads ?? []).filter((b) => ctx.off(b) !== ctx.off(g.y))];
    noOverlap(ctx, k.name, [g.y], own);
    outputs.push(g.y);
    reads.push([g.y, ...own]);
    const maxRows = Math.floor(bindingMax(lim) / matrixBytes(w.dtype, 1, I));
    if (maxRows < 1)
      throw new UserError(
        `${ctx.dev} limit maxStorageBufferBindingSize = ${bindingMax(lim)} bytes is too small for weight ${g.w}: ` +
          `one row (${I} ${w.dtype} values) takes ${matrixBytes(w.dtype, 1, I)} bytes`,
      );
    for (let row0 = 0; row0 < O; row0 += maxRows) {
      const rows = Math.min(maxRows, O - row0);
      pieces.push({
        key: { fmt: w.dtype, ...(matvec ? { lanes: matvecLanes(I) } : {}), ...(pro ? { prologue: pro.expr } : {}), ...(epi ? { epilogue: epi.expr } : {}) },
        ref: { kind: 'rows', weight: g.w, fmt: w.dtype, row0, rows, cols: I },
        params: {
          x: ctx.off(g.x), y: ctx.off(g.y), i: I, o: rows, stride: rowStride(w.dtype, I), ys: O, ob: row0,
          ...(isBlockFormat(w.dtype) ? { sc: scaleWord(w.dtype, rows, I) } : {}),
        },
        proLoads: pro?.loads ?? [],
        epiLoads: epi?.loads ?? [],
      });
    }
  });
  // Groups run concurrently: no group may read what another writes, nor two groups write one buffer.
  reads.forEach((r, gi) => noOverlap(ctx, k.name, outputs.filter((_, j) => j !== gi), r));

  const perDispatch = lim.maxStorageBuffersPerShaderStage - 1; // one storage binding is mem (a linear kernel touches no state)
  if (perDispatch < 1)
    throw new UserError(`${ctx.dev} limit maxStorageBuffersPerShaderStage = ${lim.maxStorageBuffersPerShaderStage} is too small for kernel ${k.name} (needs 2)`);
  const steps: Step[] = [];
  for (let first = 0; first < pieces.length; first += perDispatch) {
    const batch = pieces.slice(first, first + perDispatch);
    const params: Record<string, number> = { last: k.rows === 'last' ? 1 : 0 };
    let units = 0;
    batch.forEach((pc, i) => {
      const start = units;
      // Output rows per workgroup (matvec) or per x-tile (matmul).
      units += Math.ceil(pc.ref.rows / (matvec ? WG / pc.key.lanes! : MM.BO));
      for (const [name, v] of Object.entries(pc.params)) params[name === 'sc' ? `w${i}_sc` : `g${i}_${name}`] = v;
      params[`g${i}_start`] = start;
      params[`g${i}_end`] = units;
      pc.proLoads.forEach((b, s) => (params[`g${i}_pl${s}`] = ctx.off(b)));
      pc.epiLoads.forEach((b, s) => (params[`g${i}_el${s}`] = ctx.off(b)));
    });
    const maxWG = lim.maxComputeWorkgroupsPerDimension;
    const total = units;
    let grid: (T: number) => [number, number, number];
    if (matvec) {
      // Fold the workgroups into a second dimension past the per-dimension limit.
      grid = () => (total <= maxWG ? [total, 1, 1] : [maxWG, Math.ceil(total / maxWG), 1]);
    } else {
      if (total > maxWG || Math.ceil(ctx.program.maxT / MM.BT) > maxWG)
        throw new UserError(`${ctx.dev} limit maxComputeWorkgroupsPerDimension = ${maxWG} is too small for kernel ${k.name} (${total} output tiles)`);
      grid = (T) => [total, Math.ceil((k.rows === 'last' ? 1 : T) / MM.BT), 1];
    }
    steps.push({
      kind: 'dispatch',
      kernel: pieces.length > batch.length ? `${k.name}[${first / perDispatch}]` : k.name,
      key: { kind: matvec ? 'matvec' : 'matmul', groups: batch.map((pc) => pc.key) },
      weights: batch.map((pc) => pc.ref),
      params,
      grid,
    });
  }
  return steps;
}

/** Outputs must not overlap inputs (the kernels read and write them from different invocations). */
function noOverlap(ctx: Ctx, kernel: string, outs: string[], ins: string[]): void {
  for (const o of outs) {
    const [a0, a1] = ctx.region(o);
    for (const i of ins) {
      const [b0, b1] = ctx.region(i);
      if (a0 < b1 && b0 < a1)
        throw new Error(`${kernel}: output ${o} overlaps input ${i} in memory (the GPU kernels need them apart)`);
    }
  }
}

/** Per-shader limits: workgroup memory, invocations, storage bindings. */
function checkShaderLimits(s: DispatchStep, lim: Limits, dev: string): void {
  const need = (limit: keyof Limits, value: number, what: string) => {
    if (value > lim[limit])
      throw new UserError(`${dev} limit ${limit} = ${lim[limit]} is too small for kernel ${s.kernel}: it needs ${value} (${what})`);
  };
  need('maxComputeWorkgroupStorageSize', workgroupBytes(s.key), 'bytes of workgroup memory');
  need('maxComputeInvocationsPerWorkgroup', invocations(s.key), 'invocations per workgroup');
  need('maxStorageBuffersPerShaderStage', storageBindings(s.key), 'storage buffers');
}
