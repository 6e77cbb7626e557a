/**
 * `rwkvc compile … --emit package`: a self-contained ES module package for one model, which a user
 * imports from Node or a bundler with no dependency on rwkvc or its compiler:
 *
 *   package.json   name from the model, "type": "module", exports, types; `#platform` picks the Node
 *                  or the browser host functions (runtime/package/platform-*.ts)
 *   index.js/.d.ts the entry, generated here with ts-morph's structure API: a class named after the
 *                  model (FinchModel) with load / prefill / decode / generate / state / decodeBatch /
 *                  config (a typed literal) / dispose
 *   plan.json      the KernelPlan (logits of the last token, a batch program) of the default weights
 *   <weights>/     per compiled weight storage: the WASM target's kernels (model.wasm,
 *                  model.relaxed.wasm, layout.json) and the WGSL target's plan and pre-rendered
 *                  shaders (wgsl.json): each packaged target's artifact files; `load(…, { target: 'auto' | <name> })`
 *   runtime/ kernels/ targets/   the runtime modules the entry needs, transpiled to .js + .d.ts
 *   README.md      usage
 *
 * The runtime is found by following imports (and `new URL('./x.ts', import.meta.url)`, e.g. a worker
 * script) from the entry and the package runtime's roots: a module that reaches the compiler or an npm
 * package makes emitting fail, naming it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import type * as TsMorph from 'ts-morph';
import type { ClassDeclarationStructure, Node, OptionalKind, SourceFile, SourceFileStructure } from 'ts-morph';
import type { ModelConfig } from '../kernels/config.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { TARGETS } from '../targets/registry.ts';
import { UserError } from '../kernels/errors.ts';
import { buildGraph } from './dsl.ts';
import { rwkvcVersion } from './version.ts';
import { PRESETS } from '../runtime/presets.ts';
import { compileGraph } from '../compiler/index.ts';

const ROOT = resolve(import.meta.dirname, '..');
/** Running from the built rwkvc (dist/*.js), where the runtime is JavaScript + .d.ts, not TypeScript sources. */
const BUILT = import.meta.url.endsWith('.js');

/** ts-morph (the TypeScript compiler, ~2 s to import), loaded by emitPackage: the CLI starts without it. */
let tm: typeof TsMorph;

export interface EmitPackageOptions {
  /** The model description (e.g. examples/finch.ts). */
  dsl: string;
  config: ModelConfig;
  /** Output directory (emptied first). */
  out: string;
  /** Weight storage(s) to compile kernels for; the first is the default at load. Default 'f32'. */
  weights?: WeightDType | WeightDType[];
  /** Prefill chunk (tokens per prefill call). Default 128. */
  chunk?: number;
  /** Sequences decoded together by decodeBatch (the plan's batch program). Default 4. */
  batch?: number;
  /** npm package name. Default: the preset the config matches, else `<model>-<layers>x<width>`. */
  name?: string;
  /** The entry class. Default `<Model>Model` from the plan's model name (FinchModel). */
  className?: string;
  version?: string;
}

export interface EmittedPackage {
  dir: string;
  name: string;
  className: string;
  weights: WeightDType[];
  /** Every file written, relative to `dir`. */
  files: string[];
}

/** The package's host functions: resolved per condition by the package.json `imports` field. */
const PLATFORM = {
  specifier: '#platform',
  node: 'runtime/package/platform-node.ts',
  web: 'runtime/package/platform-web.ts',
};

/** Modules a user may import directly (`<pkg>/runtime/…`), besides what the entry reaches. */
const RUNTIME_ROOTS = [
  PLATFORM.node, PLATFORM.web,
  'runtime/package/model.ts', 'runtime/session.ts', 'runtime/sampler.ts',
  'runtime/world-tokenizer.ts', 'runtime/state-file.ts', 'kernels/errors.ts', 'runtime/checkpoint/reader.ts',
  'kernels/weights.ts', 'kernels/dtype.ts', 'targets/backend.ts', 'runtime/package/browser-cache.ts',
  ...TARGETS.flatMap((t) => (t.packaged ? [t.packaged] : [])),
];

/** Folders of the compiler side: a runtime module reaching one of these cannot go in a package. */
const FORBIDDEN = ['compiler/', 'ir/', 'cli/', 'examples/', 'bench/', 'test/'];

/**
 * Runtime modules allowed an import() of a computed specifier (which emitting cannot follow), and why
 * that is sound: what they import is not part of the package.
 */
const COMPUTED_IMPORTS: Record<string, string> = {
  'targets/wgsl/device.ts': 'Node built-ins and the optional `webgpu` package (Dawn), only when running in Node',
};

