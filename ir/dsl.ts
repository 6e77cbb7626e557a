/** What a model description imports: the builder, tensors and the config type. */
export { Builder, Tensor } from './builder.ts';
export type { Graph } from './node.ts';
export type { AnyModelConfig, ModelConfig } from '../kernels/config.ts';

/** A model description: an ordinary function from a config to a graph (the default export of a DSL file). */
export type ModelDescription = (cfg: import('../kernels/config.ts').ModelConfig) => import('./node.ts').Graph;
