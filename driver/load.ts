/**
 * Loading models in Node, with the compiler (the driver layer): build the graph from a DSL file, compile it, load the
 * target, and (`load`) wrap it in a Session with a tokenizer. This is the one place `--target`
 * becomes a running model. A generated package does the same from a precompiled artifact, without
 * the compiler, through runtime/session.ts alone.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Graph } from '../ir/node.ts';
import { familyOf, type ModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { initialState, openModel, type OpenModel } from '../runtime/model.ts';
import type { TargetModel, WeightProvider } from '../targets/backend.ts';
import { getTarget } from '../targets/registry.ts';
import { compileGraph } from '../compiler/index.ts';
import { checkpointProvider } from '../runtime/checkpoint/provider.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { Session } from '../runtime/session.ts';
import { loadWorldTokenizer, type WorldTokenizer } from '../runtime/tokenizer.ts';
import { loadGraph, loadPlan } from './targets.ts';
import { ALL_FORMATS, checkFits } from './limits.ts';
import { verifyGraph } from '../ir/verify.ts';

export interface TargetChoice {
  dsl: string;
  weights: string;
  threads?: number;
  logits: 'all' | 'last';
  /** Also compile a batch program for up to this many sequences decoded together. */
  batch?: number;
  /** Progress while compiling and loading weights (phase, done, total). */
  onProgress?: (phase: string, done: number, total: number) => void;
}

/**
 * The most worker threads a load accepts: 4× this machine's cores (at least 8, at most 256). More
 * threads than that only add memory (each has its scratch) and barrier waits; 256 took 2 GB.
 */
export const MAX_THREADS = Math.max(8, Math.min(256, 4 * availableParallelism()));

/** A thread count (`--threads`, LoadOptions.threads): a whole number in 1..MAX_THREADS, or absent. */
export function checkThreads(n: unknown): void {
  if (n === undefined) return;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_THREADS)
    throw new UserError(`threads: expected a whole number in 1..${MAX_THREADS} (4× the ${availableParallelism()} cores here, at least 8), got ${String(n).slice(0, 40)}`);
}

/** Does the nearest package.json above `dir` say "type": "module" (so tsx loads .ts there as ESM)? */
function isEsmFolder(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p)) {
      try { return JSON.parse(readFileSync(p, 'utf8')).type === 'module'; } catch { return false; }
    }
    if (dirname(d) === d) return false;
  }
}

/**
 * Import a model description. From the sources (tsx, vitest) a .ts file imports like any module; the built
 * package runs on plain Node, so a TypeScript file goes through tsx's scoped loader, imported only then
 * (the default DSL is shipped compiled, as .js).
 */
async function importDsl(dsl: string): Promise<{ default?: unknown }> {
  const url = pathToFileURL(resolve(dsl)).href;
  if (!/\.[mc]?ts$/.test(dsl) || import.meta.url.endsWith('.ts')) return import(url);
  const built = builtExample(resolve(dsl));
  if (built) return import(pathToFileURL(built).href);
  let tsx: typeof import('tsx/esm/api');
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    throw new UserError(`${dsl}: a TypeScript model description needs the tsx package (npm install tsx), or compile it to .js first`);
  }
  return tsx.tsImport(url, import.meta.url);
}

/**
 * A shipped description's source (examples/finch.ts, examples/qrwkv6.ts in a checkout) run from dist/: its
 * compiled .js, not tsx (a third of a big model's compile time). Its source map, on while the graph is built
 * (buildGraph), makes the DSL lines the IR records name the .ts lines, as under tsx. A build older than the
 * source is not used.
 */
function builtExample(ts: string): string | undefined {
  const examples = resolve(import.meta.dirname, '..', '..', 'examples');
  if (dirname(ts) !== examples || !/^(finch|qrwkv6)\.ts$/.test(basename(ts))) return undefined;
  const js = resolve(import.meta.dirname, '..', 'examples', basename(ts).replace(/\.ts$/, '.js'));
  if (!existsSync(`${js}.map`) || statSync(js).mtimeMs < statSync(ts).mtimeMs) return undefined;
  return js;
}

/** Load a DSL file and build its graph for `config`. */
export async function buildGraph(dsl: string, config: ModelConfig): Promise<Graph> {
  // the default description is the config's family's (a QRWKV6 checkpoint gets examples/qrwkv6.ts)
  if (dsl === DEFAULT_DSL && familyOf(config) === 'qrwkv6') dsl = QRWKV6_DSL;
  if (!existsSync(dsl)) throw new UserError(`${dsl}: no such model description`);
  if (dsl.endsWith('.ts') && !isEsmFolder(dirname(resolve(dsl))))
    throw new UserError(`${dsl}: a model description is an ES module: name it .mts, or put it beside a package.json with "type": "module"`);
  // source maps only while the description runs: on for every module loaded, they would cost each its map
  const maps = !process.sourceMapsEnabled && import.meta.url.endsWith('.js') && !!builtExample(resolve(dsl));
  if (maps) process.setSourceMapsEnabled(true);
  try {
    return await describeGraph(dsl, config);
  } finally {
    if (maps) process.setSourceMapsEnabled(false);
  }
}

