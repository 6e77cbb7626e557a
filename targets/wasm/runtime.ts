/**
 * The WASM-SIMD target's runtime: loads a compiled artifact (.wasm + layout JSON), packs the weights
 * into shared linear memory and runs programs on a team of threads. Only `loadWasmTarget` (which
 * starts from a plan) imports the compiler, lazily; `loadWasmArtifact` needs nothing but the files, and
 * runs in Node and in browsers (the artifact file helpers import node: modules only when called).
 */
import { weightRows, type StateTensors, type TargetModel, type TargetOptions, type WeightProvider } from '../backend.ts';
import type { ArtifactFiles, TargetRuntime } from '../target.ts';
import { UserError } from '../../kernels/errors.ts';
import { callQueue, guardDisposed, lifetime, checkCall, checkStateWrite, packBatchStates, unpackBatchStates, vocabOf, type ProgramName } from '../model-base.ts';
import type { BufferDecl, KernelPlan, WeightDecl } from '../../kernels/plan.ts';
import { PANEL, PROGRAM_ID } from './abi.ts';
import { memoryBytes, PAGE, threadScratch, type PackedWeightLayout, type WasmLayout } from './layout.ts';
import { packWeight } from './pack.ts';
import { startTeam, teamThreads } from './team.ts';
import type { Team } from './team-thread.ts';
import { elems } from '../../kernels/program.ts';

/** What the runtime needs of a compiled plan (the compile half's WasmArtifact has this shape). */
export interface WasmArtifactFiles {
  wasm: Uint8Array<ArrayBuffer>;
  wasmRelaxed?: Uint8Array<ArrayBuffer>;
  layout: WasmLayout;
}

export interface WasmTargetOptions extends TargetOptions {
  /** Use the relaxed-SIMD (FMA) module when the engine supports it (default true). */
  relaxed?: boolean;
  /**
   * Compile every function with V8's optimising tier up front (default true). Otherwise the first
   * calls run baseline code and rarely called kernels (a prefill's LoRA phases) may stay there.
   */
  eager?: boolean;
  /** Called after each weight is packed (done, total). */
  onWeight?: (done: number, total: number) => void;
  /** Values converted at a time when a large matrix is packed piece by piece (default 1M; tests make it small). */
  chunkValues?: number;
}

/**
 * WebAssembly.compile with V8's baseline tier (Liftoff) off for this one module, so the first token is
 * as fast as the hundredth. Node only (v8.setFlagsFromString); elsewhere it is a plain compile.
 */
export async function compileOptimized(bytes: Uint8Array<ArrayBuffer>, eager: boolean): Promise<WebAssembly.Module> {
  const v8 = eager && typeof process !== 'undefined' && process.versions?.node ? await import('node:v8').catch(() => null) : null;
  if (!v8) return WebAssembly.compile(bytes);
  v8.setFlagsFromString('--no-liftoff');
  try { return await WebAssembly.compile(bytes); } finally { v8.setFlagsFromString('--liftoff'); }
}

/** All cores: os.availableParallelism() in Node, navigator.hardwareConcurrency elsewhere. */
async function defaultThreads(): Promise<number> {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (typeof process !== 'undefined' && process.versions?.node) {
    const os = await import('node:os').catch(() => null);
    if (os) return os.availableParallelism();
  }
  return nav?.hardwareConcurrency ?? 1;
}

/** Milliseconds per kernel name, summed over the program calls since the last reset (profiling builds). */
export interface WasmProfile { program: 'decode' | 'prefill'; ms: Map<string, number>; calls: number }

export interface WasmTargetModel extends TargetModel {
  /** Which module runs: 'relaxed' (FMA) or 'simd'. */
  readonly variant: 'relaxed' | 'simd';
  /** Threads it runs on: those asked for, unless the host cannot share memory between threads (see threadNote). */
  readonly threads: number;
  /** Why fewer threads run than were asked for (e.g. a page that is not cross-origin isolated); else undefined. */
  readonly threadNote?: string;
  readonly layout: WasmLayout;
  /** Synchronous run (benchmarks time it without promise overhead); only where thread 0 is the calling thread (Node, or 1 thread). */
  runSync(program: 'decode' | 'prefill' | 'batch', tokens: Int32Array): Float32Array;
  /** Per-kernel times of the last program calls (only for artifacts compiled with `profile`). */
  profile(reset?: boolean): WasmProfile | null;
}


