/** Named model shapes, for compiling and benchmarking without a checkpoint (RWKV6.md §6). */
import type { AnyModelConfig, ModelConfig } from '../kernels/config.ts';

const finch = (nLayer: number, nEmbd: number, vocabSize = 65536): ModelConfig => ({
  nLayer, nEmbd, headSize: 64, nHead: nEmbd / 64, dimFfn: Math.floor((nEmbd * 3.5) / 32) * 32, vocabSize,
  loraMix: nEmbd >= 4096 ? 64 : 32, loraDecay: nEmbd >= 4096 ? 128 : 64,
});

/** QRWKV6 (docs/qrwkv6.md): Qwen2.5 shapes with head size C / H, grouped k/v heads. */
const qrwkv6 = (nLayer: number, nEmbd: number, nHead: number, nKvHead: number, dimFfn: number, vocabSize: number, normEps: number): AnyModelConfig => ({
  family: 'qrwkv6', nLayer, nEmbd, headSize: nEmbd / nHead, nHead, nKvHead, dimFfn, vocabSize,
  loraMix: nEmbd >= 4096 ? 64 : 32, loraDecay: nEmbd >= 4096 ? 128 : 64, normEps,
});

export const PRESETS: Record<string, ModelConfig> = {
  'finch-tiny': finch(2, 128, 256),
  'bench-0.1b': finch(12, 768),
  'finch-1b6': finch(24, 2048),
  'finch-3b': finch(32, 2560),
  'finch-7b': finch(32, 4096),
  'finch-14b': finch(61, 4096),
  // a few layers, kv heads < heads, head size 32 (a CUDA warp)
  'qrwkv6-tiny': qrwkv6(3, 128, 4, 2, 320, 256, 1e-6),
  'qrwkv6-7b-shape': qrwkv6(28, 3584, 28, 4, 18944, 152064, 1e-6), // Qwen2.5-7B
  'qrwkv6-32b-shape': qrwkv6(64, 5120, 40, 8, 27648, 152064, 1e-5), // Qwen2.5-32B, QRWKV6-32B
};
