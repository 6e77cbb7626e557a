/**
 * The WASM target's module text and memory layout for a KernelPlan (codegen.ts assembles the text).
 *
 * Every size is a constant of the generated code; addresses are parameters of the kernel functions,
 * so the kernels of layer 0 and layer 11 are one function called with other addresses (the module of
 * a 12-layer model is about as large as that of a 1-layer one). Each program is a straight sequence
 * of phase calls with a barrier after each; every thread runs the same sequence on its share.
 */
import type { BufferDecl, Kernel, KernelPlan, Program, WeightDecl, WeightDType } from '../../kernels/plan.ts';
import { INT8_BLOCK } from '../../kernels/dtype.ts';
import { CONTROL_BYTES, PANEL } from './abi.ts';
import { lowerKernel, sliceKey, tokenShiftScratch, wkvScratch, type LowerEnv, type Phase } from './kernels.ts';
import { DEFAULT_SCHEDULE, panelBytes, type LinearSchedule, type PanelWeight } from './linear.ts';
import { align, PAGE, type BufferLayout, type PackedWeightLayout, type ProgramLayout, type WasmLayout } from './layout.ts';
import { mathlib } from './mathlib.ts';
import { i32 } from './wat.ts';
import { checkRowFormat, elems, planPrograms } from '../../kernels/program.ts';
/** Row width: everything after a leading T (or after the first of ≥ 2 dims); a 1-D buffer is one row. */
const widthOf = (b: BufferDecl) => (b.shape.length >= 2 ? b.shape.slice(1).reduce<number>((n, d) => n * (d === 'T' ? 1 : d), 1) : elems(b, 1));

class Alloc {
  constructor(public cur: number) {}
  take(bytes: number): number {
    const at = align(this.cur);
    this.cur = at + align(bytes) + 64; // 64 spare bytes: whole-vector loads past a buffer's end stay inside it
    return at;
  }
}

/** Where each weight is read, and so how it is packed. */
function weightUses(plan: KernelPlan) {
  const decls = new Map(plan.weights.map((w) => [w.name, w]));
  const need = (n: string): WeightDecl => {
    const d = decls.get(n);
    if (!d) throw new Error(`plan names weight '${n}' that is not declared`);
    return d;
  };
  const panels = new Map<string, { decl: WeightDecl; row0: number; O: number; I: number }>();
  const raws = new Map<string, WeightDecl>();
  /** Embedding tables kept in their 16-bit dtype (a row is widened when it is read): half the memory. */
  const tables16 = new Map<string, WeightDecl>();
  const panel = (n: string) => {
    const d = need(n);
    if (d.shape.length !== 2) throw new Error(`weight '${n}' is used as a matrix but has shape [${d.shape}]`);
    panels.set(n, { decl: d, row0: 0, O: d.shape[0], I: d.shape[1] });
  };
  const raw = (n: string) => raws.set(n, need(n));
  for (const p of plan.batch ? [plan.decode, plan.prefill, plan.batch] : [plan.decode, plan.prefill])
    for (const k of p.kernels) {
      switch (k.kind) {
        case 'embed': {
          const d = need(k.table);
          if (d.dtype === 'bf16' || d.dtype === 'f16') tables16.set(k.table, d); else raw(k.table);
          break;
        }
        case 'layernorm': raw(k.w); if (k.b) raw(k.b); break;
        case 'linear': for (const g of k.groups) panel(g.w); break;
        case 'token_shift':
          if (k.ln) { raw(k.ln.w); if (k.ln.b) raw(k.ln.b); }
          k.mix.forEach(raw);
          if (k.lora) {
            raw(k.lora.mu);
            panel(k.lora.a);
            const b = need(k.lora.b);
            const [S, C, D] = b.shape;
            if (b.shape.length !== 3 || S !== k.outs.length) throw new Error(`token_shift '${k.name}': lora b must be [${k.outs.length}, C, D], got [${b.shape}]`);
            for (let s = 0; s < S; s++) panels.set(sliceKey(k.lora.b, s), { decl: b, row0: s * C, O: C, I: D });
          }
          break;
        case 'wkv':
          if (k.u) raw(k.u);
          if (k.norm) { raw(k.norm.w); raw(k.norm.b); }
          if (k.decay.kind === 'lora') { raw(k.decay.base); panel(k.decay.b); }
          break;
      }
    }
  for (const [key, p] of panels)
    checkRowFormat(key, p.decl.dtype, p.I);
  return { panels, raws, tables16 };
}