// ---------------------------------------------------------------------------------------------------
// WASM target coupling (with runtime/package/wasm.ts, the only place that knows the target's API).

interface TargetFiles {
  /** path in the package → bytes or text */
  files: Record<string, Uint8Array | string>;
}

// WGSL target coupling (with runtime/package/wgsl.ts).

// ---------------------------------------------------------------------------------------------------

const pascal = (s: string) => s.replace(/(^|[^A-Za-z0-9]+)([A-Za-z0-9])/g, (_, __, c: string) => c.toUpperCase()).replace(/^[^A-Za-z_$]+/, '');

function defaultName(model: string, config: ModelConfig): string {
  const key = JSON.stringify(config);
  const preset = Object.entries(PRESETS).find(([, c]) => JSON.stringify(c) === key)?.[0];
  return (preset ?? `${model}-${config.nLayer}x${config.nEmbd}`).toLowerCase().replace(/[^a-z0-9._-]+/g, '-');
}

export async function emitPackage(o: EmitPackageOptions): Promise<EmittedPackage> {
  tm ??= await import('ts-morph');
  const weights = [...new Set(Array.isArray(o.weights) ? o.weights : [o.weights ?? 'f32'])];
  if (!weights.length) throw new UserError('package: no weight storage to compile');
  const plans = new Map<WeightDType, KernelPlan>();
  for (const w of weights) {
    const graph = await buildGraph(o.dsl, o.config);
    plans.set(w, compileGraph(graph, o.config, { weights: w, logits: 'last', chunk: o.chunk ?? 128, batch: o.batch ?? 4 }).plan);
  }
  const plan = plans.get(weights[0]!)!;
  const name = o.name ?? defaultName(plan.model, o.config);
  if (!/^(@[a-z0-9._-]+\/)?[a-z0-9][a-z0-9._-]*$/.test(name)) throw new UserError(`package: '${name}' is not a valid npm package name`);
  const className = o.className ?? `${pascal(plan.model) || 'Rwkv'}Model`;
  if (!/^[A-Za-z_$][\w$]*$/.test(className)) throw new UserError(`package: '${className}' is not a valid class name`);

  const files: Record<string, Uint8Array | string> = { 'plan.json': JSON.stringify(plan, null, 1) };
  // each packaged target's artifact for each weight storage, at its default limits (a device's are capped to them)
  const layout: PackageLayout = {};
  for (const t of TARGETS.filter((t) => t.packaged)) {
    const codegen = await t.codegen!();
    for (const [w, p] of plans) {
      const art = codegen.files(codegen.emit(p));
      (layout[w] ??= {})[t.name] = Object.keys(art);
      for (const [f, data] of Object.entries(art)) files[`${w}/${f}`] = data;
    }
  }
  Object.assign(files, transpileRuntime(name, className, o.config, weights, layout));
  files['package.json'] = JSON.stringify(packageJson(name, o.version ?? '0.1.0', plan, className), null, 2) + '\n';
  files['README.md'] = readme(name, className, o.config, weights, plan);

  const dir = resolve(o.out);
  clearOutput(dir);
  for (const [p, data] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), data);
  }
  return { dir, name, className, weights, files: Object.keys(files).sort() };
}

/** Empty the output directory, but only when it is new, empty, or a package written here before. */
function clearOutput(dir: string): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new UserError(`${dir}: not a directory`);
  if (readdirSync(dir).length === 0) return;
  let ours = false;
  try {
    ours = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))?.rwkvc?.kind === 'package';
  } catch { /* not ours */ }
  if (!ours) throw new UserError(`${dir}: not empty and not a package rwkvc wrote; choose another -o`);
  rmSync(dir, { recursive: true, force: true });
}

// ------------------------------------------ the runtime ------------------------------------------

/** Rewrite a relative `.ts` specifier to `.js` (the emitted files' names). */
const toJs = (spec: string) => (spec.startsWith('.') && spec.endsWith('.ts') && !spec.endsWith('.d.ts') ? spec.slice(0, -3) + '.js' : spec);