/** The WASM target's run half (targets/target.ts): the artifact is model.wasm, model.relaxed.wasm, layout.json. */
export const runtime: TargetRuntime<WasmArtifactFiles> = {
  label: 'WASM',
  open: openWasmArtifact,
  plan: (art) => art.layout.plan,
  describe(model) {
    const w = model as WasmTargetModel;
    return {
      description: `WASM ${w.variant === 'relaxed' ? 'relaxed-SIMD (FMA)' : 'SIMD'}, ${w.threads} thread${w.threads === 1 ? '' : 's'}`,
      threads: w.threads,
      notes: w.threadNote ? [w.threadNote] : [],
    };
  },
  load: (art, weights, opts) => loadWasmArtifact(art, weights, opts as WasmTargetOptions),
};

/** An artifact from its files (the inverse of the compile half's `files`). */
function openWasmArtifact(files: ArtifactFiles): WasmArtifactFiles {
  const bytes = (name: string) => {
    const f = files[name];
    return f === undefined ? undefined : typeof f === 'string' ? new TextEncoder().encode(f) : new Uint8Array(f);
  };
  const text = files['layout.json'];
  let layout: WasmLayout | null = null;
  try { layout = JSON.parse(typeof text === 'string' ? text : new TextDecoder().decode(text)); } catch { /* below */ }
  const wasm = bytes('model.wasm');
  if (!layout || layout.format !== 'rwkvc-wasm' || layout.version !== 1 || !layout.plan || !wasm)
    throw new UserError('layout.json and model.wasm are not an rwkvc WASM artifact (v1)');
  return { wasm, wasmRelaxed: bytes('model.relaxed.wasm'), layout };
}