function checkPlan(plan: KernelPlan): void {
  if (plan.decode.maxT !== 1) throw new Error(`the decode program must have maxT = 1, got ${plan.decode.maxT}`);
  for (const p of plan.batch ? [plan.decode, plan.prefill, plan.batch] : [plan.decode, plan.prefill])
    for (const k of p.kernels)
      if (k.kind === 'wkv' && k.headSize % 16) throw new Error(`wkv '${k.name}': the WASM target needs a head size that is a multiple of 16, got ${k.headSize}`);
}

/** The memory layout a plan compiles to (no module rendered): what sizes and limit checks read. */
export function wasmLayout(plan: KernelPlan): WasmLayout {
  return build(plan, false, DEFAULT_SCHEDULE, true).layout;
}

/** layoutOnly: the layout without the module text (each distinct kernel is lowered once, for its phases and errors). */
export function build(plan: KernelPlan, profile: boolean, schedule: LinearSchedule, layoutOnly = false) {
  checkPlan(plan);
  const uses = weightUses(plan);
  const mem = new Alloc(CONTROL_BYTES);
  // decode, prefill and (when the plan has one) batch: B sequences of one token, state rows [B, …]
  const programs = plan.batch ? [plan.decode, plan.prefill, plan.batch] : [plan.decode, plan.prefill];

  // State: shared by decode and prefill, by name; the batch program has its own [B, …] copies.
  const state = new Map<string, BufferLayout>(), batchState = new Map<string, BufferLayout>();
  for (const p of [plan.decode, plan.prefill])
    for (const b of p.buffers)
      if (b.role === 'state' && !state.has(b.name))
        state.set(b.name, { name: b.name, offset: mem.take(elems(b, 1) * 4), elems: elems(b, 1), width: widthOf(b) });
  if (plan.batch)
    for (const b of plan.batch.buffers)
      if (b.role === 'state') {
        const n = elems(b, plan.batch.maxT);
        batchState.set(b.name, { name: b.name, offset: mem.take(n * 4), elems: n, width: widthOf(b) });
      }

  // Inputs and outputs per program.
  const io = programs.map((p) => {
    const m = new Map<string, BufferLayout>();
    for (const b of p.buffers)
      if (b.role === 'input' || b.role === 'output') m.set(b.name, { name: b.name, offset: mem.take(elems(b, p.maxT) * 4), elems: elems(b, p.maxT), width: widthOf(b) });
    return m;
  });

  // Program region: the activation arena (the plan's offsets where given) then kernel scratch.
  const regionBase = align(mem.cur);
  let regionEnd = regionBase;
  const acts = programs.map((p) => {
    const m = new Map<string, BufferLayout>();
    let end = 0;
    for (const b of p.buffers)
      if (b.role === 'activation' && b.offset !== undefined) end = Math.max(end, b.offset + elems(b, p.maxT) * 4);
    end = align(end) + 64;
    for (const b of p.buffers) {
      if (b.role !== 'activation') continue;
      let off = b.offset;
      if (off === undefined) { off = end; end = align(end + elems(b, p.maxT) * 4) + 64; }
      m.set(b.name, { name: b.name, offset: regionBase + off, elems: elems(b, p.maxT), width: widthOf(b) });
    }
    const scratch = regionBase + align(end) + 64;
    const scratchBytes = Math.max(0, ...p.kernels.map((k) => kernelScratch(k, p, plan)));
    regionEnd = Math.max(regionEnd, scratch + scratchBytes + 64);
    return { m, scratch };
  });
  mem.cur = regionEnd;

  // Weights.
  const weights: PackedWeightLayout[] = [];
  const rawAddr = new Map<string, number>(), panelRef = new Map<string, PanelWeight>();
  for (const [name, d] of uses.raws) {
    const n = d.shape.reduce((a, b) => a * b, 1);
    const offset = mem.take(n * 4);
    weights.push({ key: `${name}@raw`, weight: name, pack: 'raw', dtype: d.dtype, offset, bytes: n * 4 });
    rawAddr.set(name, offset);
  }
  const table16Addr = new Map<string, number>();
  for (const [name, d] of uses.tables16) {
    const n = d.shape.reduce((a, b) => a * b, 1);
    const offset = mem.take(n * 2);
    weights.push({ key: `${name}@raw16`, weight: name, pack: 'raw16', dtype: d.dtype, offset, bytes: n * 2 });
    table16Addr.set(name, offset);
  }
  for (const [key, p] of uses.panels) {
    const bytes = Math.ceil(p.O / PANEL) * panelBytes(p.decl.dtype, p.I);
    const offset = mem.take(bytes);
    weights.push({ key, weight: p.decl.name, pack: 'panel', dtype: p.decl.dtype, row0: p.row0, O: p.O, I: p.I, offset, bytes });
    panelRef.set(key, { addr: offset, dtype: p.decl.dtype, O: p.O, I: p.I });
  }
  const staticBytes = align(mem.cur) + 64;

  // Thread scratch: prologue staging, a widened panel (prefill, non-f32), the wkv per-head vectors.
  let stage = 0, wkvPrep = 0, shiftRows = 0;
  for (const p of programs)
    for (const k of p.kernels) {
      if (k.kind === 'linear')
        for (const g of k.groups)
          if (g.prologue) stage = Math.max(stage, (k.rows === 'last' ? 1 : p.maxT) * panelRef.get(g.w)!.I * 4 + 64);
      if (k.kind === 'wkv') wkvPrep = Math.max(wkvPrep, 3 * k.headSize * 4 + 64);
      if (k.kind === 'token_shift') shiftRows = Math.max(shiftRows, 3 * (uses.raws.get(k.mix[0])!.shape.reduce((a, b) => a * b, 1) * 4 + 64));
    }
  const widest = Math.max(0, ...[...panelRef.values()].filter((w) => w.dtype !== 'f32').map((w) => w.I * 64 + 64));
  // wkv's per-head vectors reuse the staging area (no phase needs both); decode token_shift rows follow the panel
  const stageOff = 0, panelOff = align(stage), shiftOff = align(panelOff + widest);
  const threadScratchBytes = align(Math.max(shiftOff + shiftRows, wkvPrep, 64), 256);

  const layoutOf = (pi: number): ProgramLayout => {
    const p = programs[pi];
    const tokens = p.buffers.find((b) => b.role === 'input'), logits = p.buffers.find((b) => b.role === 'output');
    if (!tokens || !logits) throw new Error(`program ${['decode', 'prefill', 'batch'][pi]} needs one input (tokens) and one output (logits) buffer`);
    return {
      maxT: p.maxT,
      buffers: [...io[pi].values(), ...acts[pi].m.values()],
      tokens: tokens.name, logits: logits.name, logitsPerToken: logits.shape[0] === 'T',
    };
  };

  const phaseNames: string[][] = programs.map(() => []);
  /** The kernel functions of the last render: WAT text and the plan kernels that call each. */
  let listing: { name: string; text: string; kernels: string[] }[] = [];
  /** What lowering program pi's kernels reads: addresses, widths, shapes and formats by name. */
  const envOf = (pi: number, relaxed: boolean) => {
    const p = programs[pi];
    const bufs = new Map<string, BufferLayout>([...(pi === 2 ? batchState : state), ...io[pi], ...acts[pi].m]);
    const decl = new Map(p.buffers.map((b) => [b.name, b]));
    const find = (n: string) => bufs.get(n) ?? missing(n);
    const env: LowerEnv = {
      relaxed, matmul: pi !== 0, maxT: p.maxT,
      buf: (n) => find(n).offset,
      width: (n) => (decl.has(n) ? widthOf(decl.get(n)!) : find(n).width),
      raw: (n) => rawAddr.get(n) ?? missing(n),
      table: (n) => (table16Addr.has(n) ? { addr: table16Addr.get(n)!, dtype: uses.tables16.get(n)!.dtype as 'bf16' } : { addr: rawAddr.get(n) ?? missing(n), dtype: 'f32' }),
      panel: (k) => panelRef.get(k) ?? missing(k),
      shape: (n) => uses.raws.get(n)?.shape ?? uses.panels.get(n)?.decl.shape ?? uses.tables16.get(n)?.shape ?? missing(n),
      scratch: acts[pi].scratch, stageOff, panelOff, shiftOff, schedule,
    };
    /**
     * Everything lowering reads of a kernel but its addresses: the kernel with its name, layer and DSL lines
     * left out and each buffer or weight name replaced by where it first occurs in the kernel (aliasing) and what
     * lowering asks of it (width, shape, format; panel slices too). Kernels with one key lower to the same
     * phases, whose text differs only in the address parameters (the kernels of every layer but the first).
     */
    const factsOf = new Map<string, string | undefined>(); // by name: a name recurs in the kernels that read it
    const facts = (n: string) => {
      if (factsOf.has(n)) return factsOf.get(n);
      const b = decl.has(n) ? widthOf(decl.get(n)!) : bufs.get(n)?.width;
      const pn = uses.panels.get(n), w = uses.raws.get(n) ?? uses.tables16.get(n);
      let slices = '';
      for (let s = 0, r; (r = panelRef.get(sliceKey(n, s))); s++) slices += `${r.dtype} ${r.O} ${r.I};`;
      const f = b === undefined && !pn && !w && !slices ? undefined
        : `${b} ${rawAddr.has(n)} ${table16Addr.has(n) && uses.tables16.get(n)!.dtype} ${w?.shape} ${pn ? `${pn.decl.dtype} ${pn.decl.shape} ${pn.O} ${pn.I}` : ''} ${slices}`;
      factsOf.set(n, f);
      return f;
    };
    const keyOf = (k: Kernel) => {
      const seen = new Map<string, number>();
      return JSON.stringify(k, function (this: unknown, field, v) {
        if (this === k && (field === 'name' || field === 'layer' || field === 'src')) return undefined;
        if (typeof v !== 'string') return v;
        const f = facts(v);
        if (f === undefined) return v;
        if (!seen.has(v)) seen.set(v, seen.size);
        return `\u0000${seen.get(v)}:${f}`;
      });
    };
    return { env, keyOf };
  };

  /** The layout's phase names without rendering the module: one lowering per distinct kernel key. */
  const phasesOnly = () => {
    programs.forEach((p, pi) => {
      const { env, keyOf } = envOf(pi, false);
      const phases = new Map<string, number>(); // kernel key → its phase count
      phaseNames[pi] = [];
      for (const k of p.kernels) {
        const key = keyOf(k);
        let n = phases.get(key);
        if (n === undefined) {
          try { n = lowerKernel(k, env).length; } catch (e) { throw new Error(`kernel '${k.name}' (${k.kind}): ${(e as Error).message}`); }
          phases.set(key, n);
        }
        for (let i = 0; i < n; i++) phaseNames[pi].push(k.name);
      }
    });
  };

  const render = (relaxed: boolean) => {
    const funcs = new Map<string, string>(); // body text → function name
    const defs: string[] = [];
    listing = [];
    const progs = programs.map((p, pi) => {
      const { env } = envOf(pi, relaxed);
      const calls: string[] = [];
      phaseNames[pi] = [];
      for (const k of p.kernels) {
        let phases: Phase[];
        try { phases = lowerKernel(k, env); } catch (e) { throw new Error(`kernel '${k.name}' (${k.kind}): ${(e as Error).message}`); }
        for (const ph of phases) {
          const text = `(param $tid i32) (param $nth i32) (param $T i32) ${ph.params.header()} ${ph.locals.text()}\n${ph.body})`;
          let name = funcs.get(text);
          if (!name) {
            name = `$k${funcs.size}`;
            funcs.set(text, name);
            defs.push(`(func ${name} ${text}`);
            listing.push({ name, text: `(func ${name} ${text}`, kernels: [] });
          }
          const fn = listing.find((f) => f.name === name)!;
          if (!fn.kernels.includes(k.name)) fn.kernels.push(k.name);
          calls.push(`  ;; ${k.name}\n  (call ${name} (local.get $tid) (local.get $nth) (local.get $T) ${ph.params.values.map(i32).join(' ')})` +
            (ph.barrier === false ? '' : '\n  (call $barrier (local.get $nth))'));
          if (profile) calls.push(`  (if (i32.eqz (local.get $tid)) (then (call $mark ${i32(phaseNames[pi].length)})))`);
          phaseNames[pi].push(k.name);
        }
      }
      return `(func $prog${pi} (param $T i32) (param $tid i32) (param $nth i32)\n${calls.join('\n')})`;
    });
    const text = `(module
(import "env" "memory" (memory ${Math.ceil(staticBytes / PAGE)} 65536 shared))
${profile ? '(import "env" "mark" (func $mark (param i32)))' : ''}
(global $ts (mut i32) (i32.const 0))
(func (export "init") (param $s i32) (global.set $ts (local.get $s)))
${mathlib()}
${defs.join('\n')}
${progs.join('\n')}
(func (export "run") (param $prog i32) (param $T i32) (param $tid i32) (param $nth i32)
${programs.map((_, pi) => `  (if (i32.eq (local.get $prog) (i32.const ${pi})) (then (call $prog${pi} (local.get $T) (local.get $tid) (local.get $nth))))`).join('\n')})
)`;
    return text;
  };

  // names the phases; the plain module's text, kept so it is rendered once
  const plain = layoutOnly ? '' : render(false);
  if (layoutOnly) phasesOnly();
  const layout: WasmLayout = {
    format: 'rwkvc-wasm', version: 1, plan, staticBytes, threadScratchBytes, weights,
    state: [...state.values()],
    programs: {
      decode: { ...layoutOf(0), phases: phaseNames[0] }, prefill: { ...layoutOf(1), phases: phaseNames[1] },
      ...(plan.batch ? { batch: { ...layoutOf(2), phases: phaseNames[2] } } : {}),
    },
    batchState: [...batchState.values()],
    decodeWeightBytes: decodeBytes(plan.decode, weights, new Map([...uses.raws, ...uses.tables16])),
  };
  return { layout, render, plain, listing: () => listing };
}

