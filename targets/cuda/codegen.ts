/**
 * CUDA codegen: a KernelPlan → one CUDA translation unit and a launch table (targets/cuda/artifact.ts).
 *
 * Lowering is the shared GPU layer's (targets/gpu/lower.ts), run with CUDA's limits: the same memory
 * layout, weight encodings, parameter words and grids as the WGSL target. A step's shader key becomes a
 * CUDA kernel key by adding the few CUDA-only choices (`cuda`: vector width per linear group, the
 * chunked WKV for prefill), and each distinct key is rendered once, through the Handlebars templates in
 * templates/*.cu.hbs with the CUDA dialect of the shared expression printer. Templates hold the layout
 * of each kernel; this module computes every value they print.
 */
import Handlebars from 'handlebars';
import { readFileSync } from 'node:fs';
import type { Kernel, KernelPlan, Program } from '../../kernels/plan.ts';
import { UserError } from '../../kernels/errors.ts';
import { planPrograms } from '../../kernels/program.ts';
import type { KernelSource, TargetCodegen, EmitOptions } from '../target.ts';
import { keyTitle, printGroupExprs, wkvView } from '../gpu/views.ts';
import { matrixBytes, type WFormat } from '../gpu/formats.ts';
import { MM, WG, packParams, paramFields, weightBindings, type ShaderKey } from '../gpu/keys.ts';
import { lowerPlan, memLayoutJson, weightRefId, type Limits, type WeightRef, type DispatchStep } from '../gpu/lower.ts';
import { CUDA } from './dialect.ts';
import { CUDA_LIMITS } from './limits.ts';
import { compilePtxSync } from './nvcc.ts';
import {
  artifactFiles, type CudaArtifact, type CudaFunction, type CudaProgram, type CudaWeight, type Grid, type GridDim,
  type LaunchStep,
} from './artifact.ts';

export { CUDA_LIMITS } from './limits.ts';

/** Dynamic shared memory a kernel may use without cuFuncSetAttribute. */
const SMEM_DEFAULT = 48 * 1024;

/** CUDA-only choices, added to the shared shader key. */
export interface CudaExtra {
  /** matvec: weights per vector load of each group (f32 4, f16/bf16 8 (or 4 when rows are not 16-byte aligned), int8 32). */
  vec?: number[];
  /** wkv: the chunked-parallel form with chunks of this many tokens (prefill). */
  chunk?: number;
  /** token_shift: the row width C (its a row, and xxx with LoRA, are staged in static shared memory). */
  row?: number;
}
export type CudaKey = ShaderKey & { cuda?: CudaExtra };

const hb = Handlebars.create();
const compile = (name: string) =>
  hb.compile(readFileSync(new URL(`./templates/${name}.cu.hbs`, import.meta.url), 'utf8'), { noEscape: true, strict: true });
for (const partial of ['header', 'signature', 'linear_groups']) hb.registerPartial(partial, compile(partial));
const TEMPLATES = {
  prelude: compile('prelude'),
  embed: compile('embed'),
  layernorm: compile('layernorm'),
  token_shift: compile('token_shift'),
  wkv: compile('wkv'),
  wkv_chunked: compile('wkv_chunked'),
  matvec: compile('matvec'),
  matmul: compile('matmul'),
};

/** Bytes per weight element as stored, >> eshift (int8: the q bytes, q4: half a byte; scales follow them). */
const ebytes = (fmt: WFormat) => (fmt === 'f32' ? 4 : fmt === 'int8' || fmt === 'q4_0' || fmt === 'q4_1' ? 1 : 2);
const eshift = (fmt: WFormat) => (fmt === 'q4_0' || fmt === 'q4_1' ? 1 : 0);

/** Elements one embed thread widens (one 16-byte f32 load, 8 bytes of f16/bf16, a whole Q8_0 block). */
const embedPer = (fmt: WFormat) => (fmt === 'int8' ? 32 : 4);

/** The largest WKV chunk (tokens) whose staging fits static shared memory. */
export function wkvChunk(headSize: number): number {
  for (const L of [32, 16, 8]) if (wkvChunkBytes(headSize, L) <= SMEM_DEFAULT) return L;
  throw new UserError(`CUDA: head size ${headSize} is too large for the chunked WKV kernel's shared memory`);
}
const wkvChunkBytes = (N: number, L: number) => (4 * L * (N + 1) + L * L + 2 * N) * 4;

/** Threads per block of a key. */
export function blockOf(key: CudaKey): [number, number, number] {
  switch (key.kind) {
    case 'embed': return [WG / embedPer(key.fmt), 1, 1];
    case 'wkv': return [key.headSize, 1, 1];
    default: return [WG, 1, 1];
  }
}

/** The parameter struct's C type of each field. */
const ctype = (t: 'u32' | 'f32') => (t === 'u32' ? 'unsigned' : 'float');

