/**
 * Limits named before they bite: what a compiled plan takes on a target (weight, state and activation
 * bytes, from the target's own layout code, so every format's real bytes per weight count, block scales
 * and padding included) against the limit that target has: wasm32's 4 GiB of linear memory, WebGPU's
 * per-buffer and per-binding limits (a matrix over one binding is split by rows, targets/gpu/lower.ts; the
 * f32 `mem` buffer and each piece must fit) and a device's memory when it is known (a WebGPU adapter does
 * not say; CUDA's cuMemGetInfo does, and a caller may give either). `rwkvc inspect` prints a table of
 * these; `load` checks before it allocates anything and refuses in one line naming the number, the
 * limit and the formats that would fit.
 */
import { availableParallelism } from 'node:os';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { UserError } from '../kernels/errors.ts';
import { memoryBytes, PAGE, type WasmLayout } from '../targets/wasm/layout.ts';
import { DEFAULT_LIMITS, lowerPlan, weightRefId, type Limits, type WeightRef } from '../targets/gpu/lower.ts';
import { matrixBytes } from '../targets/gpu/formats.ts';
// The WASM layout code is imported when a wasm footprint is asked for: it brings the WAT assembler (wabt),
// which `rwkvc --help` and every non-wasm command should not pay for at start-up.
import { CUDA_LIMITS } from '../targets/cuda/limits.ts';

/** Every weight format (the type check below fails when kernels/plan.ts gains one that is not listed). */
export const ALL_FORMATS = ['f32', 'bf16', 'f16', 'int8', 'q4_0', 'q4_1'] as const satisfies readonly WeightDType[];
const everyFormatListed: Exclude<WeightDType, (typeof ALL_FORMATS)[number]> extends never ? true : never = true;
void everyFormatListed;

/** wasm32: 65536 pages of 64 KiB. */
export const WASM32_MAX_BYTES = 65536 * PAGE;

export interface Budget {
  /** WASM worker threads (each has its scratch area); default: this machine's cores. */
  threads?: number;
  /** A WebGPU device's limits; default WebGPU's defaults (what any adapter grants). */
  gpuLimits?: Partial<Limits>;
  /** A GPU's memory in bytes, when known (WebGPU adapters do not report it; CUDA does). */
  deviceMemory?: number;
}

export interface Footprint {
  target: string;
  weights: WeightDType;
  /** Bytes of weights in the target's storage (packed, padded, with block scales). */
  weightBytes: number;
  /** The recurrent state (and a batch program's state rows). */
  stateBytes: number;
  /** Everything else the target allocates: tokens, logits, activations, kernel and thread scratch. */
  arenaBytes: number;
  /** Bytes kept in host memory beside the device (an embedding table gathered on the host). */
  hostBytes: number;
  /** weight + state + arena: what counts against `limit`. */
  totalBytes: number;
  /** The limit it is held against, in words and bytes (absent when nothing is known to bound it). */
  limit?: { name: string; bytes: number };
  fits: boolean;
  /** Why it does not fit (or could not be laid out at all): one line. */
  why?: string;
}

export const gib = (b: number): string => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);

/** Targets this module sizes. */
export const SIZED_TARGETS = ['wasm', 'wgsl', 'cuda'] as const;

/** What `plan` takes on `target`, and whether that fits `budget`. */
export async function footprint(target: string, plan: KernelPlan, budget: Budget = {}): Promise<Footprint> {
  const weights = planFormat(plan);
  const base = { target, weights, hostBytes: 0 };
  try {
    if (target === 'wasm') return wasmFootprint(plan, budget, base, (await import('../targets/wasm/build.ts')).wasmLayout);
    if (target === 'wgsl' || target === 'cuda') return gpuFootprint(target, plan, budget, base);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!;
    return { ...base, weightBytes: NaN, stateBytes: NaN, arenaBytes: NaN, totalBytes: NaN, fits: false, why: msg };
  }
  return { ...base, weightBytes: NaN, stateBytes: NaN, arenaBytes: NaN, totalBytes: NaN, fits: true, why: `target ${target} is not sized` };
}

