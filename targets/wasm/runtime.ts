/**
 * The WASM-SIMD target's runtime: loads a compiled artifact (.wasm + layout JSON), packs the weights
 * into shared linear memory and runs programs on a team of threads. Only `loadWasmTarget` (which
 * starts from a plan) imports the compiler, lazily; `loadWasmArtifact` needs nothing but the files.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoadTarget, StateTensors, TargetModel, TargetOptions, WeightProvider } from '../backend.ts';
import type { BufferDecl, KernelPlan } from '../../kernels/plan.ts';
import { PROGRAM_ID } from './abi.ts';
import { memoryBytes, PAGE, threadScratch, type WasmLayout } from './layout.ts';
import { packWeight } from './pack.ts';
import { startTeam, type Team } from './team.ts';

/** What the runtime needs of a compiled plan (codegen's WasmArtifact has this shape). */
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
  readonly threads: number;
  readonly layout: WasmLayout;
  /** Synchronous run (benchmarks time it without promise overhead). */
  runSync(program: 'decode' | 'prefill' | 'batch', tokens: Int32Array): Float32Array;
  /** Per-kernel times of the last program calls (only for artifacts compiled with `profile`). */
  profile(reset?: boolean): WasmProfile | null;
}

const elems = (b: BufferDecl, T: number) => b.shape.reduce<number>((n, d) => n * (d === 'T' ? T : d), 1);

export const loadWasmTarget: LoadTarget = async (plan, weights, opts) => {
  const { compileWasm } = await import('./codegen.ts');
  return loadWasmArtifact(compileWasm(plan), weights, opts);
};