export interface Rendered { name: string; key: CudaKey; code: string; sharedBytes: number }

/** Render one kernel key to CUDA text (a struct and an extern "C" function named `name`). */
export function renderKernel(key: CudaKey, name: string): string {
  const base = key as ShaderKey;
  const common = {
    name,
    title: title(key),
    keyText: JSON.stringify(key),
    params: paramFields(base).map((f) => ({ name: f.name, ctype: ctype(f.type) })),
    threads: blockOf(key)[0],
    wargs: Array.from({ length: weightBindings(base) }, (_, i) => `w${i}`),
  };
  switch (key.kind) {
    case 'embed':
      return TEMPLATES.embed({ ...common, per: embedPer(key.fmt), ...fmtFlags(key.fmt) });
    case 'layernorm':
      return TEMPLATES.layernorm({ ...common, rms: !!key.rms, stats: key.rms ? 'rms_stats' : 'ln_stats' });
    case 'token_shift': {
      const S = key.outs;
      const mix0 = key.ln ? (key.rms ? 1 : 2) : 0;
      const pack = [...(key.ln ? (key.rms ? ['ln.w'] : ['ln.w', 'ln.b']) : []), ...Array.from({ length: S }, (_, s) => `mix${s}`), ...(key.lora ? ['mu_x'] : [])];
      return TEMPLATES.token_shift({
        ...common,
        packDoc: `[${pack.join(', ')}]`,
        ln: key.ln,
        rms: !!key.rms,
        stats: key.rms ? 'rms_stats' : 'ln_stats',
        batch: key.batch,
        lora: !!key.lora,
        muAt: mix0 + S,
        dim: key.lora?.dim ?? 0,
        dim4: !!key.lora && key.lora.dim % 4 === 0,
        sd: key.lora ? S * key.lora.dim : 0,
        row: key.cuda?.row ?? 0,
        outs: Array.from({ length: S }, (_, s) => ({ s, mix: mix0 + s })),
      });
    }
    case 'wkv': {
      if (key.headSize % 32) throw new UserError(`CUDA: head size ${key.headSize} is not a multiple of 32 (a warp)`);
      const view = { ...common, ...wkvView(key), dim4: key.loraDim % 4 === 0, chunk: key.cuda?.chunk ?? 0 };
      if (key.cuda?.chunk) {
        if (key.batch) throw new Error('the chunked WKV kernel is for one sequence (prefill), not batch');
        return TEMPLATES.wkv_chunked(view);
      }
      return TEMPLATES.wkv(view);
    }
    case 'matvec': case 'matmul': {
      const { printed } = printGroupExprs(CUDA, key.groups, {
        x: (i) => `ld_f32(mem + p.g${i}_x + xi)`, pro: (i, k) => `ld_f32(mem + p.g${i}_pl${k} + xi)`, epi: (i, k) => `ld_f32(mem + p.g${i}_el${k} + yi)`,
      });
      const groups = key.groups.map((g, i) => {
        const { pro, epi } = printed[i];
        const vec = key.cuda?.vec?.[i] ?? defaultVec(g.fmt);
        const lanes = g.lanes ?? 0;
        return {
          g: i, ...fmtFlags(g.fmt), pro, epi, lanes, vec, v8: vec === 8, ebytes: ebytes(g.fmt), eshift: eshift(g.fmt),
          rowsPerBlock: lanes ? WG / lanes : 0, loadBytes: (vec * ebytes(g.fmt)) >> eshift(g.fmt),
          // unrolled loads in flight per thread: ~64 bytes of weights
          unroll: Math.max(1, Math.min(4, Math.floor(64 / ((vec * ebytes(g.fmt)) >> eshift(g.fmt))))),
          branch: i === 0 ? 'if' : '} else if',
        };
      });
      if (key.kind === 'matvec') {
        if (key.groups.some((g) => !g.lanes || 32 % g.lanes)) throw new Error('matvec groups need lanes dividing 32');
        return TEMPLATES.matvec({ ...common, groups });
      }
      // The staging loops of matmul.cu.hbs are written for these sizes (32 tokens × 8 quads of x,
      // 64 rows × 4 octets of w per step, by 256 threads).
      if (MM.BT !== 32 || MM.BO !== 64 || MM.BK !== 32 || WG !== 256) throw new Error('matmul.cu.hbs expects BT 32, BO 64, BK 32');
      return TEMPLATES.matmul({ ...common, groups });
    }
  }
}

