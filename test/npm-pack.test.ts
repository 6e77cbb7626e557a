/**
 * The npm package as a user gets it: `npm pack` (whose prepack runs `npm run build`), the tarball installed
 * into an empty project, then the CLI and the library on plain Node, with no TypeScript loader:
 * `npx rwkvc --version`, `npx rwkvc demo`, the README's "From TypeScript" block (taken from the README
 * inside the tarball) as a `.mjs`, and a user's `.ts` model description (the one case that loads tsx).
 *
 * Packing runs in a copy of the working tree (this checkout's dist/ is not touched). When this checkout's dist/
 * is current (what bin/rwkvc.js checks: built after every source changed; CI builds it before the tests), the copy
 * takes it and packs with --ignore-scripts instead of building it again (the same `npm run build` on the same
 * sources), and the test checks that prepack is that build. Installing: the tarball is unpacked into node_modules/rwkvc and its dependencies are linked from this
 * checkout's node_modules (an `npm install` of them extracts ~550 MB: onnxruntime-node, webgpu, koffi),
 * with the bin link npm would make. RWKVC_PACK_NPM_INSTALL=1 runs a real
 * `npm install <tgz> --prefer-offline` instead (needs the npm registry for package metadata).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_VOCAB, VOCAB, vocabSkipReason } from './helpers/vocab.ts';
import { FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';

const ROOT = resolve(import.meta.dirname, '..');
const OWN = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
/**
 * Packages a plain start-up (`--help`, `--version`) must not load: each costs 0.3–2 s to import. (wabt and
 * handlebars are loaded today: driver/limits.ts, imported by driver/load.ts, imports the WASM and CUDA codegen.)
 */
const HEAVY = ['tsx', 'ts-morph', 'typescript', 'vega', 'vega-lite', 'webgpu', 'koffi', 'esbuild'];

let work = '';
let project = '';
const env = { ...process.env, npm_config_update_notifier: 'false', NO_COLOR: '1' };

function sh(cmd: string, args: string[], cwd: string, timeout = 180_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
}

const why = (r: SpawnSyncReturns<string>) => `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}\n${r.stdout}\n${r.stderr}`.slice(-4000);