export async function loadWasmArtifact(art: WasmArtifactFiles, weights: WeightProvider, opts: WasmTargetOptions = {}): Promise<WasmTargetModel> {
  const { layout } = art;
  const plan: KernelPlan = layout.plan;
  const placed = await teamThreads(opts.threads ?? (await defaultThreads()));
  const threads = placed.threads;
  if (placed.note) console.warn(placed.note);
  const relaxed = opts.relaxed !== false && !!art.wasmRelaxed && WebAssembly.validate(art.wasmRelaxed);
  let bytes = relaxed ? art.wasmRelaxed! : art.wasm;

  const pages = memoryBytes(layout, threads) / PAGE;
  if (pages > 65536) throw new UserError(tooBig(layout, threads));
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  } catch (e) {
    // Some browsers refuse shared memory outside a cross-origin isolated page: one thread needs none.
    if (threads > 1) throw e;
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    bytes = unshareMemoryImport(bytes);
  }
  const module = await compileOptimized(bytes, opts.eager !== false);
  const buf = memory.buffer;

  await packAll(buf, layout, weights, opts.chunkValues ?? CHUNK_VALUES, opts.onWeight);

  // Profiling: thread 0 reports the end of each phase; the time since the previous mark is that phase's.
  let prof: WasmProfile | null = null, last = 0;
  const mark = (i: number) => {
    const now = performance.now();
    if (prof) {
      const name = layout.programs[prof.program].phases?.[i] ?? String(i);
      prof.ms.set(name, (prof.ms.get(name) ?? 0) + now - last);
    }
    last = now;
  };
  const team: Team = await startTeam(module, memory, threads, (tid) => threadScratch(layout, tid), mark);

  const vocab = vocabOf(plan);
  const where = (program: 'decode' | 'prefill' | 'batch', name: string) => layout.programs[program]!.buffers.find((b) => b.name === name)!;

  /** Write the tokens; returns what reads the logits after the team ran. */
  function prepare(program: 'decode' | 'prefill' | 'batch', tokens: Int32Array): () => Float32Array {
    checkCall(plan, program, tokens, vocab);
    const pl = layout.programs[program]!, prog = plan[program]!;
    const T = tokens.length;
    new Int32Array(buf, where(program, pl.tokens).offset, T).set(tokens);
    if (!prof || prof.program !== program) prof = { program: program as 'decode', ms: new Map(), calls: 0 };
    prof.calls++;
    last = performance.now();
    const out = where(program, pl.logits);
    const decl = prog.buffers.find((b) => b.name === pl.logits)!;
    return () => new Float32Array(buf, out.offset, elems(decl, T)).slice();
  }

  function runSync(program: 'decode' | 'prefill' | 'batch', tokens: Int32Array): Float32Array {
    if (!team.sync) throw new Error('wasm target: this model runs on Web Workers; use run() (asynchronous), not runSync()');
    const read = prepare(program, tokens);
    team.run(PROGRAM_ID[program], tokens.length);
    return read();
  }

  // Web Worker teams run asynchronously: calls and state access go one at a time, in order.
  const life = lifetime();
  const queue = callQueue(life);
  const serial = <R>(f: () => R | Promise<R>): Promise<R> => (team.sync ? (async () => f())() : queue(f));
  const runAsync = async (program: 'decode' | 'prefill' | 'batch', tokens: Int32Array): Promise<Float32Array> => {
    if (team.sync) return runSync(program, tokens);
    const read = prepare(program, tokens);
    await team.runAsync(PROGRAM_ID[program], tokens.length);
    return read();
  };

  return guardDisposed<WasmTargetModel>({
    target: 'wasm',
    plan,
    maxTokens: plan.prefill.maxT,
    variant: relaxed ? 'relaxed' : 'simd',
    threads,
    ...(placed.note ? { threadNote: placed.note } : {}),
    layout,
    runSync,
    profile: (reset) => {
      const p = prof;
      if (reset) prof = null;
      return p && p.ms.size ? p : null;
    },
    run: (program, tokens) => serial(() => runAsync(program, tokens)),
    runBatch: layout.programs.batch && layout.batchState ? (tokens, states) => serial(async () => {
      // sequence b's state is row b of each batch state buffer
      const slots = layout.batchState!.map((b) => ({ name: b.name, per: b.elems / layout.programs.batch!.maxT, offset: b.offset }));
      packBatchStates(tokens, states, slots, (s, b, v) => new Float32Array(buf, s.offset + b * s.per * 4, s.per).set(v));
      const logits = await runAsync('batch', tokens);
      const out = unpackBatchStates(tokens.length, slots, (s, b) => new Float32Array(buf, s.offset + b * s.per * 4, s.per).slice());
      return { logits, states: out };
    }) : undefined,
    readState: () => serial(() => {
      const s: StateTensors = {};
      for (const b of layout.state) s[b.name] = new Float32Array(buf, b.offset, b.elems).slice();
      return s;
    }),
    writeState: (s) => serial(() => {
      for (const b of layout.state) {
        const v = s[b.name];
        if (!v) continue;
        checkStateWrite(b.name, b.elems, v);
        new Float32Array(buf, b.offset, b.elems).set(v);
      }
    }),
    dispose: () => { void team.dispose(); },
  }, life);
}

/** Bytes per weight of each panel format, for the refusal's estimate of what would fit. */
const BYTES_PER_WEIGHT: Record<string, number> = { f32: 4, bf16: 2, f16: 2, int8: 34 / 32, q4_0: 18 / 32, q4_1: 20 / 32 };

/**
 * The one line for a model over wasm32's 4 GiB, before anything is allocated: what it needs, and the
 * formats whose matrices (scaled by bytes per weight from this layout's) would bring it under the limit.
 */
function tooBig(layout: WasmLayout, threads: number): string {
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const total = memoryBytes(layout, threads);
  const panels = layout.weights.filter((w) => w.pack === 'panel' && BYTES_PER_WEIGHT[w.dtype]);
  const fmt = panels[0]?.dtype ?? 'f32';
  const panelBytes = panels.reduce((n, w) => n + w.bytes, 0);
  const fits = Object.keys(BYTES_PER_WEIGHT).filter((f) => f !== fmt && total - panelBytes + (panelBytes * BYTES_PER_WEIGHT[f]!) / BYTES_PER_WEIGHT[fmt]! <= 65536 * PAGE);
  return `the WASM target needs ${gib(total)} of linear memory (${fmt} weights ${gib(layout.weights.reduce((n, w) => n + w.bytes, 0))}, ${threads} thread${threads === 1 ? '' : 's'}); ` +
    `WebAssembly (wasm32) allows 4 GiB: ${fits.length ? `weights that would fit: ${fits.join(', ')}` : 'no weight format fits: WebGPU'}`;
}

