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

/**
 * What a config of another family than Finch adds (kept out of ModelConfig's required keys, which config
 * files list): `family` absent is RWKV-6 "Finch"; 'qrwkv6' is RWKV6Qwen2 (docs/qrwkv6.md).
 */
export interface FamilyFields {
  family?: 'finch' | 'qrwkv6';
  /** qrwkv6: k/v heads (divides nHead). */
  nKvHead?: number;
  /** qrwkv6: RMSNorm epsilon (config.json rms_norm_eps). */
  normEps?: number;
}
export type AnyModelConfig = ModelConfig & FamilyFields;

/** The family of a config (Finch when it says none). */
export const familyOf = (cfg: ModelConfig): 'finch' | 'qrwkv6' => (cfg as AnyModelConfig).family ?? 'finch';
