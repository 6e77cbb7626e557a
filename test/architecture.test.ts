/**
 * The layer rules (.dependency-cruiser.cjs), checked with dependency-cruiser's API:
 * kernels/ <- ir/ <- compiler/ <- targets/ <- runtime/ <- driver/ <- cli/, no cycles, and neither a target's
 * runtime module nor the runtime layer reaching codegen. The second test shows the rules failing on deliberately bad
 * imports (in a scratch tree under the OS temp folder, so nothing is written into the repository).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cruise, type ICruiseOptions, type ICruiseResult, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The folders the rules talk about (driver/ once it exists). */
const LAYERS = ['kernels', 'ir', 'compiler', 'targets', 'runtime', 'driver', 'cli', 'bench', 'examples', 'test'];

async function options(baseDir: string): Promise<ICruiseOptions> {
  return { ...(await extractDepcruiseOptions(join(ROOT, '.dependency-cruiser.cjs'))), baseDir };
}

/** One line per violation: `rule: from → to`, with the path for transitive rules and the loop for cycles. */
function describeViolation(v: IViolation): string {
  const types = v.dependencyTypes?.includes('type-only') ? ' (type-only)' : '';
  const via = v.via?.length ? ` via ${v.via.map((d) => d.name).join(' → ')}` : '';
  const cycle = v.cycle?.length ? ` (loop: ${[v.from, ...v.cycle.map((d) => d.name)].join(' → ')})` : '';
  return `${v.rule.name}: ${v.from} → ${v.to}${types}${via}${cycle}`;
}

function violations(result: ICruiseResult): string[] {
  return result.summary.violations.map(describeViolation).sort();
}

async function cruiseTree(baseDir: string, folders: string[], tsConfig?: string): Promise<ICruiseResult> {
  const transpile = tsConfig ? { tsConfig: extractTSConfig(tsConfig) } : {};
  const { output } = await cruise(folders, await options(baseDir), {}, transpile);
  if (typeof output === 'string') throw new Error('dependency-cruiser returned a report, not a result');
  return output;
}

