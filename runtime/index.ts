/**
 * `rwkvc/runtime`: running a compiled model without the compiler. A Session over any target's
 * TargetModel (generate, prefill, decode, state), the sampler, the World tokenizer, checkpoint readers
 * and writers, state files, presets and seeded random checkpoints. `rwkvc` (driver/index.ts) adds
 * `load`, which compiles a model description for a checkpoint and returns a Session.
 */
export { Session, checkTokens, type GenerateOptions, type StateSnapshot } from './session.ts';
export { argmax, createRng, sample, StopMatcher, TokenHistory, type Rng, type SamplingOptions } from './sampler.ts';
export { loadWorldTokenizer, WorldTokenizer, END_OF_TEXT, parseWorldVocab, parseWorldVocabBytes, type StreamDecoder } from './tokenizer.ts';
export { encodeState, decodeState } from './state-file.ts';
export { openModel, initialState, type OpenModel } from './model.ts';
export * from './checkpoint/index.ts';
export { PRESETS } from './presets.ts';
export { writeRandomModel, randomTensors } from './random-model.ts';
export { UserError } from '../kernels/errors.ts';
export type { ModelConfig } from '../kernels/config.ts';
export type { StateTensors, TargetModel } from '../targets/backend.ts';
