/**
 * Import rules for rwkvc, checked by test/architecture.test.ts (part of `npm test`).
 * Run by hand: npx depcruise --config .dependency-cruiser.cjs kernels ir compiler targets runtime driver cli bench examples test
 *
 * The layers, ground floor first; a module may import its own layer and the layers before it, never one after:
 *
 *   kernels/   the plan contract (KernelPlan, Expr vocabulary, plan helpers) and the diagnostics (kernels/errors.ts)
 *   ir/        the graph, its DSL and interpreter                      (may import kernels)
 *   compiler/  passes, lowering: IR -> plan                              (ir, kernels)
 *   targets/   codegen and runtime per target; they consume the plan    (kernels only, see below)
 *   runtime/   sessions, sampler, tokenizer, checkpoints, the package   (targets, kernels)
 *   driver/    DSL loading + compile + target load, package emitter     (everything but cli)
 *   cli/       the command line                                         (anything)
 *
 * Off the chain: bench/ is a driver (everything but cli); examples/ are DSL model definitions (ir only);
 * test/ may import anything, and nothing but tests imports test/.
 *
 * Type-only imports (`import type`) count like any other: a type is still coupling, and a layer that
 * needs an upper layer's type has the type in the wrong layer. Dynamic `import()` counts too: a lazy
 * import of codegen still ships codegen.
 */

/** Every folder of our own source; imports of anything else (node_modules, node: builtins) are not layer edges. */
const OURS = '^(kernels|ir|compiler|targets|runtime|driver|cli|bench|examples|test)/';

/** A layer rule: modules under `from` may import, of our own source, only modules under `allowed`. */
function layer(name, comment, from, allowed, fromNot) {
  return {
    name,
    comment,
    severity: 'error',
    from: fromNot ? { path: from, pathNot: fromNot } : { path: from },
    to: { path: OURS, pathNot: allowed },
  };
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    layer('kernels-is-the-ground-floor',
      'kernels/ (the plan contract and diagnostics) is what every layer shares, so it imports nothing of ours: ' +
      'anything it imported would be dragged into every target and the shipped runtime.',
      '^kernels/', '^kernels/'),
    layer('ir-only-on-kernels',
      'ir/ (graph, DSL, interpreter) sits on kernels/ only: the compiler, targets and runtime build on the IR, not the other way round.',
      '^ir/', '^(ir|kernels)/'),
    layer('compiler-only-on-ir-and-kernels',
      'compiler/ turns IR into a plan; it must not know about targets, runtime or drivers (loading and packaging live in driver/).',
      '^compiler/', '^(compiler|ir|kernels)/'),
    layer('targets-consume-the-plan-only',
      'A target consumes the KernelPlan (kernels/) only: no IR, no compiler, so a new target depends on nothing but the plan contract ' +
      'and the shared GPU layer (targets/gpu/). targets/ref/ is the one exception (next rule).',
      '^targets/', '^(targets|kernels)/', '^targets/ref/'),
    layer('ref-target-may-read-ir',
      'targets/ref/ is the reference interpreter: it runs the unfused IR graph, so it may import ir/ as well as the plan; still no compiler, runtime or driver.',
      '^targets/ref/', '^(targets|ir|kernels)/'),
    layer('runtime-on-targets-and-kernels',
      'runtime/ (sessions, sampler, tokenizer, checkpoints, the shipped package) runs a loaded target; compiling (ir/, compiler/) ' +
      'belongs to driver/, so the runtime ships without the compiler.',
      '^runtime/', '^(runtime|targets|kernels)/'),
    layer('driver-not-on-cli',
      'driver/ wires DSL loading, compiling, target loading and packaging; it may use every layer below it, but not the CLI (or tests).',
      '^driver/', '^(driver|runtime|targets|compiler|ir|kernels|bench|examples)/'),
    layer('bench-like-driver',
      'bench/ is a driver of its own (it compiles and runs models); like driver/ it must not import the CLI (or tests).',
      '^bench/', '^(bench|driver|runtime|targets|compiler|ir|kernels|examples)/'),
    layer('examples-only-on-the-dsl',
      'examples/ are model definitions written in the DSL (ir/), loaded by path; they show what a user writes, so they import the DSL only.',
      '^examples/', '^(examples|ir)/'),
    {
      name: 'no-circular',
      comment: 'Modules that import each other (directly or round a loop) cannot be understood, tested or moved one at a time; ' +
        'a cycle usually means a piece belongs in a third module both can import.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'runtime-never-reaches-codegen',
      comment: 'A target\'s runtime module (targets/*/runtime.ts) and the runtime layer (runtime/: sessions, the shipped package) ' +
        'load an artifact and run it; neither they nor anything they import, lazily or not, may reach codegen ' +
        '(targets/*/codegen.ts, handlebars, wabt, ts-morph), so the package ships runtime files as they are.',
      severity: 'error',
      from: { path: ['^targets/[^/]+/runtime\\.ts$', '^runtime/'] },
      to: {
        path: ['^targets/[^/]+/codegen\\.ts$', '(^|/)node_modules/(handlebars|wabt|ts-morph)/'],
        reachable: true,
      },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // node_modules is followed no further than the package itself (handlebars, wabt, ts-morph stay visible to the rules).
    exclude: { path: ['^test/fixtures/', '^(out|dist)/'] },
    // Parse TypeScript before compilation so `import type` edges are seen (and counted, see above).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // Resolve packages the way Node's ESM loader does (package.json "exports" with the import condition).
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
    skipAnalysisNotInRules: true,
  },
};