describe('architecture', () => {
  it('imports run down the layers only, with no cycles, and runtimes never reach codegen', async () => {
    const folders = LAYERS.filter((f) => existsSync(join(ROOT, f)));
    const result = await cruiseTree(ROOT, folders, join(ROOT, 'tsconfig.json'));
    // A cruise that resolved nothing would pass every rule: make sure it saw the tree and its imports.
    expect(result.summary.totalCruised).toBeGreaterThan(100);
    // An import dependency-cruiser cannot resolve is an edge no rule checks: list it with the violations.
    const unresolved = result.modules.flatMap((m) => m.dependencies
      .filter((d) => d.couldNotResolve && d.dependencyTypes.some((t) => t === 'local' || t === 'unknown'))
      .map((d) => `unresolved import: ${m.source} → ${d.module}`));
    expect([...violations(result), ...unresolved.sort()], 'imports that break .dependency-cruiser.cjs (rule: from → to)').toEqual([]);
  });

  describe('the rules fail on bad imports', () => {
    const dirs: string[] = [];
    afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
    const folders = ['kernels', 'ir', 'compiler', 'targets', 'runtime', 'cli'];

    /** A fresh scratch tree named like ours whose imports follow the layers; returns its writer. */
    function scratch(): { dir: string; write: (path: string, text: string) => void } {
      const dir = mkdtempSync(join(tmpdir(), 'rwkvc-layers-'));
      dirs.push(dir);
      const write = (path: string, text: string) => {
        mkdirSync(dirname(join(dir, path)), { recursive: true });
        writeFileSync(join(dir, path), text);
      };
      write('kernels/plan.ts', 'export type Plan = { n: number };\n');
      write('ir/node.ts', "import type { Plan } from '../kernels/plan.ts';\nexport type Graph = { plan?: Plan };\n");
      write('compiler/index.ts', "import type { Graph } from '../ir/node.ts';\nimport type { Plan } from '../kernels/plan.ts';\n" +
        'export const compile = (g: Graph): Plan => ({ n: g.plan?.n ?? 0 });\n');
      write('targets/wasm/codegen.ts', "import type { Plan } from '../../kernels/plan.ts';\nexport const emit = (p: Plan) => p.n;\n");
      write('targets/wasm/runtime.ts', "import type { Plan } from '../../kernels/plan.ts';\nexport const run = (p: Plan) => p.n;\n");
      write('targets/ref/runtime.ts', "import type { Graph } from '../../ir/node.ts';\nexport const interpret = (g: Graph) => g;\n");
      write('runtime/session.ts', "import { run } from '../targets/wasm/runtime.ts';\nexport const session = run;\n");
      write('cli/main.ts', "import { compile } from '../compiler/index.ts';\nimport { session } from '../runtime/session.ts';\n" +
        'export const main = () => session(compile({}));\n');
      return { dir, write };
    }

    it('a tree that follows the layers passes', async () => {
      const { dir } = scratch();
      const result = await cruiseTree(dir, folders);
      expect(result.summary.totalCruised).toBe(8);
      expect(violations(result)).toEqual([]);
    });

    it('upward imports (type-only too), cycles and a runtime reaching codegen are each reported', async () => {
      const { dir, write } = scratch();
      // kernels/ is the ground floor: importing the runtime is an upward edge.
      write('kernels/bad.ts', "import { session } from '../runtime/session.ts';\nexport const bad = session;\n");
      // A type-only upward import counts too.
      write('ir/bad.ts', "import type { compile } from '../compiler/index.ts';\nexport type Bad = typeof compile;\n");
      // Targets consume the plan, not the IR (only targets/ref/ may read the IR).
      write('targets/wasm/graph.ts', "import type { Graph } from '../../ir/node.ts';\nexport type G = Graph;\n");
      // A cycle.
      write('compiler/a.ts', "import { b } from './b.ts';\nexport const a = () => b;\n");
      write('compiler/b.ts', "import { a } from './a.ts';\nexport const b = () => a;\n");
      // A runtime reaching a codegen package (a stand-in handlebars, so the path is the scratch tree's).
      write('node_modules/handlebars/package.json', '{ "name": "handlebars", "main": "index.js" }\n');
      write('node_modules/handlebars/index.js', 'module.exports = { compile: () => () => "" };\n');
      write('targets/wgsl/templates.ts', "import Handlebars from 'handlebars';\nexport const render = Handlebars.compile('');\n");
      write('targets/wgsl/runtime.ts', "import { render } from './templates.ts';\nexport const run = render;\n");
      // The runtime reaching codegen through a helper and a lazy import().
      write('targets/wasm/helper.ts', "export const load = async () => (await import('./codegen.ts')).emit;\n");
      write('targets/wasm/runtime.ts', "import type { Plan } from '../../kernels/plan.ts';\nimport { load } from './helper.ts';\n" +
        'export const run = (p: Plan) => p.n;\nexport const slow = load;\n');
      const result = await cruiseTree(dir, folders);
      expect(violations(result)).toEqual([
        'ir-only-on-kernels: ir/bad.ts → compiler/index.ts (type-only)',
        'kernels-is-the-ground-floor: kernels/bad.ts → runtime/session.ts',
        'no-circular: compiler/a.ts → compiler/b.ts (loop: compiler/a.ts → compiler/b.ts → compiler/a.ts)',
        'runtime-never-reaches-codegen: runtime/session.ts → targets/wasm/codegen.ts via targets/wasm/runtime.ts → targets/wasm/helper.ts → targets/wasm/codegen.ts',
        'runtime-never-reaches-codegen: targets/wasm/runtime.ts → targets/wasm/codegen.ts via targets/wasm/helper.ts → targets/wasm/codegen.ts',
        'runtime-never-reaches-codegen: targets/wgsl/runtime.ts → node_modules/handlebars/index.js via targets/wgsl/templates.ts → node_modules/handlebars/index.js',
        'targets-consume-the-plan-only: targets/wasm/graph.ts → ir/node.ts (type-only)',
      ]);
    });
  });
});