/** The format the plan's big matrices take (its most common non-f32 dtype; f32 when all are). */
export function planFormat(plan: KernelPlan): WeightDType {
  const n = new Map<WeightDType, number>();
  for (const w of plan.weights) if (w.dtype !== 'f32') n.set(w.dtype, (n.get(w.dtype) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'f32';
}

type Base = { target: string; weights: WeightDType; hostBytes: number };

function wasmFootprint(plan: KernelPlan, budget: Budget, base: Base, wasmLayout: (plan: KernelPlan) => WasmLayout): Footprint {
  const threads = budget.threads ?? availableParallelism();
  const l = wasmLayout(plan);
  const weightBytes = l.weights.reduce((n, w) => n + w.bytes, 0);
  if (!Number.isFinite(weightBytes)) throw new Error(`the wasm target cannot store ${base.weights} weights yet`);
  const stateBytes = [...l.state, ...(l.batchState ?? [])].reduce((n, b) => n + b.elems * 4, 0);
  const totalBytes = memoryBytes(l, threads);
  const limit = { name: 'wasm32 linear memory (4 GiB)', bytes: WASM32_MAX_BYTES };
  const fits = totalBytes <= limit.bytes;
  return {
    ...base, weightBytes, stateBytes, arenaBytes: totalBytes - weightBytes - stateBytes, totalBytes, limit, fits,
    ...(fits ? {} : { why: `needs ${gib(totalBytes)} of linear memory (weights ${gib(weightBytes)}, ${threads} thread${threads === 1 ? '' : 's'}); wasm32 allows 4 GiB` }),
  };
}

function gpuFootprint(target: 'wgsl' | 'cuda', plan: KernelPlan, budget: Budget, base: Base): Footprint {
  const limits: Limits = { ...(target === 'cuda' ? CUDA_LIMITS : DEFAULT_LIMITS), ...budget.gpuLimits };
  const dev = target === 'cuda' ? 'CUDA device' : 'WebGPU device';
  const refs = new Map<string, WeightRef>();
  const host = new Map<string, WeightRef>();
  // memElems: tokens, logits, activations and state in one address space; bufferElems: its largest buffer
  // (CUDA keeps it whole; WebGPU gives mem and each state part a buffer of its own, targets/gpu/lower.ts)
  let memElems = 0, stateElems = 0, bufferElems = 0;
  for (const p of plan.batch ? [plan.decode, plan.prefill, plan.batch] : [plan.decode, plan.prefill]) {
    const lowered = lowerPlan(plan, p, limits, { device: dev });
    memElems = lowered.layout.elems;
    stateElems = lowered.layout.stateElems + lowered.layout.batchStateElems;
    bufferElems = Math.max(bufferElems, target === 'cuda' ? memElems
      : Math.max(lowered.layout.memElems, ...lowered.layout.parts.map((p) => p.elems)));
    for (const s of lowered.steps) {
      if (s.kind === 'dispatch') for (const w of s.weights) refs.set(weightRefId(w), w);
      else if (s.kind === 'host_embed') host.set(weightRefId(s.table), s.table);
    }
  }
  const decls = new Map(plan.weights.map((d) => [d.name, d]));
  const bytesOf = (r: WeightRef) => (r.kind === 'rows' ? matrixBytes(r.fmt, r.rows, r.cols)
    : r.parts.reduce((n, p) => n + decls.get(p)!.shape.reduce((a, b) => a * b, 1) * 4, 0));
  const sizes = [...refs.values()].map(bytesOf);
  if (sizes.some((b) => !Number.isFinite(b))) throw new Error(`the ${target} target cannot store ${base.weights} weights yet`);
  const weightBytes = sizes.reduce((a, b) => a + b, 0);
  const hostBytes = [...host.values()].reduce((n, r) => n + bytesOf(r), 0);
  const memBytes = memElems * 4, stateBytes = stateElems * 4;
  const totalBytes = weightBytes + memBytes;
  const biggest = Math.max(bufferElems * 4, ...sizes);
  if (biggest > limits.maxBufferSize)
    return { ...base, hostBytes, weightBytes, stateBytes, arenaBytes: memBytes - stateBytes, totalBytes, fits: false, limit: { name: 'maxBufferSize', bytes: limits.maxBufferSize },
      why: `a ${gib(biggest)} buffer is over the ${dev}'s maxBufferSize of ${gib(limits.maxBufferSize)}` };
  const mem = budget.deviceMemory;
  const limit = mem ? { name: `${dev} memory`, bytes: mem } : undefined;
  const fits = !mem || totalBytes <= mem;
  return {
    ...base, hostBytes, weightBytes, stateBytes, arenaBytes: memBytes - stateBytes, totalBytes, ...(limit ? { limit } : {}), fits,
    ...(fits ? {} : { why: `needs ${gib(totalBytes)} of ${dev} memory (weights ${gib(weightBytes)}); the device has ${gib(mem!)}` }),
  };
}

/**
 * Refuse, before anything is allocated, a plan that cannot fit: ONE line with what it needs, the limit, and
 * the formats that would fit (`others` sizes the same model in another format; called only on refusal).
 */
export async function checkFits(target: string, plan: KernelPlan, budget: Budget, others: { formats: readonly WeightDType[]; plan: (f: WeightDType) => KernelPlan }): Promise<Footprint> {
  const fp = await footprint(target, plan, budget);
  if (fp.fits) return fp;
  const c = plan.config;
  const alt = (await Promise.all(others.formats.filter((f) => f !== fp.weights).map((f) => footprint(target, others.plan(f), budget)))).filter((x) => x.fits);
  const hint = alt.length
    ? `formats that fit: ${alt.map((x) => `--weights ${x.weights} (${gib(x.totalBytes)})`).join(', ')}`
    : target === 'wasm' ? 'no weight format fits: a GPU target (--target wgsl or cuda)' : 'no weight format fits this device';
  throw new UserError(`${plan.model} (${c.nLayer} layers × ${c.nEmbd}) in ${fp.weights} on ${target}: ${fp.why}; ${hint}`);
}

/** A target × format table of footprints (rwkvc inspect --fits). */
export function fitsTable(rows: Footprint[]): string {
  const head = ['target', 'weights', 'weight bytes', 'state', 'arena', 'total', 'limit', 'fits'];
  const cells = rows.map((f) => [
    f.target, f.weights, gib(f.weightBytes), gib(f.stateBytes), gib(f.arenaBytes), gib(f.totalBytes) + (f.hostBytes ? ` (+${gib(f.hostBytes)} host)` : ''),
    f.limit ? `${f.limit.name}` : 'device memory unknown', f.fits ? 'yes' : `no: ${f.why}`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(i === r.length - 1 ? 0 : w[i]!)).join(' | ')} |`;
  return [line(head), `|${w.map((n, i) => '-'.repeat(i === w.length - 1 ? 5 : n + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}