/** The tarball into node_modules/rwkvc, its dependencies linked from this checkout, the bin link. */
function linkInstall(tgz: string): void {
  const pkg = join(project, 'node_modules', 'rwkvc');
  mkdirSync(pkg, { recursive: true });
  const t = sh('tar', ['-xzf', tgz, '-C', pkg, '--strip-components=1'], project);
  expect(t.status, why(t)).toBe(0);
  const deps = Object.keys((JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  for (const d of deps) {
    mkdirSync(dirname(join(project, 'node_modules', d)), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', d), join(project, 'node_modules', d), 'dir');
  }
  mkdirSync(join(project, 'node_modules', '.bin'));
  symlinkSync('../rwkvc/bin/rwkvc.js', join(project, 'node_modules', '.bin', 'rwkvc'));
}

/** Records every module URL a Node process resolves (an ES module loader hook), into `log`. */
function traceHook(log: string): string {
  const hooks = join(work, 'trace-hooks.mjs');
  writeFileSync(hooks, `import { appendFileSync } from 'node:fs';
export async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(log)}, r.url + '\\n'); return r; }\n`);
  const reg = join(work, 'trace.mjs');
  writeFileSync(reg, `import { register } from 'node:module'; register(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`);
  return reg;
}

/** Packages (node_modules/<name>) among the traced module URLs, CommonJS requires aside. */
function packagesIn(log: string): Set<string> {
  const out = new Set<string>();
  for (const url of readFileSync(log, 'utf8').split('\n')) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m) out.add(m[1]!);
  }
  return out;
}

/**
 * The working tree (tracked and not-ignored untracked files) in a scratch folder, node_modules linked: packing
 * there builds there, so this checkout's dist/ (which bin/rwkvc.js runs when current) is left as it was.
 */
function copyTree(to: string): void {
  const g = sh('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], ROOT);
  expect(g.status, why(g)).toBe(0);
  for (const f of g.stdout.split('\0')) {
    if (!f || !existsSync(join(ROOT, f))) continue; // deleted in the working tree
    mkdirSync(dirname(join(to, f)), { recursive: true });
    copyFileSync(join(ROOT, f), join(to, f));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(to, 'node_modules'), 'dir');
}

/** Folders of sources dist/ is built from (bin/rwkvc.js's list). */
const SOURCES = ['kernels', 'ir', 'compiler', 'targets', 'runtime', 'driver', 'cli', 'bench', 'examples'];

/** Is this checkout's dist/ a build of its sources as they are (bin/rwkvc.js's test: dist/build.json, written last, newer than all)? */
function distIsCurrent(): boolean {
  const built = join(ROOT, 'dist', 'build.json');
  if (!existsSync(built)) return false;
  const at = statSync(built).mtimeMs;
  for (const dir of SOURCES)
    for (const f of readdirSync(join(ROOT, dir), { recursive: true }) as string[]) if (statSync(join(ROOT, dir, f)).mtimeMs > at) return false;
  return statSync(join(ROOT, 'package.json')).mtimeMs <= at;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'rwkvc-pack-'));
  const tree = join(work, 'tree');
  copyTree(tree);
  const packs = join(work, 'packs');
  mkdirSync(packs);
  // packing runs prepack, the build; a current dist/ is that build already (what `npm pack` ships: package.json "files")
  const reuse = distIsCurrent();
  if (reuse) cpSync(join(ROOT, 'dist'), join(tree, 'dist'), { recursive: true });
  const p = sh('npm', ['pack', '--pack-destination', packs, ...(reuse ? ['--ignore-scripts'] : [])], tree, 300_000);
  expect(p.status, why(p)).toBe(0);
  const tgz = readdirSync(packs).filter((f) => f.endsWith('.tgz'));
  expect(tgz).toEqual([`rwkvc-${OWN.version}.tgz`]);

  project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-rwkvc', private: true, type: 'module' }));
  if (process.env.RWKVC_PACK_NPM_INSTALL === '1') {
    const i = sh('npm', ['install', join(packs, tgz[0]!), '--prefer-offline', '--no-audit', '--no-fund'], project, 600_000);
    expect(i.status, why(i)).toBe(0);
  } else {
    linkInstall(join(packs, tgz[0]!));
  }
}, 900_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('npm pack → install → plain Node', () => {
  it('packing builds dist/ first (prepack), from a clean dist/', () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.prepack).toBe('npm run build');
    expect(scripts.build).toBe('node bin/build.js');
    expect(readFileSync(join(ROOT, 'bin', 'build.js'), 'utf8')).toContain('rmSync(dist, { recursive: true, force: true });');
  });

  it('ships the compiled JS, the types of every export and the run-time assets, and no TypeScript sources', () => {
    const pkg = join(project, 'node_modules', 'rwkvc');
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { exports: Record<string, string | { types: string; default: string }> };
    for (const [sub, target] of Object.entries(manifest.exports)) {
      if (typeof target === 'string' || sub.includes('*')) continue;
      expect(existsSync(join(pkg, target.default)), `${sub} → ${target.default}`).toBe(true);
      expect(existsSync(join(pkg, target.types)), `${sub} → ${target.types}`).toBe(true);
    }
    expect(existsSync(join(pkg, 'dist/examples/finch.js'))).toBe(true);
    expect(existsSync(join(pkg, 'dist/targets/wgsl/templates/wkv.wgsl.hbs'))).toBe(true);
    expect(existsSync(join(pkg, 'dist/targets/cuda/sim/cuda_sim.h'))).toBe(true);
    expect(readFileSync(join(pkg, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) 2026 the rwkvc authors/);
    const files = readdirSync(pkg, { recursive: true }) as string[];
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('test'))).toEqual([]);
    // a Web Worker script is found by URL: the compiled one
    expect(readFileSync(join(pkg, 'dist/targets/wasm/team-web.js'), 'utf8')).toContain("new URL('./team-worker.js', import.meta.url)");
  });

  it('npx rwkvc --version and --help start without a TypeScript loader or any heavy package', () => {
    const v = sh('npx', ['--offline', 'rwkvc', '--version'], project);
    expect(v.status, why(v)).toBe(0);
    expect(v.stdout.trim()).toBe(OWN.version);

    const log = join(work, 'help-modules.log');
    const h = spawnSync(process.execPath, ['--import', traceHook(log), 'node_modules/.bin/rwkvc', '--help'], { cwd: project, env, encoding: 'utf8' });
    expect(h.status, why(h)).toBe(0);
    expect(h.stdout).toContain('Usage: rwkvc');
    const loaded = packagesIn(log);
    expect(loaded.has('commander')).toBe(true); // the trace sees packages
    expect(HEAVY.filter((p) => loaded.has(p))).toEqual([]);
    expect(readFileSync(log, 'utf8')).not.toMatch(/\.ts\n/); // dist, not the sources
  });

  it('npx rwkvc demo runs and checks every target this machine has', () => {
    const d = sh('npx', ['--offline', 'rwkvc', 'demo', '-o', 'out/demo'], project, 600_000);
    expect(d.status, why(d)).toBe(0);
    expect(d.stdout).toMatch(/^wasm\s.*\sok$/m);
    expect(d.stdout).toMatch(/^plan\s.*\sok$/m);
    expect(d.stdout).not.toContain('MISMATCH');
    expect(existsSync(join(project, 'out/demo/plan/plan.json'))).toBe(true);
  }, 600_000);

  it.skipIf(!HAVE_VOCAB)(`the README's "From TypeScript" block runs as written, as .mjs on plain Node${HAVE_VOCAB ? '' : ` (${vocabSkipReason()})`}`, () => {
    const readme = readFileSync(join(project, 'node_modules/rwkvc/README.md'), 'utf8');
    const block = /### From TypeScript\n+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block, 'README: no ```ts block under "### From TypeScript"').toBeTruthy();
    // a random checkpoint of the World vocabulary's size stands for model.pth; the vocabulary is the real one
    writeFileSync(join(project, 'make-model.mjs'), `import { writeRandomModel } from 'rwkvc/runtime';
writeRandomModel('model.safetensors', { nLayer: 1, nEmbd: 64, headSize: 64, nHead: 1, dimFfn: 224, vocabSize: 65536, loraMix: 32, loraDecay: 64 }, 7, 'bf16');\n`);
    const m = sh(process.execPath, ['make-model.mjs'], project);
    expect(m.status, why(m)).toBe(0);
    const code = block!.replaceAll("'model.pth'", "'model.safetensors'").replaceAll("'rwkv_vocab_v20230424.txt'", JSON.stringify(VOCAB));
    expect(code).not.toBe(block);
    // and afterwards, what it computed
    writeFileSync(join(project, 'example.mjs'), `${code}\nconsole.log('\\n' + JSON.stringify({ ids, snapshot: !!snap.tensors }));\n`);

    const log = join(work, 'example-modules.log');
    const r = spawnSync(process.execPath, ['--import', traceHook(log), 'example.mjs'], { cwd: project, env, encoding: 'utf8', timeout: 300_000 });
    expect(r.status, why(r)).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
    const text = r.stdout.trimEnd().split('\n');
    const { ids, snapshot } = JSON.parse(text.pop()!) as { ids: number[]; snapshot: boolean };
    expect(text.join('\n').trim().length, 'generate() wrote text').toBeGreaterThan(0);
    expect(ids.length).toBe(5);
    expect(ids.every((id) => Number.isInteger(id) && id > 0 && id < 65536), r.stdout).toBe(true);
    expect(snapshot).toBe(true);
    const loaded = packagesIn(log);
    expect(['tsx', 'ts-morph', 'typescript', 'esbuild'].filter((p) => loaded.has(p))).toEqual([]);
  }, 300_000);

  it("compiles a user's TypeScript model description (tsx, loaded only for it) built on the shipped DSL", () => {
    writeFileSync(join(project, 'my-model.ts'), `import type { Graph, ModelConfig } from 'rwkvc/dsl';
import finch from 'rwkvc/examples/finch';
export default (cfg: ModelConfig): Graph => finch(cfg);\n`);
    const c = sh('npx', ['--offline', 'rwkvc', 'compile', 'my-model.ts', '--config', 'finch-tiny', '-o', 'out/mine'], project);
    expect(c.status, why(c)).toBe(0);
    expect(existsSync(join(project, 'out/mine/plan.json'))).toBe(true);
  });

  it('the installed CLI emits a model package (from the built runtime) that matches the official logits on plain Node', () => {
    const pkg = join(work, 'finch-tiny-pkg'); // outside the project: no `webgpu` package above it
    const c = sh('npx', ['--offline', 'rwkvc', 'compile', join(project, 'node_modules/rwkvc/dist/examples/finch.js'), '--config', 'finch-tiny', '--emit', 'package', '-o', pkg], project);
    expect(c.status, why(c)).toBe(0);
    expect(readFileSync(join(pkg, 'README.md'), 'utf8')).not.toContain('https://github.com/)');
    const app = join(work, 'app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    symlinkSync(pkg, join(app, 'node_modules', 'finch-tiny'), 'dir');
    writeFileSync(join(app, 'main.mjs'), `import { FinchModel } from 'finch-tiny';
const [ckpt, tokensJson] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const m = await FinchModel.load(ckpt, { threads: 1 });   // no vocabulary
const logits = await m.prefill(tokens);
await m.state.reset();
const ids = [];
for await (const id of m.generateIds(tokens.slice(0, 2), { maxTokens: 3, temperature: 0 })) ids.push(id);
const errors = [];
try { for await (const piece of m.generate(tokens.slice(0, 2))) void piece; } catch (e) { errors.push(e.message); }
try { await FinchModel.load(ckpt, { target: 'wgsl' }); } catch (e) { errors.push(e.message); }
m.dispose();
console.log(JSON.stringify({ logits: [...logits], ids, errors }));
`);
    const golden = readGolden('finch-tiny');
    const T = golden.tokens.length, V = 256;
    const r = spawnSync(process.execPath, ['main.mjs', join(FIXTURES, 'finch-tiny', 'model.safetensors'), JSON.stringify([...golden.tokens])], { cwd: app, env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, why(r)).toBe(0);
    const out = JSON.parse(r.stdout) as { logits: number[]; ids: number[]; errors: string[] };
    expect(maxAbsDiff(out.logits, golden.logits.subarray((T - 1) * V, T * V))).toBeLessThanOrEqual(1e-4);
    // greedy: the first id generated after two tokens is the argmax of the official logits there
    const second = Array.from(golden.logits.subarray(V, 2 * V));
    expect(out.ids.length).toBeGreaterThan(0);
    expect(out.ids[0]).toBe(second.indexOf(Math.max(...second)));
    expect(out.errors[0]).toMatch(/generateIds\(\) takes and returns token ids without one/);
    expect(out.errors[1]).toContain('install the `webgpu` npm package');

    // the package README's example runs as written (its token ids are ids this model has), on the fixture checkpoint
    const block = /```js\n([\s\S]*?)```/.exec(readFileSync(join(pkg, 'README.md'), 'utf8'))?.[1];
    expect(block).toContain("'model.pth'");
    writeFileSync(join(app, 'readme.mjs'), block!.replaceAll("'model.pth'", JSON.stringify(join(FIXTURES, 'finch-tiny', 'model.pth'))));
    const e = spawnSync(process.execPath, ['readme.mjs'], { cwd: app, env, encoding: 'utf8', timeout: 120_000 });
    expect(e.status, why(e)).toBe(0);
    expect(e.stdout.trim().split('\n').length).toBeGreaterThan(0);
  });
});
