/**
 * The pass pipeline: an ordered list of named passes, each a set of rules run by the one rewrite
 * driver. The IR can be printed before/after any pass, passes timed, and the verifier run after each.
 */
import type { WeightDType } from '../kernels/plan.ts';
import type { Graph } from '../ir/node.ts';
import { printGraph } from '../ir/print.ts';
import { verifyGraph } from '../ir/verify.ts';
import { UserError } from '../kernels/errors.ts';
import { rewrite, type Rule } from './rewrite.ts';
import { canonicalize, constantFold } from './passes/canonicalize.ts';
import { foldLn0 } from './passes/fold-ln0.ts';
import { foldKvRepeat } from './passes/fold-kv-repeat.ts';
import { fuseTokenShift } from './passes/fuse-token-shift.ts';
import { fuseWkv } from './passes/fuse-wkv.ts';
import { fuseEpilogues } from './passes/fuse-epilogues.ts';
import { fuseHorizontal } from './passes/fuse-horizontal.ts';
import { logitsLast } from './passes/logits-rows.ts';
import { weightStorage } from './passes/weight-storage.ts';

export interface CompileOptions {
  /** Storage dtype of the big matrices. */
  weights: WeightDType;
  /** 'last': the head computes only the last position's logits (generation); 'all': every position. */
  logits: 'all' | 'last';
}

export interface Pass {
  name: string;
  summary: string;
  rules(g: Graph, o: CompileOptions): Rule[];
}

export const PASSES: Pass[] = [
  { name: 'canonicalize', summary: 'activations first in commutative ops; drop x+0, x·1', rules: () => [canonicalize] },
  { name: 'constant-fold', summary: 'ops on constants become constants', rules: () => [constantFold] },
  { name: 'cse-dce', summary: 'merge identical nodes, drop unused ones', rules: () => [] },
  { name: 'fold-ln0', summary: 'LayerNorm of the embedding folded into the table (f32, at load)', rules: () => [foldLn0] },
  { name: 'fold-kv-repeat', summary: 'repeat(W·x) of grouped k/v heads → W\'·x, rows of W repeated (at load)', rules: () => [foldKvRepeat] },
  { name: 'fuse-token-shift', summary: 'LN + time shift + lerps + ddlerp LoRA → token_shift', rules: () => [fuseTokenShift] },
  { name: 'fuse-wkv', summary: 'decay + recurrence + GroupNorm + gate → wkv_fused', rules: () => [fuseWkv] },
  { name: 'fuse-epilogues', summary: 'matmuls → linear with fused prologue/epilogue', rules: (g) => [fuseEpilogues(g)] },
  { name: 'fuse-horizontal', summary: 'independent linears at one level → one multi-group launch', rules: (g) => [fuseHorizontal(g)] },
  { name: 'logits-last', summary: 'head computes only the rows whose logits are asked for', rules: (g, o) => (o.logits === 'last' ? [logitsLast(g)] : []) },
  { name: 'weight-storage', summary: 'storage dtype per weight', rules: (g, o) => [weightStorage(g, o.weights)] },
];

export interface PipelineHooks {
  printBefore?: string[]; // pass names or 'all'
  printAfter?: string[];
  timePasses?: boolean;
  verifyEach?: boolean;
  log?: (s: string) => void;
}

export interface PassTiming { name: string; ms: number; nodesBefore: number; nodesAfter: number }

export function runPipeline(g: Graph, o: CompileOptions, hooks: PipelineHooks = {}): { graph: Graph; timings: PassTiming[] } {
  const log = hooks.log ?? ((s) => process.stdout.write(s + '\n'));
  const wants = (list: string[] | undefined, name: string) => !!list && (list.includes('all') || list.includes(name));
  for (const l of [...(hooks.printAfter ?? []), ...(hooks.printBefore ?? [])])
    if (l !== 'all' && !PASSES.some((p) => p.name === l))
      throw new UserError(`--print-after/--print-before: no pass named '${l}' (passes: ${PASSES.map((p) => p.name).join(', ')})`);
  const timings: PassTiming[] = [];
  verifyGraph(g, 'the DSL');
  for (const p of PASSES) {
    if (wants(hooks.printBefore, p.name)) log(`// ----- IR before ${p.name} -----\n${printGraph(g)}`);
    const t0 = performance.now();
    const next = rewrite(g, p.rules(g, o));
    timings.push({ name: p.name, ms: performance.now() - t0, nodesBefore: g.nodes.length, nodesAfter: next.nodes.length });
    g = next;
    if (hooks.verifyEach) verifyGraph(g, `pass ${p.name}`, 'compiler');
    if (wants(hooks.printAfter, p.name)) log(`// ----- IR after ${p.name} -----\n${printGraph(g)}`);
  }
  if (hooks.timePasses)
    for (const t of timings) log(`  ${t.name.padEnd(18)} ${t.ms.toFixed(2).padStart(8)} ms   ${t.nodesBefore} → ${t.nodesAfter} nodes`);
  return { graph: g, timings };
}