/** Every module specifier in a file (static, re-exports, dynamic import(), import types, `new URL('./x.ts', import.meta.url)`), as nodes. */
function specifierNodes(sf: SourceFile, rel = relative(ROOT, sf.getFilePath()).split(sep).join('/')): Node[] {
  const out: Node[] = [];
  for (const d of [...sf.getImportDeclarations(), ...sf.getExportDeclarations()]) {
    const s = d.getModuleSpecifier();
    if (s) out.push(s);
  }
  sf.forEachDescendant((n) => {
    if (tm.Node.isCallExpression(n) && n.getExpression().getKind() === tm.SyntaxKind.ImportKeyword) {
      const a = n.getArguments()[0];
      if (a && tm.Node.isStringLiteral(a)) out.push(a);
      else if (a && !Object.hasOwn(COMPUTED_IMPORTS, rel.replace(/\.js$/, '.ts'))) throw new UserError(`package: ${rel}: import() of a computed specifier cannot be packaged`);
    } else if (tm.Node.isNewExpression(n) && n.getExpression().getText() === 'URL') {
      // a module beside this one, by URL (a worker script): packaged like an import
      const [a, base] = n.getArguments();
      if (a && tm.Node.isStringLiteral(a) && /^\.\.?\/.*\.[tj]s$/.test(a.getLiteralValue()) && base?.getText() === 'import.meta.url') out.push(a);
    } else if (tm.Node.isImportTypeNode(n)) {
      const arg = n.getArgument();
      if (tm.Node.isLiteralTypeNode(arg)) out.push(arg.getLiteral());
    }
  });
  return out;
}

/** Per weight storage, per packaged target: its artifact's file names (in `<weights>/`). */
type PackageLayout = Record<string, Record<string, string[]>>;

function transpileRuntime(name: string, className: string, config: ModelConfig, weights: WeightDType[],
  layout: PackageLayout): Record<string, string> {
  if (BUILT) return builtRuntime(name, className, config, weights, layout);
  const outDir = join(ROOT, '.package-out'); // virtual: everything is emitted to memory
  const project = new tm.Project({
    skipAddingFilesFromTsConfig: true,
    skipFileDependencyResolution: true,
    compilerOptions: {
      target: tm.ts.ScriptTarget.ES2022, module: tm.ts.ModuleKind.ES2022, moduleResolution: tm.ts.ModuleResolutionKind.Bundler,
      strict: true, noImplicitOverride: true, skipLibCheck: true, declaration: true, sourceMap: false,
      rootDir: ROOT, outDir, lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], types: ['node', '@webgpu/types'],
      paths: { [PLATFORM.specifier]: [join(ROOT, PLATFORM.web)] },
    },
  });

  // Follow imports from the roots, rewriting specifiers as we go.
  // keyed by ts-morph's file paths (forward slashes on every OS)
  const included = new Map<string, SourceFile>();
  const key = (p: string) => p.split(sep).join('/');
  const queue = RUNTIME_ROOTS.map((p) => join(ROOT, p));
  const visit = (sf: SourceFile) => {
    for (const n of specifierNodes(sf)) {
      const spec = (n as Node & { getLiteralValue(): string }).getLiteralValue();
      if (spec.startsWith('.')) {
        queue.push(resolve(dirname(sf.getFilePath()), spec.replace(/\.js$/, '.ts')));
        (n as Node & { setLiteralValue(v: string): void }).setLiteralValue(toJs(spec));
      } else if (!spec.startsWith('node:') && spec !== PLATFORM.specifier) {
        throw new UserError(`package: ${relative(ROOT, sf.getFilePath())} imports '${spec}': a package can depend only on its own files and node: built-ins`);
      }
    }
  };
  while (queue.length) {
    const path = queue.shift()!;
    if (included.has(key(path))) continue;
    const rel = relative(ROOT, path).split(sep).join('/');
    if (rel.startsWith('..') || FORBIDDEN.some((f) => rel.startsWith(f))) {
      throw new UserError(`package: the runtime would include ${rel}, which belongs to the compiler side`);
    }
    const sf = project.addSourceFileAtPath(path);
    included.set(sf.getFilePath(), sf);
    visit(sf);
  }

  const entry = project.createSourceFile(join(ROOT, 'index.ts'), entryStructure(name, className, config, weights, layout), { overwrite: true });
  entry.formatText({ indentSize: 2 });
  visit(entry);
  included.set(entry.getFilePath(), entry);

  const diags = project.getPreEmitDiagnostics().filter((d) => {
    const f = d.getSourceFile()?.getFilePath();
    return !f || included.has(f);
  });
  if (diags.length) {
    throw new Error(`package: the runtime does not type-check:\n${project.formatDiagnosticsWithColorAndContext(diags.slice(0, 10))}`);
  }

  const out: Record<string, string> = {};
  for (const f of project.emitToMemory().getFiles()) {
    const src = f.filePath.replace(/\.d\.ts$/, '.ts').replace(/\.js$/, '.ts');
    const rel = relative(outDir, f.filePath).split(sep).join('/');
    if (!included.has(key(join(ROOT, relative(outDir, src))))) continue;
    // d.ts emit names the modules of inferred types itself; make sure none kept a .ts extension
    out[rel] = f.text.replace(/(import\(\s*["'])(\.{1,2}\/[^"']+)\.ts(["']\s*\))/g, '$1$2.js$3');
  }
  if (!out['index.js'] || !out['index.d.ts']) throw new Error('package: the entry was not emitted');
  return out;
}

