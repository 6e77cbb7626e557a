/**
 * `rwkvc`: the library entry. `load(checkpoint, options)` compiles a model description (examples/finch by
 * default) for the checkpoint's shape, loads it on a target and returns a Session (generate, prefill,
 * decode, state, fork). The runtime alone is `rwkvc/runtime`; the DSL for writing model descriptions is
 * `rwkvc/dsl`; the compiler is `rwkvc/compiler`.
 */
export { load, type LoadOptions } from './load.ts';
export { buildGraph, DEFAULT_DSL } from './dsl.ts';
export { MAX_THREADS } from './threads.ts';
export { emitPackage, type EmitPackageOptions, type EmittedPackage } from './emit-package.ts';
export { rwkvcVersion } from './version.ts';
export { Session, type GenerateOptions, type StateSnapshot } from '../runtime/session.ts';
export { loadWorldTokenizer, WorldTokenizer } from '../runtime/tokenizer.ts';
export { PRESETS } from '../runtime/presets.ts';
export { UserError } from '../kernels/errors.ts';
export type { ModelConfig } from '../kernels/config.ts';
export type { WeightDType } from '../kernels/plan.ts';