/** Rows of a large matrix converted at a time: ~1M values (4 MiB as f32), a whole number of panels. */
const CHUNK_VALUES = 1 << 20;

/**
 * Pack every weight into linear memory. A weight packed once as a whole matrix (panel), an f32 table (raw)
 * or a 16-bit table (raw16) is converted a slice of rows at a time through the provider's `rows`, so a
 * load holds one slice (plus its temporaries) beside the memory, never a whole matrix as f32: the head of
 * finch-1b6 alone is 512 MiB as f32. Other weights (vectors, LoRA slices of a 3-D weight) are asked for
 * whole, once, whatever number of packings they have. A provider's `prepare` (a browser File) is awaited
 * before each weight.
 */
async function packAll(buf: ArrayBufferLike, layout: WasmLayout, weights: WeightProvider, chunk: number, onWeight?: (done: number, total: number) => void): Promise<void> {
  const decls = new Map(layout.plan.weights.map((d) => [d.name, d]));
  const byWeight = new Map<string, typeof layout.weights>();
  for (const w of layout.weights) byWeight.set(w.weight, [...(byWeight.get(w.weight) ?? []), w]);
  let done = 0;
  for (const [name, packs] of byWeight) {
    const decl = decls.get(name)!;
    const n = decl.shape.reduce((a, b) => a * b, 1);
    const p = packs[0]!;
    if (packs.length === 1 && decl.shape.length === 2 && n > chunk && (p.pack !== 'panel' || (p.row0 ?? 0) === 0 && p.O === decl.shape[0]))
      await packInRows(buf, p, decl, weights, chunk);
    else {
      await weights.prepare?.(decl);
      const values = weights(decl);
      for (const q of packs) packWeight(buf, q, values, decl);
    }
    onWeight?.(++done, byWeight.size);
  }
}

/**
 * One whole-matrix packing, slice by slice: panels (PANEL rows each) or rows of a table are independent.
 * Each slice's bytes are prepared just before it is read (a browser File: only that slice is fetched).
 */
async function packInRows(buf: ArrayBufferLike, p: PackedWeightLayout, decl: WeightDecl, weights: WeightProvider, chunk: number): Promise<void> {
  const [rows, cols] = decl.shape as [number, number];
  const unit = p.pack === 'panel' ? PANEL : 1;
  const unitBytes = p.pack === 'panel' ? p.bytes / Math.ceil(rows / PANEL) : p.bytes / rows;
  const step = Math.max(1, Math.floor(chunk / cols / unit)) * unit;
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    const part: WeightDecl = { ...decl, shape: [n, cols] };
    const at: PackedWeightLayout = { ...p, offset: p.offset + (r0 / unit) * unitBytes, bytes: Math.ceil(n / unit) * unitBytes, ...(p.pack === 'panel' ? { row0: 0, O: n } : {}) };
    await weights.prepare?.(decl, { row0: r0, rows: n });
    packWeight(buf, at, weightRows(weights, decl, r0, n), part);
  }
}

/**
 * The module with its memory import declared unshared (limits flag 0x03 → 0x01), for one thread where
 * shared memory is refused. Atomic instructions stay valid on unshared memory; only a wait would trap,
 * and one thread never waits. Returns a patched copy.
 */
function unshareMemoryImport(wasm: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const b = wasm.slice();
  let p = 8;
  const leb = () => { let v = 0, shift = 0, byte: number; do { byte = b[p++]!; v += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80); return v; };
  const limits = () => { const flag = b[p]!; const at = p++; leb(); if (flag & 1) leb(); return at; };
  while (p < b.length) {
    const id = b[p++]!, size = leb(), end = p + size;
    if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        for (let k = 0; k < 2; k++) { const len = leb(); p += len; } // module, field names
        const kind = b[p++]!;
        if (kind === 0) leb();
        else if (kind === 1) { p++; limits(); }
        else if (kind === 2) { const at = limits(); b[at] = b[at]! & ~2; }
        else if (kind === 3) p += 2;
        else throw new Error(`wasm target: unknown import kind ${kind}`);
      }
    }
    p = end;
  }
  return b;
}
