/**
 * Shader keys: everything a WGSL shader's text depends on, as plain JSON. codegen.ts renders a key to
 * text and nothing else; per-dispatch values (buffer offsets, widths, eps, group boundaries) travel in
 * the `Params` uniform and the token count in the `Run` uniform, so one pipeline serves every layer
 * (and both programs where the kernel is the same).
 *
 * Bindings, the same for every shader:
 *   0  mem     storage read_write  array<f32>: tokens | logits | activation arena
 *   1  p       uniform             Params (fields below, in order, 4 bytes each)
 *   2  rt      uniform             Run { T }
 *   3… w0, w1…  storage read        weights (formats.ts), `weightBindings(key)` of them
 *   then st    storage read_write  array<f32>: the state part the kernel's state lies in, where
 *                                  usesState(key) (token_shift, wkv); state offsets minus p.st0 index it
 */
import type { Expr } from '../../kernels/plan.ts';
import type { WFormat } from './formats.ts';
import { isBlockFormat } from '../../kernels/dtype.ts';

/** Threads of every 1-D workgroup except wkv's (one per channel of a head). */
export const WG = 256;
/** token_shift: inputs of the LoRA's first matrix staged in workgroup memory per pass. */
export const TS_CHUNK = 1024;
/** Tiled matmul: tokens × outputs per workgroup, inputs per step. */
export const MM = { BT: 32, BO: 64, BK: 32 } as const;
/**
 * Matvec: invocations per output row (a power of two, 4..32), so that each streams at least 8 chunks of
 * 4 inputs: short rows (LoRA, small models) pack more rows into a workgroup instead of idling lanes.
 * A workgroup computes WG / lanes rows.
 */
export function matvecLanes(inputs: number): number {
  let lanes = 4;
  while (lanes < 32 && lanes * 2 * 32 <= inputs) lanes *= 2;
  return lanes;
}

export interface LinearGroupKey {
  fmt: WFormat;
  /** matvec only: invocations per output row (matvecLanes). */
  lanes?: number;
  /** Normalized (load buffers replaced by '#k' slots); absent = identity. */
  prologue?: Expr;
  epilogue?: Expr;
}

export type ShaderKey =
  | { kind: 'embed'; fmt: WFormat }
  /** rms: RMSNorm (no mean, no bias: the pack is [w]). */
  | { kind: 'layernorm'; rms?: boolean }
  /** batch: each row is its own sequence with its own shift-state row (plan.ts). */
  | { kind: 'token_shift'; ln: boolean; rms?: boolean; outs: number; lora: { dim: number } | null; batch: boolean }
  | {
      kind: 'wkv'; headSize: number; decay: 'lora' | 'direct'; loraDim: number; u: boolean;
      order: 'read_first' | 'update_first'; kDecayScale: boolean; norm: boolean; gate: boolean;
      /** each row is its own sequence with its own state [B, H, N, N] */
      batch: boolean;
    }
  /** matvec: decode and rows 'last'; matmul: tiled, for prefill. */
  | { kind: 'matvec' | 'matmul'; groups: LinearGroupKey[] };

export interface ParamField { name: string; type: 'u32' | 'f32' }

const u = (name: string): ParamField => ({ name, type: 'u32' });
const f = (name: string): ParamField => ({ name, type: 'f32' });

export function keyString(key: ShaderKey): string {
  return JSON.stringify(key);
}

/** Count the distinct load slots of a normalized expression. */
function loadSlots(e: Expr | undefined): number {
  if (!e) return 0;
  if (e.op === 'load') return Number(e.buf.slice(1)) + 1;
  return 'args' in e ? Math.max(0, ...e.args.map(loadSlots)) : 0;
}

/** The Params uniform's fields, in order (all offsets and sizes in f32 elements, int8/q4 `sc` in words). */
export function paramFields(key: ShaderKey): ParamField[] {
  switch (key.kind) {
    case 'embed':
      return [u('tok'), u('out'), u('c'), u('stride'), ...(key.fmt === 'int8' ? [u('w0_sc')] : [])];
    case 'layernorm':
      return [u('x'), u('out'), u('c'), u('last'), f('eps')];
    case 'token_shift':
      return [u('x'), u('c'), u('shift_in'), u('shift_out'), ...Array.from({ length: key.outs }, (_, s) => u(`out${s}`)), f('eps'), u('st0')];
    case 'wkv':
      return [
        u('r'), u('k'), u('v'), u('state'), u('out'), u('c'),
        u(key.decay === 'lora' ? 'z' : 'w'), ...(key.gate ? [u('gate')] : []), f('r_scale'), f('eps'), u('st0'),
      ];
    case 'matvec': case 'matmul':
      return [u('last'), ...key.groups.flatMap((g, i) => [
        u(`g${i}_x`), u(`g${i}_y`), u(`g${i}_i`), u(`g${i}_o`), u(`g${i}_stride`), u(`g${i}_ys`), u(`g${i}_ob`),
        u(`g${i}_start`), u(`g${i}_end`), ...(isBlockFormat(g.fmt) ? [u(`w${i}_sc`)] : []),
        ...Array.from({ length: loadSlots(g.prologue) }, (_, k) => u(`g${i}_pl${k}`)),
        ...Array.from({ length: loadSlots(g.epilogue) }, (_, k) => u(`g${i}_el${k}`)),
      ])];
  }
}

/** Number of weight bindings (3, 4, …) a shader declares. */
export function weightBindings(key: ShaderKey): number {
  switch (key.kind) {
    case 'embed': return 1;
    case 'layernorm': return 1; // [w, b] packed
    case 'token_shift': return key.lora ? 3 : 1; // vectors packed; LoRA A; LoRA B
    case 'wkv': return key.decay === 'lora' ? 2 : 1; // vectors packed; decay LoRA B
    case 'matvec': case 'matmul': return key.groups.length;
  }
}

/** Does the shader bind a state part (after its weights)? */
export const usesState = (key: ShaderKey): boolean => key.kind === 'token_shift' || key.kind === 'wkv';

/** Storage bindings a shader declares: mem, its weights, its state part. */
export const storageBindings = (key: ShaderKey): number => 1 + weightBindings(key) + (usesState(key) ? 1 : 0);

/** Bytes of workgroup memory a shader declares (checked against the device limit at load). */
export function workgroupBytes(key: ShaderKey): number {
  switch (key.kind) {
    case 'embed': return 0;
    case 'layernorm': return WG * 4;
    case 'token_shift': return (WG + (key.lora ? TS_CHUNK + key.outs * key.lora.dim : 0)) * 4;
    case 'wkv': return 5 * key.headSize * 4;
    case 'matvec': return WG * 4;
    case 'matmul': return (MM.BK * MM.BT + MM.BK * MM.BO) * 4;
  }
}

/** Invocations per workgroup. */
export function invocations(key: ShaderKey): number {
  return key.kind === 'wkv' ? key.headSize : WG;
}

/** The Params uniform's bytes for `values` (every field must be present). */
export function packParams(key: ShaderKey, values: Record<string, number>): ArrayBuffer {
  const fields = paramFields(key);
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(fields.length / 4) * 16));
  const dv = new DataView(buf);
  fields.forEach((fl, i) => {
    const v = values[fl.name];
    if (v === undefined || !Number.isFinite(v)) throw new Error(`shader parameter ${fl.name} is ${v}`);
    if (fl.type === 'f32') dv.setFloat32(i * 4, v, true);
    else {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`shader parameter ${fl.name} = ${v} is not a u32`);
      dv.setUint32(i * 4, v, true);
    }
  });
  return buf;
}
