/**
 * Questions every consumer of a KernelPlan asks: which programs it holds, how many elements a buffer
 * has at T tokens, which buffers and weights a kernel touches, whether a weight's rows suit its format.
 */
import { INT8_BLOCK, isBlockFormat } from './dtype.ts';
import { UserError } from './errors.ts';
import { exprLoads } from './expr.ts';
import type { BufferDecl, Kernel, KernelPlan, Program, WeightDType } from './plan.ts';

/** The programs a plan holds (the batch program only when it was compiled with one). */
export function planPrograms(plan: KernelPlan): Program[] {
  return [plan.decode, plan.prefill, ...(plan.batch ? [plan.batch] : [])];
}

/** Elements of a buffer when its 'T' axis has T rows. */
export function elems(b: BufferDecl, T: number): number {
  return b.shape.reduce<number>((n, d) => n * (d === 'T' ? T : d), 1);
}

/** Every buffer name a kernel reads or writes, in order. */
export function kernelBuffers(k: Kernel): string[] {
  switch (k.kind) {
    case 'embed': return [k.tokens, k.out];
    case 'layernorm': return [k.x, k.out];
    case 'token_shift': return [k.x, k.shiftIn, k.shiftOut, ...k.outs];
    case 'linear': return k.groups.flatMap((g) => [g.x, ...exprLoads(g.prologue), ...exprLoads(g.epilogue), g.y]);
    case 'wkv': return [k.r, k.k, k.v, ...(k.decay.kind === 'lora' ? [k.decay.z] : [k.decay.w]), ...(k.gate ? [k.gate] : []), k.state, k.out];
  }
}


/** int8 and q4 storage block each row by INT8_BLOCK (= Q4_BLOCK) inputs: a row of another length cannot take it. */
export function checkRowFormat(weight: string, dtype: WeightDType, cols: number): void {
  if (isBlockFormat(dtype) && cols % INT8_BLOCK)
    throw new UserError(`weight ${weight}: ${dtype} needs rows that are a multiple of ${INT8_BLOCK} long, got ${cols}`);
}