/**
 * The same from the built rwkvc (dist/, no TypeScript sources): the runtime modules are copied as compiled
 * (.js, and .d.ts for types), following the imports of both; only the entry is compiled here, type-checked
 * against the runtime's declarations, in memory.
 */
function builtRuntime(name: string, className: string, config: ModelConfig, weights: WeightDType[],
  layout: PackageLayout): Record<string, string> {
  const project = new tm.Project({
    useInMemoryFileSystem: true,
    skipAddingFilesFromTsConfig: true,
    compilerOptions: {
      target: tm.ts.ScriptTarget.ES2022, module: tm.ts.ModuleKind.ES2022, moduleResolution: tm.ts.ModuleResolutionKind.Bundler,
      strict: true, noImplicitOverride: true, skipLibCheck: true, declaration: true, sourceMap: false,
      rootDir: '/pkg', outDir: '/out', lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], types: [],
      paths: { [PLATFORM.specifier]: [`/pkg/${PLATFORM.web.replace(/\.ts$/, '.d.ts')}`] },
    },
  });
  const out: Record<string, string> = {};
  const queue = RUNTIME_ROOTS.map((p) => p.replace(/\.ts$/, '.js'));
  const follow = (sf: SourceFile, rel: string) => {
    for (const n of specifierNodes(sf, rel)) {
      const spec = (n as Node & { getLiteralValue(): string }).getLiteralValue();
      if (spec.startsWith('.')) queue.push(posix.join(posix.dirname(rel), spec));
      else if (!spec.startsWith('node:') && spec !== PLATFORM.specifier) {
        throw new UserError(`package: ${rel} imports '${spec}': a package can depend only on its own files and node: built-ins`);
      }
    }
  };
  while (queue.length) {
    const rel = queue.shift()!;
    if (Object.hasOwn(out, rel)) continue;
    if (rel.startsWith('..') || FORBIDDEN.some((f) => rel.startsWith(f))) {
      throw new UserError(`package: the runtime would include ${rel}, which belongs to the compiler side`);
    }
    for (const file of [rel, rel.replace(/\.js$/, '.d.ts')]) {
      const path = join(ROOT, file);
      if (!existsSync(path)) throw new Error(`package: ${path} is missing from this rwkvc build (run npm run build)`);
      out[file] = readFileSync(path, 'utf8');
      follow(project.createSourceFile(`/pkg/${file}`, out[file]!, { overwrite: true }), file);
    }
  }

  const entry = project.createSourceFile('/pkg/index.ts', entryStructure(name, className, config, weights, layout), { overwrite: true });
  entry.formatText({ indentSize: 2 });
  for (const n of specifierNodes(entry, 'index.ts')) {
    const spec = (n as Node & { getLiteralValue(): string }).getLiteralValue();
    (n as Node & { setLiteralValue(v: string): void }).setLiteralValue(toJs(spec));
  }
  const diags = project.getPreEmitDiagnostics().filter((d) => d.getSourceFile()?.getFilePath() === entry.getFilePath());
  if (diags.length) {
    throw new Error(`package: the entry does not type-check:\n${project.formatDiagnosticsWithColorAndContext(diags.slice(0, 10))}`);
  }
  for (const f of entry.getEmitOutput().getOutputFiles()) out[posix.basename(f.getFilePath())] = f.getText();
  if (!out['index.js'] || !out['index.d.ts']) throw new Error('package: the entry was not emitted');
  return out;
}

// ------------------------------------------ the entry ------------------------------------------

