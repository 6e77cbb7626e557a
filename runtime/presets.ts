/** Named model shapes, for compiling and benchmarking without a checkpoint (RWKV6.md §6). */
import type { ModelConfig } from '../kernels/config.ts';

const finch = (nLayer: number, nEmbd: number, vocabSize = 65536): ModelConfig => ({
  nLayer, nEmbd, headSize: 64, nHead: nEmbd / 64, dimFfn: Math.floor((nEmbd * 3.5) / 32) * 32, vocabSize,
  loraMix: nEmbd >= 4096 ? 64 : 32, loraDecay: nEmbd >= 4096 ? 128 : 64,
});

export const PRESETS: Record<string, ModelConfig> = {
  'finch-tiny': finch(2, 128, 256),
  'bench-0.1b': finch(12, 768),
  'finch-1b6': finch(24, 2048),
  'finch-3b': finch(32, 2560),
  'finch-7b': finch(32, 4096),
  'finch-14b': finch(61, 4096),
};