const fmtFlags = (fmt: WFormat) => ({
  fmt, f32: fmt === 'f32', half: fmt === 'f16' || fmt === 'bf16', int8: fmt === 'int8', q4: fmt === 'q4_0' || fmt === 'q4_1', q4_0: fmt === 'q4_0',
  f16: fmt === 'f16', bf16: fmt === 'bf16', conv: fmt === 'bf16' ? 'bf16x2' : 'f16x2',
});
const defaultVec = (fmt: WFormat) => (fmt === 'f32' ? 4 : fmt === 'int8' || fmt === 'q4_0' || fmt === 'q4_1' ? 32 : 8);

function title(key: CudaKey): string {
  const chunk = key.kind === 'wkv' ? (key.cuda?.chunk ? `, chunked (${key.cuda.chunk} tokens)` : ', serial') : '';
  return keyTitle(key, 'block') + chunk;
}

/** The CUDA key of a lowered step: the shared key plus CUDA's own choices. */
function cudaKey(step: DispatchStep, program: Program, plan: KernelPlan, opts: CudaEmitOptions): CudaKey {
  const key = step.key;
  if (key.kind === 'matvec') {
    const vec = key.groups.map((g, i) => {
      const ref = step.weights[i] as WeightRef & { kind: 'rows' };
      // f16/bf16 rows start 16-byte aligned only when their stride (cols rounded up to 4) is a multiple of 8.
      return (g.fmt === 'f16' || g.fmt === 'bf16') && Math.ceil(ref.cols / 4) * 4 % 8 ? 4 : defaultVec(g.fmt);
    });
    return { ...key, cuda: { vec } };
  }
  if (key.kind === 'token_shift') {
    const C = step.params.c;
    const bytes = ((key.lora ? 2 : 1) * C + 8 + (key.lora ? key.outs * key.lora.dim : 0)) * 4;
    if (bytes > SMEM_DEFAULT)
      throw new UserError(`CUDA: ${step.kernel} stages rows of ${C} floats in shared memory (${bytes} bytes), above ${SMEM_DEFAULT}`);
    return { ...key, cuda: { row: C } };
  }
  if (key.kind === 'wkv' && !key.batch && program === plan.prefill && program.maxT > 1 && opts.wkv !== 'serial')
    return { ...key, cuda: { chunk: wkvChunk(key.headSize) } };
  return key;
}

/** A grid function of T as data: each dimension a + b · ceil(T / d), checked at every T in 1..maxT. */
export function fitGrid(grid: (T: number) => [number, number, number], maxT: number, kernel: string): Grid {
  const at = Array.from({ length: maxT }, (_, i) => grid(i + 1));
  const fit = (dim: number): GridDim => {
    const v = (T: number) => at[T - 1][dim];
    const ok = (g: GridDim) => at.every((_, i) => g.a + g.b * Math.ceil((i + 1) / g.d) === v(i + 1));
    const constant = { a: v(1), b: 0, d: 1 };
    if (ok(constant)) return constant;
    for (let d = 1; d < maxT; d++) {
      const b = v(d + 1) - v(1);
      const g = { a: v(1) - b, b, d };
      if (b !== 0 && ok(g)) return g;
    }
    throw new Error(`${kernel}: its grid is not of the form a + b·ceil(T/d)`);
  };
  return { x: fit(0), y: fit(1), z: fit(2) };
}

/** The parameter words of a step (packParams' bytes, as u32 words). */
function paramWords(key: ShaderKey, values: Record<string, number>): number[] {
  const n = paramFields(key).length;
  return Array.from(new Uint32Array(packParams(key, values)).subarray(0, n));
}

/** Name and render each key (function i is `k<i>_<kind>`). */
export function renderAll(keys: CudaKey[]): Rendered[] {
  return keys.map((key, i) => {
    const name = `k${i}_${key.kind === 'wkv' && key.cuda?.chunk ? 'wkv_chunked' : key.kind}`;
    return { name, key, sharedBytes: 0, code: renderKernel(key, name) };
  });
}

/** The prelude and the rendered functions as one translation unit. */
export function translationUnit(model: string, rendered: Rendered[]): string {
  return [TEMPLATES.prelude({ model }), ...rendered.map((r) => r.code)].join('');
}

export interface CudaEmitOptions extends EmitOptions {
  /** Compile PTX for these archs with nvcc (when present), e.g. ['sm_80']. */
  ptx?: string[];
  /** Prefill's WKV: 'chunked' (default; chunk-parallel) or 'serial' (the decode kernel over every token), to compare them. */
  wkv?: 'chunked' | 'serial';
}