async function describeGraph(dsl: string, config: ModelConfig): Promise<Graph> {
  let mod: { default?: unknown };
  try {
    mod = await importDsl(dsl);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${dsl}: cannot load the model description: ${(e as Error).message.split('\n')[0]}`);
  }
  const fn = mod.default;
  if (typeof fn !== 'function') throw new UserError(`${dsl}: the default export must be a function (config) => Graph`);
  let g: unknown;
  try {
    g = await (fn as (c: ModelConfig) => Graph | Promise<Graph>)(config);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${dsl}: ${e.message}`, e.exitCode);
    throw new UserError(`${dsl}: the model description threw: ${clip(errorLine(e))}`);
  }
  if (!looksLikeGraph(g)) throw new UserError(`${dsl}: the default export returned ${describe(g)}, not a graph (build one with the DSL: (config) => Graph)`);
  try {
    verifyGraph(g);
  } catch (e) {
    throw new UserError(`${dsl}: ${clip(e instanceof UserError ? e.message : `the graph it returned is malformed: ${errorLine(e)}`)}`);
  }
  return g;
}

/** The outline of a Graph (what the verifier then checks node by node). */
function looksLikeGraph(g: unknown): g is Graph {
  if (!g || typeof g !== 'object') return false;
  const { nodes, outputs } = g as { nodes?: unknown; outputs?: unknown };
  return Array.isArray(nodes) && nodes.length > 0 && Array.isArray(outputs) && outputs.length > 0 &&
    nodes.every((n) => !!n && typeof n === 'object' && typeof (n as { op?: unknown }).op === 'string' &&
      Array.isArray((n as { inputs?: unknown }).inputs) && Array.isArray((n as { types?: unknown }).types)) &&
    outputs.every((o) => !!o && typeof o === 'object' && typeof (o as { name?: unknown }).name === 'string' &&
      !!(o as { ref?: unknown }).ref && typeof (o as { ref?: unknown }).ref === 'object');
}

const clip = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}…` : s);
const errorLine = (e: unknown) => { try { return String(e instanceof Error ? e.message : e).split('\n')[0]; } catch { return 'an error'; } };
function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Weights for a plan from a checkpoint, reporting progress as each is read. */
export function weightProvider(plan: KernelPlan, model: OpenModel, onProgress?: TargetChoice['onProgress']): WeightProvider {
  return checkpointProvider(plan, model.ckpt, onProgress);
}

export async function loadTargetForModel(target: string, model: OpenModel, o: TargetChoice): Promise<TargetModel> {
  checkThreads(o.threads);
  const graph = await buildGraph(o.dsl, model.config);
  if (getTarget(target).graph) return loadGraph(target, graph, model.read);
  const compile = (weights: WeightDType) => compileGraph(graph, model.config, { weights, logits: o.logits, batch: o.batch }).plan;
  const plan = compile(o.weights as WeightDType);
  // Before anything is allocated: a model that cannot fit is one line naming the need, the limit and what fits.
  // (GPU targets check when lowering for the device's own limits, which only the opened device knows.)
  if (target === 'wasm') await checkFits(target, plan, { threads: o.threads }, { formats: ALL_FORMATS, plan: compile });
  return loadPlan(target, plan, weightProvider(plan, model, o.onProgress), { threads: o.threads, onProgress: o.onProgress });
}

export interface LoadOptions {
  /** A registered target (targets/registry.ts); default 'wasm'. */
  target?: string;
  /** Storage of the big matrices. Default f32. */
  weights?: WeightDType;
  /** WASM worker threads. Default: all cores. */
  threads?: number;
  /** Path of rwkv_vocab_v20230424.txt, or a tokenizer; needed for text (generate). */
  vocab?: string | WorldTokenizer;
  /** Compile a batch program too, for Session.decodeBatch of up to this many sequences. */
  batch?: number;
  /** Model description. Default examples/finch.ts of this package. */
  dsl?: string;
  /** Progress while loading (phase name, done, total). */
  onProgress?: (phase: string, done: number, total: number) => void;
}

/** examples/finch: the source in a checkout, compiled beside this module (.js) in the built package. */
export const DEFAULT_DSL = resolve(import.meta.dirname, '..', 'examples', import.meta.url.endsWith('.js') ? 'finch.js' : 'finch.ts');
/** The description of QRWKV6 checkpoints (docs/qrwkv6.md), used where DEFAULT_DSL is asked for one. */
export const QRWKV6_DSL = resolve(import.meta.dirname, '..', 'examples', import.meta.url.endsWith('.js') ? 'qrwkv6.js' : 'qrwkv6.ts');

export async function load(checkpoint: string, o: LoadOptions = {}): Promise<Session> {
  const model = openModel(checkpoint);
  const target = await loadTargetForModel(o.target ?? 'wasm', model, {
    dsl: o.dsl ?? DEFAULT_DSL, weights: o.weights ?? 'f32', threads: o.threads, logits: 'last', batch: o.batch, onProgress: o.onProgress,
  });
  const init = initialState(model);
  model.close();
  const tok = typeof o.vocab === 'string' ? loadWorldTokenizer(o.vocab) : o.vocab;
  return new Session(target, model.config, tok, init);
}
