/**
 * The pass pipeline: an ordered list of named passes, each a set of rules run by the one rewrite
 * driver. The IR can be printed before/after any pass, passes timed, and the verifier run after each.
 */
import type { WeightDType } from '../kernels/plan.ts';
import type { Graph } from '../ir/node.ts';
import { printGraph } from '../ir/print.ts';
import { verifyGraph } from '../ir/verify.ts';
import { UserError } from '../kernels/errors.ts';
import { hasDuplicatesOrDead, rewrite, type Rule } from './rewrite.ts';
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
  /**
   * False when none of the pass's rules can fire on g (a cheap scan), so the graph is not rebuilt for
   * nothing: each rebuild of a 64-layer graph costs ~0.1 s.
   */
  applies?(g: Graph): boolean;
}

const has = (g: Graph, ...ops: string[]) => g.nodes.some((n) => ops.includes(n.op));

export const PASSES: Pass[] = [
  { name: 'canonicalize', summary: 'activations first in commutative ops; drop x+0, x·1', rules: () => [canonicalize],
    applies: (g) => g.nodes.some((n) => {
      if (n.op !== 'binary') return false;
      const [a, b] = n.inputs.map((r) => g.nodes[r.id]), constLike = (x: (typeof a)) => x.op === 'const' || x.op === 'weight';
      return (n.attrs.fn !== 'sub' && constLike(a) && !constLike(b)) || [a, b].some((x) => x.op === 'const' && (x.attrs.value === 0 || x.attrs.value === 1));
    }) },
  { name: 'constant-fold', summary: 'ops on constants become constants', rules: () => [constantFold],
    applies: (g) => g.nodes.some((n) => (n.op === 'unary' || n.op === 'binary') && n.inputs.every((r) => g.nodes[r.id].op === 'const')) },
  { name: 'cse-dce', summary: 'merge identical nodes, drop unused ones', rules: () => [], applies: hasDuplicatesOrDead },
  { name: 'fold-ln0', summary: 'LayerNorm of the embedding folded into the table (f32, at load)', rules: () => [foldLn0],
    applies: (g) => g.nodes.some((n) => n.op === 'layernorm' && g.nodes[n.inputs[0].id].op === 'embed') },
  { name: 'fold-kv-repeat', summary: 'repeat(W·x) of grouped k/v heads → W\'·x, rows of W repeated (at load)', rules: () => [foldKvRepeat], applies: (g) => has(g, 'repeat') },
  { name: 'fuse-token-shift', summary: 'LN + time shift + lerps + ddlerp LoRA → token_shift', rules: () => [fuseTokenShift], applies: (g) => has(g, 'shift') },
  { name: 'fuse-wkv', summary: 'decay + recurrence + GroupNorm + gate → wkv_fused', rules: () => [fuseWkv], applies: (g) => has(g, 'wkv') },
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
  /** Called as each phase of compileGraph ends ('passes', 'lower → plan'): the CLI's --time. */
  onPhase?: (name: string) => void;
}

/** ms: wall time; cpuMs: the process's CPU time (user + sys) meanwhile, the number to compare on a loaded machine. */
export interface PassTiming { name: string; ms: number; cpuMs: number; nodesBefore: number; nodesAfter: number }

/** NaN where there is no process (the compiler in a browser). */
const cpuMs = () => {
  const u = globalThis.process?.cpuUsage?.();
  return u ? (u.user + u.system) / 1000 : NaN;
};

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
    const t0 = performance.now(), c0 = cpuMs();
    const next = !p.applies || p.applies(g) ? rewrite(g, p.rules(g, o)) : g;
    timings.push({ name: p.name, ms: performance.now() - t0, cpuMs: cpuMs() - c0, nodesBefore: g.nodes.length, nodesAfter: next.nodes.length });
    g = next;
    if (hooks.verifyEach) verifyGraph(g, `pass ${p.name}`, 'compiler');
    if (wants(hooks.printAfter, p.name)) log(`// ----- IR after ${p.name} -----\n${printGraph(g)}`);
  }
  if (hooks.timePasses)
    for (const t of timings)
      log(`  ${t.name.padEnd(18)} ${t.ms.toFixed(2).padStart(8)} ms ${t.cpuMs.toFixed(1).padStart(7)} ms CPU   ${t.nodesBefore} → ${t.nodesAfter} nodes`);
  return { graph: g, timings };
}