export async function loadWasmArtifact(art: WasmArtifactFiles, weights: WeightProvider, opts: WasmTargetOptions = {}): Promise<WasmTargetModel> {
  const { layout } = art;
  const plan: KernelPlan = layout.plan;
  const threads = Math.max(1, Math.floor(opts.threads ?? (await defaultThreads())));
  const relaxed = opts.relaxed !== false && !!art.wasmRelaxed && WebAssembly.validate(art.wasmRelaxed);
  const module = await compileOptimized(relaxed ? art.wasmRelaxed! : art.wasm, opts.eager !== false);

  const pages = memoryBytes(layout, threads) / PAGE;
  if (pages > 65536)
    throw new Error(`the WASM target needs ${(memoryBytes(layout, threads) / 2 ** 30).toFixed(2)} GiB of linear memory; WebAssembly (wasm32) allows 4 GiB: ` +
      'store the weights as bf16, f16 or int8, or use fewer threads');
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const buf = memory.buffer;

  // Pack every weight: the provider is asked once per weight, whatever number of packings it has.
  const decls = new Map(plan.weights.map((d) => [d.name, d]));
  const byWeight = new Map<string, typeof layout.weights>();
  for (const w of layout.weights) byWeight.set(w.weight, [...(byWeight.get(w.weight) ?? []), w]);
  for (const [name, packs] of byWeight) {
    const decl = decls.get(name)!;
    const values = weights(decl);
    for (const p of packs) packWeight(buf, p, values, decl);
  }

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

  const vocab = (() => {
    const emb = plan.decode.kernels.find((k) => k.kind === 'embed');
    return emb && emb.kind === 'embed' ? decls.get(emb.table)?.shape[0] ?? Infinity : Infinity;
  })();
  const where = (program: 'decode' | 'prefill' | 'batch', name: string) => layout.programs[program]!.buffers.find((b) => b.name === name)!;

  function runSync(program: 'decode' | 'prefill' | 'batch', tokens: Int32Array): Float32Array {
    const pl = layout.programs[program], prog = plan[program];
    if (!pl || !prog) throw new Error(`this plan was compiled without a ${program} program`);
    const T = tokens.length;
    if (T < 1 || T > pl.maxT) throw new Error(`${program} takes 1..${pl.maxT} tokens, got ${T}`);
    for (const t of tokens) if (!(t >= 0 && t < vocab)) throw new Error(`token id ${t} is outside the vocabulary (0..${vocab - 1})`);
    new Int32Array(buf, where(program, pl.tokens).offset, T).set(tokens);
    if (!prof || prof.program !== program) prof = { program: program as 'decode', ms: new Map(), calls: 0 };
    prof.calls++;
    last = performance.now();
    team.run(PROGRAM_ID[program], T);
    const out = where(program, pl.logits);
    const decl = prog.buffers.find((b) => b.name === pl.logits)!;
    return new Float32Array(buf, out.offset, elems(decl, T)).slice();
  }

  return {
    target: 'wasm',
    plan,
    maxTokens: plan.prefill.maxT,
    variant: relaxed ? 'relaxed' : 'simd',
    threads,
    layout,
    runSync,
    profile: (reset) => {
      const p = prof;
      if (reset) prof = null;
      return p && p.ms.size ? p : null;
    },
    run: async (program, tokens) => runSync(program, tokens),
    runBatch: layout.programs.batch && layout.batchState ? async (tokens, states) => {
      // sequence b's state is row b of each batch state buffer
      const B = tokens.length, bs = layout.batchState!;
      if (states.length !== B) throw new Error(`runBatch: ${B} tokens but ${states.length} states`);
      for (const b of bs) {
        const per = b.elems / layout.programs.batch!.maxT, all = new Float32Array(buf, b.offset, B * per);
        states.forEach((s, i) => {
          const v = s[b.name];
          if (v && v.length !== per) throw new Error(`state '${b.name}' has ${per} values, got ${v.length}`);
          if (v) all.set(v, i * per); else all.fill(0, i * per, (i + 1) * per);
        });
      }
      const logits = runSync('batch', tokens);
      const out = states.map((_, i) => Object.fromEntries(bs.map((b) => {
        const per = b.elems / layout.programs.batch!.maxT;
        return [b.name, new Float32Array(buf, b.offset + i * per * 4, per).slice()];
      })) as StateTensors);
      return { logits, states: out };
    } : undefined,
    readState: async () => {
      const s: StateTensors = {};
      for (const b of layout.state) s[b.name] = new Float32Array(buf, b.offset, b.elems).slice();
      return s;
    },
    writeState: async (s) => {
      for (const b of layout.state) {
        const v = s[b.name];
        if (!v) continue;
        if (v.length !== b.elems) throw new Error(`state '${b.name}' has ${b.elems} values, got ${v.length}`);
        new Float32Array(buf, b.offset, b.elems).set(v);
      }
    },
    dispose: () => { void team.dispose(); },
  };
}

/** Write an artifact as `<dir>/model.wasm`, `<dir>/model.relaxed.wasm` and `<dir>/layout.json`. */
export async function writeWasmArtifact(dir: string, art: WasmArtifactFiles): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.wasm'), art.wasm);
  if (art.wasmRelaxed) await writeFile(join(dir, 'model.relaxed.wasm'), art.wasmRelaxed);
  await writeFile(join(dir, 'layout.json'), JSON.stringify(art.layout));
}

export async function readWasmArtifact(dir: string): Promise<WasmArtifactFiles> {
  const layout = JSON.parse(await readFile(join(dir, 'layout.json'), 'utf8')) as WasmLayout;
  if (layout.format !== 'rwkvc-wasm' || layout.version !== 1) throw new Error(`${dir}/layout.json is not an rwkvc WASM layout (v1)`);
  const wasm = new Uint8Array(await readFile(join(dir, 'model.wasm')));
  let wasmRelaxed: Uint8Array<ArrayBuffer> | undefined;
  try { wasmRelaxed = new Uint8Array(await readFile(join(dir, 'model.relaxed.wasm'))); } catch { /* optional */ }
  return { wasm, wasmRelaxed, layout };
}