function entryStructure(name: string, cls: string, config: ModelConfig, weights: WeightDType[], layout: PackageLayout): OptionalKind<SourceFileStructure> {
  const cfgType = `${cls.replace(/Model$/, '') || cls}Config`;
  const weightsType = `${cls.replace(/Model$/, '') || cls}Weights`;
  const optionsType = `${cls}LoadOptions`;
  const stateType = `${cls}State`;
  const url = (p: string) => `new URL(${JSON.stringify('./' + p)}, import.meta.url)`;
  const variant = (w: WeightDType) => tm.Writers.object(Object.fromEntries(Object.entries(layout[w] ?? {}).map(([t, fs]) =>
    [t, tm.Writers.object(Object.fromEntries(fs.map((f) => [JSON.stringify(f), url(`${w}/${f}`)])))])));
  const packaged = TARGETS.filter((t) => t.packaged);
  const targetType = ['auto', ...packaged.map((t) => t.name)].map((n) => `'${n}'`).join(' | ');
  // the packaged targets' runtimes, loaded on first use, in the registry's order ('auto' tries them so)
  const runtimes = tm.Writers.object(Object.fromEntries(packaged.map((t) =>
    [t.name, `async () => (await import(${JSON.stringify('./' + t.packaged)})).runtime`])));

  const klass: OptionalKind<ClassDeclarationStructure> = {
    name: cls,
    isExported: true,
    docs: [`${name}: an RWKV-6 model compiled by rwkvc for ${config.nLayer} layers × ${config.nEmbd}, vocabulary ${config.vocabSize}.\n\n` +
      `One instance is one sequence with its own recurrent state; \`state.fork()\` gives another sequence on the same loaded model.`],
    properties: [
      { name: 'config', isStatic: true, isReadonly: true, type: cfgType, initializer: 'config', docs: ['The config this package was compiled for.'] },
      { name: 'config', isReadonly: true, type: cfgType, initializer: 'config', docs: ['The config this package was compiled for.'] },
      { name: 'state', isReadonly: true, type: stateType, docs: ['Save, restore, fork and serialise this sequence\'s state.'] },
      { name: 'shared', scope: tm.Scope.Private, isReadonly: true, type: 'SharedModel' },
      { name: 'session', scope: tm.Scope.Private, isReadonly: true, type: 'Session' },
      { name: 'disposed', scope: tm.Scope.Private, initializer: 'false' },
    ],
    ctors: [{
      scope: tm.Scope.Private,
      parameters: [{ name: 'shared', type: 'SharedModel' }, { name: 'session', type: 'Session' }],
      statements: [
        'this.shared = shared;',
        'this.session = session;',
        (w) => w.write('this.state = ').inlineBlock(() => {
          w.writeLine('save: () => this.live().state.save(),');
          w.writeLine('restore: (snapshot) => this.live().state.restore(snapshot),');
          w.writeLine(`fork: async () => { const s = await this.live().fork(); return new ${cls}(this.shared.retain(), s); },`);
          w.writeLine('toBytes: () => this.live().state.toBytes(),');
          w.writeLine("fromBytes: (bytes) => this.live().state.fromBytes(bytes, 'state'),");
          w.writeLine('reset: () => this.live().reset(),');
        }).write(';'),
      ],
    }],
    methods: [
      {
        name: 'load', isStatic: true, isAsync: true, returnType: `Promise<${cls}>`,
        docs: ['Load the model with the weights of a checkpoint (.pth or safetensors, official or Hugging Face names): its bytes, a Blob or File (read with Blob.slice(), one weight at a time), or a path in Node (read tensor by tensor) or a URL in a browser (fetched). ' +
          'Runs on WebGPU when `navigator.gpu` gives an adapter, else on WASM (`target` chooses).'],
        parameters: [
          { name: 'checkpoint', type: 'Uint8Array | ArrayBuffer | string | Blob' },
          { name: 'options', type: optionsType, initializer: '{}' },
        ],
        statements: [
          'const shared = await loadShared(platform, PACKAGE, checkpoint, options, RUNTIMES);',
          `return new ${cls}(shared, shared.session());`,
        ],
      },
      {
        name: 'prefill', returnType: 'Promise<Float32Array>',
        docs: ['Feed tokens (any number, run in chunks of the compiled prefill size); returns the logits after the last one ([vocabSize]).'],
        parameters: [{ name: 'tokens', type: 'ArrayLike<number>' }],
        statements: ['return this.live().prefill(tokens);'],
      },
      {
        name: 'decode', returnType: 'Promise<Float32Array>',
        docs: ['Feed one token; returns the logits for the next.'],
        parameters: [{ name: 'token', type: 'number' }],
        statements: ['return this.live().decode(token);'],
      },
      {
        name: 'generate', returnType: 'AsyncGenerator<string>',
        docs: ['Generate text after `prompt` (text, or token ids), piece by piece. Needs `vocab` at load.'],
        parameters: [{ name: 'prompt', type: 'string | number[]' }, { name: 'options', type: 'GenerateOptions', initializer: '{}' }],
        statements: ['return this.live().generate(prompt, options);'],
      },
      {
        name: 'generateIds', returnType: 'AsyncGenerator<number>',
        docs: ['Generate token ids after `prompt` (token ids; text needs `vocab`), one by one: no vocabulary needed. Ends after maxTokens or at a stop token (not yielded).'],
        parameters: [{ name: 'prompt', type: 'string | number[]' }, { name: 'options', type: 'GenerateOptions', initializer: '{}' }],
        statements: ['return this.live().generateIds(prompt, options);'],
      },
      {
        name: 'tokenize', returnType: 'number[]',
        docs: ['Token ids of a text (needs `vocab` at load).'],
        parameters: [{ name: 'text', type: 'string' }],
        statements: ['return this.tokenizer().encode(text);'],
      },
      {
        name: 'detokenize', returnType: 'string',
        docs: ['The text of token ids (needs `vocab` at load).'],
        parameters: [{ name: 'ids', type: 'readonly number[]' }],
        statements: ['return this.tokenizer().decode(ids);'],
      },
      {
        name: 'decodeBatch', isStatic: true, returnType: 'Promise<Float32Array[]>',
        docs: ['Decode one token for each of several sequences of one loaded model (an instance and its forks) together; returns each one\'s logits.'],
        parameters: [{ name: 'sequences', type: `readonly ${cls}[]` }, { name: 'tokens', type: 'readonly number[]' }],
        statements: ['return decodeBatch(sequences.map((s) => s.live()), tokens);'],
      },
      {
        name: 'dispose', returnType: 'void',
        docs: ['Release this sequence; the model (memory, threads) is freed when it and all its forks are disposed.'],
        statements: ['if (this.disposed) return;', 'this.disposed = true;', 'this.shared.release();'],
      },
      {
        name: 'live', scope: tm.Scope.Private, returnType: 'Session',
        statements: [`if (this.disposed) throw new UserError('${cls}: this sequence was disposed');`, 'this.shared.check();', 'return this.session;'],
      },
      {
        name: 'tokenizer', scope: tm.Scope.Private, returnType: 'WorldTokenizer',
        statements: [
          'const t = this.shared.tokenizer;',
          `if (!t) throw new UserError('${cls}: no vocabulary (load with { vocab })');`,
          'return t;',
        ],
      },
    ],
    getAccessors: [
      { name: 'logits', returnType: 'Float32Array | null', docs: ['The logits after the last token fed (null before any).'], statements: ['return this.live().logits;'] },
      { name: 'weights', returnType: weightsType, docs: ['The weight storage this instance runs with.'], statements: [`return this.shared.weights as ${weightsType};`] },
      { name: 'vocabSize', returnType: 'number', docs: ['Token ids are 0 … vocabSize − 1.'], statements: ['return config.vocabSize;'] },
      { name: 'backend', returnType: `BackendInfo & { target: ${packaged.map((t) => `'${t.name}'`).join(' | ')} }`, docs: ['What runs this model: WASM (threads, SIMD variant) or WebGPU (the adapter), and why, when it is less than was asked for.'], statements: [`return this.shared.backend as BackendInfo & { target: ${packaged.map((t) => `'${t.name}'`).join(' | ')} };`] },
    ],
  };

  return {
    statements: [
      {
        kind: tm.StructureKind.ImportDeclaration, moduleSpecifier: './runtime/session.ts',
        namedImports: [{ name: 'Session', isTypeOnly: true }, { name: 'GenerateOptions', isTypeOnly: true }, { name: 'StateSnapshot', isTypeOnly: true }],
      },
      {
        kind: tm.StructureKind.ImportDeclaration, moduleSpecifier: './runtime/package/model.ts',
        namedImports: ['decodeBatch', 'loadShared', { name: 'BackendInfo', isTypeOnly: true }, { name: 'PackageDescription', isTypeOnly: true }, { name: 'SharedModel', isTypeOnly: true }, { name: 'TargetRuntimes', isTypeOnly: true }],
      },
      { kind: tm.StructureKind.ImportDeclaration, moduleSpecifier: './kernels/errors.ts', namedImports: ['UserError'] },
      { kind: tm.StructureKind.ImportDeclaration, moduleSpecifier: './runtime/world-tokenizer.ts', namedImports: [{ name: 'WorldTokenizer', isTypeOnly: true }] },
      { kind: tm.StructureKind.ImportDeclaration, moduleSpecifier: PLATFORM.specifier, namedImports: ['platform'] },
      { kind: tm.StructureKind.ExportDeclaration, moduleSpecifier: './runtime/session.ts', namedExports: [{ name: 'GenerateOptions', isTypeOnly: true }, { name: 'StateSnapshot', isTypeOnly: true }] },
      { kind: tm.StructureKind.ExportDeclaration, moduleSpecifier: './kernels/errors.ts', namedExports: ['UserError'] },
      { kind: tm.StructureKind.ExportDeclaration, moduleSpecifier: './runtime/package/model.ts', namedExports: [{ name: 'BackendInfo', isTypeOnly: true }] },
      {
        kind: tm.StructureKind.VariableStatement, isExported: true, declarationKind: tm.VariableDeclarationKind.Const,
        docs: ['The model config this package was compiled for (a checkpoint must have these shapes).'],
        declarations: [{
          name: 'config',
          initializer: tm.Writers.assertion(tm.Writers.object(Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)]))), 'const'),
        }],
      },
      { kind: tm.StructureKind.TypeAlias, isExported: true, name: cfgType, type: 'typeof config' },
      {
        kind: tm.StructureKind.TypeAlias, isExported: true, name: weightsType,
        docs: [`The weight storages compiled into this package (default ${weights[0]}).`],
        type: weights.map((w) => JSON.stringify(w)).join(' | '),
      },
      {
        kind: tm.StructureKind.Interface, isExported: true, name: optionsType,
        properties: [
          { name: 'target', hasQuestionToken: true, type: targetType, docs: ["'auto' (default): the first target that can run here, in this order: " + packaged.map((t) => t.name).join(', ') + ' (WebGPU when `navigator.gpu` gives an adapter, else WASM); or one by name.'] },
          { name: 'threads', hasQuestionToken: true, type: 'number', docs: ['WASM worker threads (default: every core; in a browser they need a cross-origin isolated page, else 1).'] },
          { name: 'weights', hasQuestionToken: true, type: weightsType, docs: [`Which compiled weight storage to run (default ${weights[0]}).`] },
          { name: 'vocab', hasQuestionToken: true, type: 'string | Uint8Array', docs: ['The World vocabulary rwkv_vocab_v20230424.txt: a path (Node) or URL (browser), or its bytes. Needed for text.'] },
          { name: 'relaxed', hasQuestionToken: true, type: 'boolean', docs: ['Use the relaxed-SIMD (FMA) kernels when the engine supports them (default true).'] },
          { name: 'onProgress', hasQuestionToken: true, type: '(phase: string, done: number, total: number) => void', docs: ['Progress while loading.'] },
        ],
      },
      {
        kind: tm.StructureKind.Interface, isExported: true, name: stateType,
        properties: [
          { name: 'save', type: '() => Promise<StateSnapshot>', docs: ['A copy of the state (and the last logits).'] },
          { name: 'restore', type: '(snapshot: StateSnapshot) => Promise<void>', docs: ['Go back to a saved state.'] },
          { name: 'fork', type: `() => Promise<${cls}>`, docs: ['A second sequence starting from this state (same loaded model).'] },
          { name: 'toBytes', type: '() => Promise<Uint8Array>', docs: ['The state as a versioned file, tied to this model\'s config.'] },
          { name: 'fromBytes', type: '(bytes: Uint8Array) => Promise<void>', docs: ['Restore a state from toBytes().'] },
          { name: 'reset', type: '() => Promise<void>', docs: ['Back to the zero state.'] },
        ],
      },
      {
        kind: tm.StructureKind.VariableStatement, declarationKind: tm.VariableDeclarationKind.Const,
        declarations: [{ name: 'RUNTIMES', type: 'TargetRuntimes', initializer: runtimes }],
      },
      {
        kind: tm.StructureKind.VariableStatement, declarationKind: tm.VariableDeclarationKind.Const,
        declarations: [{
          name: 'PACKAGE', type: 'PackageDescription',
          initializer: tm.Writers.object({
            name: JSON.stringify(name),
            config: 'config',
            variants: tm.Writers.object(Object.fromEntries(weights.map((w) => [w, variant(w)]))),
          }),
        }],
      },
      { ...klass, kind: tm.StructureKind.Class },
      { kind: tm.StructureKind.ExportAssignment, isExportEquals: false, expression: cls },
    ],
  };
}