/** Shared scratch bytes a kernel needs (sized for maxT). */
function kernelScratch(k: Kernel, p: Program, plan: KernelPlan): number {
  const w = (n: string) => plan.weights.find((d) => d.name === n)!.shape.reduce((a, b) => a * b, 1);
  if (k.kind === 'token_shift') return tokenShiftScratch(k, w(k.mix[0]), p.maxT).end;
  if (k.kind === 'wkv') {
    const r = p.buffers.find((b) => b.name === k.r);
    return wkvScratch(k, r ? widthOf(r) : plan.config.nEmbd, p.maxT).end;
  }
  return 0;
}

function decodeBytes(p: Program, weights: PackedWeightLayout[], raws: Map<string, WeightDecl>): number {
  const by = new Map(weights.map((w) => [w.key, w]));
  const seen = new Set<string>();
  let bytes = 0;
  const add = (key: string, n?: number) => { if (!seen.has(key)) { seen.add(key); bytes += n ?? by.get(key)?.bytes ?? 0; } };
  for (const k of p.kernels) {
    const names: string[] = [];
    switch (k.kind) {
      case 'embed': {
        const d = raws.get(k.table), row = d?.shape.slice(1).reduce((a, b) => a * b, 1) ?? 0;
        add(`${k.table}@raw`, row * (d?.dtype === 'bf16' || d?.dtype === 'f16' ? 2 : 4));
        break;
      }
      case 'layernorm': names.push(k.w, ...(k.b ? [k.b] : [])); break;
      case 'linear': for (const g of k.groups) add(g.w); break;
      case 'token_shift':
        if (k.ln) names.push(k.ln.w, ...(k.ln.b ? [k.ln.b] : []));
        names.push(...k.mix);
        if (k.lora) { names.push(k.lora.mu); add(k.lora.a); k.outs.forEach((_, s) => add(sliceKey(k.lora!.b, s))); }
        break;
      case 'wkv':
        if (k.u) names.push(k.u);
        if (k.norm) names.push(k.norm.w, k.norm.b);
        if (k.decay.kind === 'lora') { names.push(k.decay.base); add(k.decay.b); }
        break;
    }
    for (const n of names) add(`${n}@raw`);
  }
  return bytes;
}

function missing(name: string): never {
  throw new Error(`plan names buffer or weight '${name}' that is not declared`);
}

