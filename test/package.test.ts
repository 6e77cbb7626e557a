/**
 * `--emit package`: the package for the fixture model is self-contained (no import leaves it but
 * node: built-ins), its types check for a consumer with no @types/node, and plain `node` (no tsx),
 * in a project of its own, loads it and reproduces the official logits.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Project, ts } from 'ts-morph';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitPackage, type EmittedPackage } from '../driver/emit-package.ts';
import type { KernelPlan } from '../kernels/plan.ts';
import { openModel } from '../runtime/model.ts';
import { UserError } from '../kernels/errors.ts';
import { FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';
import { acquireTestGpu } from './helpers/gpu.ts';

const ROOT = join(import.meta.dirname, '..');
const MODEL = join(FIXTURES, 'finch-tiny', 'model.safetensors');
const tmp = mkdtempSync(join(tmpdir(), 'rwkvc-pkg-'));
const app = join(tmp, 'app');
let pkg: EmittedPackage;
const probe = await acquireTestGpu(); // is there WebGPU here (Dawn on a GPU or SwiftShader)?
probe.gpu?.release();

beforeAll(async () => {
  const m = openModel(MODEL);
  m.close();
  pkg = await emitPackage({ dsl: join(ROOT, 'examples', 'finch.ts'), config: m.config, out: join(tmp, 'pkg'), batch: 4 });
  // a separate project with the package installed, as npm would
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  cpSync(pkg.dir, join(app, 'node_modules', pkg.name), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
}, 300_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? walk(join(dir, f)) : [join(dir, f)]));

describe('rwkvc compile --emit package', () => {
  it('writes the plan, the WASM kernels, the runtime, the entry and package.json', () => {
    expect(pkg.name).toBe('finch-tiny');
    expect(pkg.className).toBe('FinchModel');
    for (const f of ['package.json', 'README.md', 'plan.json', 'index.js', 'index.d.ts', 'f32/model.wasm', 'f32/layout.json',
      'runtime/session.js', 'runtime/session.d.ts', 'runtime/checkpoint/reader.js', 'runtime/world-tokenizer.js', 'targets/wasm/runtime.js',
      'targets/wasm/team-worker.js', 'f32/wgsl.json', 'targets/wgsl/runtime.js']) {
      expect(existsSync(join(pkg.dir, f)), f).toBe(true);
    }
    const plan = JSON.parse(readFileSync(join(pkg.dir, 'plan.json'), 'utf8')) as KernelPlan;
    expect(plan.format).toBe('rwkvc-plan');
    expect(plan.batch?.maxT).toBe(4);
    const head = plan.prefill.kernels.at(-1)!;
    expect(head.kind === 'linear' && head.rows).toBe('last');
    const wgsl = JSON.parse(readFileSync(join(pkg.dir, 'f32', 'wgsl.json'), 'utf8'));
    expect(wgsl).toMatchObject({ format: 'rwkvc-wgsl', version: 2, plan: { format: 'rwkvc-plan' } });
    expect(Object.keys(wgsl.shaders).length).toBeGreaterThan(5);
    expect(readFileSync(join(pkg.dir, 'targets/wgsl/runtime.js'), 'utf8')).not.toMatch(/codegen/);
    const wasm = readFileSync(join(pkg.dir, 'f32', 'model.wasm'));
    expect(WebAssembly.validate(wasm)).toBe(true);

    const json = JSON.parse(readFileSync(join(pkg.dir, 'package.json'), 'utf8'));
    expect(json).toMatchObject({ name: 'finch-tiny', type: 'module', types: './index.d.ts' });
    expect(json.exports['.']).toEqual({ types: './index.d.ts', default: './index.js' });
    expect(json.dependencies).toBeUndefined();
    expect(readFileSync(join(pkg.dir, 'README.md'), 'utf8')).toContain("import { FinchModel } from 'finch-tiny'");
  });

  it('depends on nothing outside itself: no compiler, no npm package, no .ts', () => {
    const files = walk(pkg.dir).filter((f) => /\.(js|d\.ts)$/.test(f));
    expect(files.length).toBeGreaterThan(20);
    for (const f of files) {
      const src = readFileSync(f, 'utf8');
      const specs = [...src.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm)].map((m) => m[1]!);
      for (const s of specs) {
        const where = `${relative(pkg.dir, f)} imports ${s}`;
        if (s.startsWith('.')) {
          expect(s, where).toMatch(/\.js$/);
          const target = resolve(dirname(f), f.endsWith('.d.ts') ? s.replace(/\.js$/, '.d.ts') : s);
          expect(existsSync(target), where).toBe(true);
          expect(relative(pkg.dir, target).startsWith('..'), where).toBe(false);
        } else {
          expect(s === '#platform' || s.startsWith('node:'), where).toBe(true);
        }
      }
    }
    // the browser side of #platform and what it reaches stay free of node: imports
    const web = readFileSync(join(pkg.dir, 'runtime/package/platform-web.js'), 'utf8');
    expect(web).not.toMatch(/node:/);
  });

  it('its types check: the generated entry and a consumer, with no @types/node', () => {
    const project = new Project({
      skipAddingFilesFromTsConfig: true,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
        strict: true, noEmit: true, skipLibCheck: false, types: [], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      },
    });
    project.createSourceFile(join(app, 'consumer.mts'), `
import FinchDefault, { FinchModel, config, UserError, type FinchConfig, type FinchWeights, type FinchModelLoadOptions, type StateSnapshot } from 'finch-tiny';
import { openCheckpointBytes, type Checkpoint } from 'finch-tiny/runtime/checkpoint/reader.js';

const bytes = new Uint8Array(0);
const opts: FinchModelLoadOptions = { target: 'wasm', threads: 2, weights: 'f32', vocab: 'rwkv_vocab_v20230424.txt', onProgress: (p, d, t) => void [p, d, t] };
const m: FinchModel = await FinchModel.load(bytes, opts);
const same: typeof FinchModel = FinchDefault;
const logits: Float32Array = await m.prefill([1, 2, 3]);
const next: Float32Array = await m.decode(4);
for await (const piece of m.generate('User: hi', { maxTokens: 5, temperature: 0, stopStrings: ['\\n'] })) { const s: string = piece; void s; }
const snap: StateSnapshot = await m.state.save();
await m.state.restore(snap);
const other: FinchModel = await m.state.fork();
const rows: Float32Array[] = await FinchModel.decodeBatch([m, other], [1, 2]);
const file: Uint8Array = await m.state.toBytes();
await other.state.fromBytes(file);
const layers: 2 = m.config.nLayer;
const vocab: 256 = FinchModel.config.vocabSize;
const cfg: FinchConfig = config;
const w: FinchWeights = m.weights;
const ran: 'wasm' | 'wgsl' = m.backend.target;
const ids: number[] = m.tokenize('hi');
const text: string = m.detokenize(ids);
const err: Error = new UserError('x');
const ckpt: Checkpoint = openCheckpointBytes('upload.pth', bytes);
// @ts-expect-error: only f32 was compiled into this package
await FinchModel.load(bytes, { weights: 'int8' });
// @ts-expect-error: the config is a typed literal
const wrong: 3 = m.config.nLayer;
m.dispose();
export { logits, next, rows, layers, vocab, cfg, w, ran, text, err, same, wrong, ckpt };
`);
    const diags = project.getPreEmitDiagnostics();
    expect(project.formatDiagnosticsWithColorAndContext(diags)).toBe('');
    // and what it checked includes the package's own declarations
    const checked = project.getProgram().compilerObject.getSourceFiles().map((f) => f.fileName);
    expect(checked).toContain(join(app, 'node_modules', 'finch-tiny', 'index.d.ts'));
  });

  it('runs under plain node from another project and matches the official logits', () => {
    const golden = readGolden('finch-tiny');
    const T = golden.tokens.length, V = 256;
    writeFileSync(join(app, 'main.mjs'), `
import { readFileSync } from 'node:fs';
import { FinchModel } from 'finch-tiny';
const [ckpt, tokensJson] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const byPath = await FinchModel.load(ckpt, { threads: 2 });
const logits = await byPath.prefill(tokens);

// from bytes; the last token for two sequences (this one and a fork) in one decodeBatch
const byBytes = await FinchModel.load(new Uint8Array(readFileSync(ckpt)), { threads: 1, relaxed: false });
await byBytes.prefill(tokens.slice(0, -1));
const fork = await byBytes.state.fork();
const [a, b] = await FinchModel.decodeBatch([byBytes, fork], [tokens.at(-1), tokens.at(-1)]);
// a state file round trip: the next step is the same
const file = await byBytes.state.toBytes();
await fork.state.reset();
await fork.state.fromBytes(file);
const c = await fork.decode(7), d = await byBytes.decode(7);
let errors = [];
try { await FinchModel.load(ckpt, { weights: 'int8' }); } catch (e) { errors.push(e.message); }
byPath.dispose(); byBytes.dispose(); fork.dispose();
try { await fork.decode(1); } catch (e) { errors.push(e.message); }
console.log(JSON.stringify({ logits: [...logits], a: [...a], b: [...b], roundTrip: c.every((x, i) => x === d[i]), errors, backend: byPath.backend }));
`);
    const r = spawnSync('node', [join(app, 'main.mjs'), MODEL, JSON.stringify([...golden.tokens])], {
      cwd: app, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { logits: number[]; a: number[]; b: number[]; roundTrip: boolean; errors: string[]; backend: object };
    // auto: no navigator.gpu in Node, so WASM
    expect(out.backend).toMatchObject({ target: 'wasm', threads: 2, notes: [expect.stringMatching(/^running WASM: no WebGPU here/)] });
    const last = golden.logits.subarray((T - 1) * V, T * V);
    expect(out.logits).toHaveLength(V);
    expect(maxAbsDiff(out.logits, last)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(out.a, last)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(out.b, last)).toBeLessThanOrEqual(1e-4);
    expect(out.roundTrip).toBe(true);
    expect(out.errors[0]).toMatch(/weights 'int8' were not compiled into this package \(it has f32\)/);
    expect(out.errors[1]).toMatch(/FinchModel: this sequence was disposed/);
  });

  // WebGPU in Node is Dawn from the optional `webgpu` package, which the app installs beside the package
  it.skipIf(!probe.gpu)(`target 'wgsl' in Node, with the webgpu package installed: Dawn runs the pre-rendered shaders${probe.skip ? ` (skipped: ${probe.skip})` : ''}`, () => {
    const golden = readGolden('finch-tiny');
    const T = golden.tokens.length, V = 256;
    symlinkSync(join(ROOT, 'node_modules', 'webgpu'), join(app, 'node_modules', 'webgpu'), 'dir');
    writeFileSync(join(app, 'wgsl.mjs'), `
import { FinchModel } from 'finch-tiny';
const [ckpt, tokensJson] = process.argv.slice(2);
const m = await FinchModel.load(ckpt, { target: 'wgsl' });
const logits = await m.prefill(JSON.parse(tokensJson));
console.log(JSON.stringify({ logits: [...logits], backend: m.backend }));
m.dispose(); // and the process exits by itself: nothing of Dawn's keeps it alive
`);
    const r = spawnSync('node', [join(app, 'wgsl.mjs'), MODEL, JSON.stringify([...golden.tokens])], {
      cwd: app, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { logits: number[]; backend: { target: string; description: string } };
    expect(out.backend.target).toBe('wgsl');
    expect(out.backend.description).toMatch(/^WebGPU: /);
    expect(maxAbsDiff(out.logits, golden.logits.subarray((T - 1) * V, T * V))).toBeLessThanOrEqual(1e-4);
  });

  it('the CLI writes a package, and will not overwrite a directory that is not one', () => {
    const out = join(tmp, 'cli-pkg');
    const rwkvc = (...args: string[]) => spawnSync('node', ['bin/rwkvc.js', ...args], { cwd: ROOT, encoding: 'utf8' });
    const r = rwkvc('compile', 'examples/finch.ts', '--config', MODEL, '--emit', 'package', '-o', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/wrote package finch-tiny \(class FinchModel/);
    expect(JSON.parse(readFileSync(join(out, 'package.json'), 'utf8')).name).toBe('finch-tiny');

    const busy = join(tmp, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'notes.txt'), 'keep me');
    const e = rwkvc('compile', 'examples/finch.ts', '--config', 'finch-tiny', '--emit', 'package', '-o', busy);
    expect(e.status).toBe(2);
    expect(e.stderr.trim()).toMatch(/^rwkvc: .*busy: not empty and not a package rwkvc wrote/);
    expect(readFileSync(join(busy, 'notes.txt'), 'utf8')).toBe('keep me');
  });

  it('a checkpoint of another shape is refused in one line naming what differs', async () => {
    const { checkCheckpoint } = await import('../runtime/package/model.ts');
    const { openCheckpoint } = await import('../runtime/checkpoint/index.ts');
    const c = openCheckpoint(MODEL);
    try {
      const cfg = { ...openModelConfig(), nLayer: 3 };
      expect(() => checkCheckpoint(c, cfg, 'finch-x')).toThrow(UserError);
      expect(() => checkCheckpoint(c, cfg, 'finch-x')).toThrow(/model\.safetensors: finch-x was compiled for nLayer 3, but this checkpoint has nLayer 2$/);
    } finally {
      c.close();
    }
  });
});

function openModelConfig() {
  const m = openModel(MODEL);
  m.close();
  return m.config;
}