// ------------------------------------------ package.json, README ------------------------------------------

function packageJson(name: string, version: string, plan: KernelPlan, cls: string) {
  const c = plan.config;
  return {
    name,
    version,
    description: `${cls}: RWKV-6 ${plan.model} (${c.nLayer} layers, ${c.nEmbd} wide, vocabulary ${c.vocabSize}) compiled by rwkvc to WASM-SIMD and WebGPU; bring your own checkpoint`,
    type: 'module',
    main: './index.js',
    types: './index.d.ts',
    exports: {
      '.': { types: './index.d.ts', default: './index.js' },
      './plan.json': './plan.json',
      './runtime/*.js': { types: './runtime/*.d.ts', default: './runtime/*.js' },
      './package.json': './package.json',
    },
    imports: {
      [PLATFORM.specifier]: {
        types: `./${PLATFORM.web.replace(/\.ts$/, '.d.ts')}`,
        node: `./${PLATFORM.node.replace(/\.ts$/, '.js')}`,
        default: `./${PLATFORM.web.replace(/\.ts$/, '.js')}`,
      },
    },
    sideEffects: false,
    engines: { node: '>=20' },
    keywords: ['rwkv', 'rwkv-6', 'wasm', 'webgpu', 'llm'],
    /** Marks a directory rwkvc may overwrite with a new package. */
    rwkvc: { kind: 'package', model: plan.model },
  };
}