export function emitCuda(plan: KernelPlan, opts: CudaEmitOptions = {}): CudaArtifact {
  const limits: Limits = { ...CUDA_LIMITS, ...(opts.limits as Partial<Limits> | undefined) };
  const fnIndex = new Map<string, number>();
  const fnKeys: CudaKey[] = [];
  const fnKernels: string[][] = [];
  const weights: CudaWeight[] = [];
  const weightIndex = new Map<string, number>();
  const plans = new Map(plan.weights.map((w) => [w.name, w]));
  const weightOf = (r: WeightRef): number => {
    const id = weightRefId(r);
    let i = weightIndex.get(id);
    if (i === undefined) {
      const bytes = r.kind === 'rows'
        ? matrixBytes(r.fmt, r.rows, r.cols)
        : r.parts.reduce((n, p) => n + plans.get(p)!.shape.reduce((a, b) => a * b, 1) * 4, 0);
      weightIndex.set(id, (i = weights.length));
      weights.push({ ...r, bytes });
    }
    return i;
  };
  const programs: Partial<Record<'decode' | 'prefill' | 'batch', CudaProgram>> = {};
  let layout: CudaArtifact['layout'] | null = null;
  for (const [pname, program] of [['decode', plan.decode], ['prefill', plan.prefill], ['batch', plan.batch]] as const) {
    if (!program) continue;
    const lowered = lowerPlan(plan, program, limits, { device: 'CUDA device' });
    if (!layout) {
      const L = lowered.layout;
      layout = memLayoutJson(L);
    }
    const steps: LaunchStep[] = [];
    for (const s of lowered.steps) {
      if (s.kind === 'host_embed') {
        steps.push({ kind: 'host_embed', kernel: s.kernel, table: weightOf(s.table), out: s.out, cols: s.cols });
        continue;
      }
      const key = cudaKey(s, program, plan, opts);
      const ks = JSON.stringify(key);
      let fn = fnIndex.get(ks);
      if (fn === undefined) {
        fnIndex.set(ks, (fn = fnKeys.length));
        fnKeys.push(key);
        fnKernels.push([]);
      }
      const base = s.kernel.replace(/\[\d+\]$/, '');
      if (!fnKernels[fn].includes(base)) fnKernels[fn].push(base);
      steps.push({
        kind: 'launch', kernel: s.kernel, fn,
        params: paramWords(s.key, s.params),
        weights: s.weights.map(weightOf),
        grid: fitGrid(s.grid, program.maxT, s.kernel),
      });
    }
    const out = lowered.output;
    programs[pname] = {
      maxT: program.maxT,
      steps,
      offsets: Object.fromEntries(lowered.offsets),
      output: out ? { offset: lowered.offsets.get(out.name)!, cols: out.shape[out.shape.length - 1] as number, rows: out.shape.length > 1 ? out.shape[0] : 1 } : null,
    };
  }
  const rendered = renderAll(fnKeys);
  const functions: CudaFunction[] = rendered.map((r) => {
    const fields = paramFields(r.key);
    return {
      name: r.name, key: JSON.stringify(r.key), paramBytes: Math.max(4, fields.length * 4), paramFields: fields,
      weightArgs: weightBindings(r.key), block: blockOf(r.key), sharedBytes: r.sharedBytes,
    };
  });
  const cu = translationUnit(plan.model, rendered);
  const artifact: CudaArtifact = {
    format: 'rwkvc-cuda', version: 1, plan, cu, functions,
    programs: programs as CudaArtifact['programs'], layout: layout!, weights,
  };
  if (opts.ptx?.length) {
    // Node-only and optional: only when asked for (rwkvc compile --target cuda).
    const ptx = compilePtxSync(cu, opts.ptx);
    if (ptx) artifact.ptx = ptx;
  }
  return artifact;
}


/** Every kernel function as text, with the plan kernels it serves. */
export function printCuda(a: CudaArtifact, plan: KernelPlan): KernelSource[] {
  const byName = new Map<string, Kernel>();
  for (const p of planPrograms(plan)) for (const k of p.kernels) byName.set(k.name, k);
  const kernelsOf = a.functions.map(() => [] as string[]);
  for (const prog of [a.programs.decode, a.programs.prefill, a.programs.batch])
    for (const s of prog?.steps ?? []) {
      if (s.kind !== 'launch') continue;
      const base = s.kernel.replace(/\[\d+\]$/, '');
      if (!kernelsOf[s.fn].includes(base)) kernelsOf[s.fn].push(base);
    }
  // Split the translation unit at each function's header comment.
  return a.functions.map((f, i) => {
    const start = a.cu.indexOf(`// ==== ${f.name}:`);
    const next = i + 1 < a.functions.length ? a.cu.indexOf(`// ==== ${a.functions[i + 1].name}:`) : a.cu.length;
    const code = a.cu.slice(start, next).trim();
    const src = [...new Set(kernelsOf[i].flatMap((k) => byName.get(k)?.src ?? []))];
    return { kernels: kernelsOf[i], src, title: code.split('\n')[0].replace(/^\/\/ ==== /, ''), code };
  });
}

export const codegen: TargetCodegen<CudaArtifact> = {
  emit: (plan, opts) => emitCuda(plan, opts as CudaEmitOptions),
  print: printCuda,
  files: artifactFiles,
};
