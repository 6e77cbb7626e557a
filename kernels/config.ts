/** The shape of an RWKV-6 model, as the loader infers it from a checkpoint (see RWKV6.md §1). */
export interface ModelConfig {
  nLayer: number;
  nEmbd: number;
  headSize: number;
  nHead: number;
  dimFfn: number;
  vocabSize: number;
  loraMix: number;
  loraDecay: number;
}
