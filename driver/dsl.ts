/**
 * Model descriptions: where the shipped ones are, importing one (from the sources, or built as .js, or through tsx),
 * and building and checking its graph for a config. Its own module, so compiling (`rwkvc compile`) loads
 * neither checkpoints nor runtimes.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Graph } from '../ir/node.ts';
import { familyOf, type ModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { verifyGraph } from '../ir/verify.ts';

/** examples/finch: the source in a checkout, compiled beside this module (.js) in the built package. */
export const DEFAULT_DSL = resolve(import.meta.dirname, '..', 'examples', import.meta.url.endsWith('.js') ? 'finch.js' : 'finch.ts');
/** The description of QRWKV6 checkpoints (docs/qrwkv6.md), used where DEFAULT_DSL is asked for one. */
export const QRWKV6_DSL = resolve(import.meta.dirname, '..', 'examples', import.meta.url.endsWith('.js') ? 'qrwkv6.js' : 'qrwkv6.ts');

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