function readme(name: string, cls: string, config: ModelConfig, weights: WeightDType[], plan: KernelPlan): string {
  const rows = Object.entries(config).map(([k, v]) => `| ${k} | ${v} |`).join('\n');
  const V = config.vocabSize;
  // example token ids this model has (0 … V−1), whatever its vocabulary size
  const [a, b, c, d, e, f] = [510, 3158, 8930, 33, 11, 22].map((x) => x % V);
  // text needs the World vocabulary (ids up to 65535): show it only for a model with that many tokens
  const world = V >= 65536;
  const text = world
    ? `const model = await ${cls}.load('model.pth', { vocab: 'rwkv_vocab_v20230424.txt', threads: 4 });
for await (const piece of model.generate('User: hi\\n\\nAssistant:', { maxTokens: 50, temperature: 0 })) process.stdout.write(piece);
const ids = model.tokenize('The Eiffel tower is in the city of');   // token ids (needs vocab)
`
    : `const model = await ${cls}.load('model.pth', { threads: 4 });   // vocabulary ${V}: not the World one, so token ids
const ids = [${a}, ${b}, ${c}];                                   // any ids in 0 … ${V - 1}
`;
  return `# ${name}

An RWKV-6 model (${plan.model}) compiled by rwkvc ${rwkvcVersion()} (\`rwkvc compile … --emit package\`) to WASM-SIMD kernels and WebGPU (WGSL)
shaders: an ES module package with no dependencies, for Node ≥ 20, browsers and bundlers. It holds the compiled kernels, not the weights:
load any checkpoint of this shape (official \`.pth\`, safetensors, Hugging Face names).

| config | |
|---|---|
${rows}

Weights compiled: ${weights.join(', ')} (default ${weights[0]}). Prefill chunk: ${plan.prefill.maxT} tokens. Token ids are 0 … ${V - 1}.

\`\`\`js
import { ${cls} } from '${name}';

${text}const logits = await model.prefill(ids);                 // Float32Array [${V}] after the last token
const next = await model.decode(${d});
for await (const id of model.generateIds([${a}, ${b}], { maxTokens: 8, temperature: 0 })) console.log(id);   // ids in, ids out: no vocabulary needed
const snap = await model.state.save();                  // restore(snap) later
const other = await model.state.fork();                 // a second sequence from here
const [x, y] = await ${cls}.decodeBatch([model, other], [${e}, ${f}]);
const bytes = await model.state.toBytes();              // a state file; fromBytes(bytes) restores it
model.dispose(); other.dispose();
\`\`\`

In a browser, pass the checkpoint's bytes (\`new Uint8Array(await file.arrayBuffer())\`) or a URL; the
kernels are fetched beside the module (\`new URL('./${weights[0]}/model.wasm', import.meta.url)\`, which bundlers
follow). \`load\` runs on WebGPU when \`navigator.gpu\` gives an adapter, else on WASM; \`{ target: 'wgsl' | 'wasm' }\`
chooses, and \`model.backend\` says what runs. WASM threads (Web Workers) need a cross-origin isolated page
(headers \`Cross-Origin-Opener-Policy: same-origin\`, \`Cross-Origin-Embedder-Policy: require-corp\`); without
it WASM runs 1 thread. Without a bundler, map \`#platform\` to \`./runtime/package/platform-web.js\` in an import map.
To keep a picked checkpoint across reloads (Origin Private File System, else IndexedDB), so the user picks it
once: \`const cache = openBrowserCache('my-app')\` from \`./runtime/package/browser-cache.js\`; then
\`await cache.store('checkpoint', file.name, file)\` after a load, \`(await cache.read('checkpoint'))?.file\` on the
next visit (a Blob: pass \`new Uint8Array(await blob.arrayBuffer())\` to \`load\`), \`cache.forget()\` to drop it.
In Node, \`target: 'wgsl'\` needs the \`webgpu\` npm package (Dawn): \`npm install webgpu\`.

Files: \`index.js\` (entry, \`index.d.ts\` types), \`plan.json\` (the kernel plan), \`<weights>/\` (WASM kernels:
model.wasm, model.relaxed.wasm, layout.json; WebGPU: wgsl.json, the plan and its shaders), \`runtime/\`,
\`kernels/\`, \`targets/\` (the runtime).
`;
}
