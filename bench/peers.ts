/**
 * rwkv.cpp (native C/ggml, AVX-512), measured on this kind of machine on a model of exactly the
 * bench-0.1b shape: decode with logits, median ms/token, and prefill of 512 tokens (issue #4). These
 * are the numbers our WASM target is compared with in `rwkvc bench`.
 */
export const RWKV_CPP_BENCH_01B = {
  decodeMsPerToken: {
    f32: { 1: 23.8, 2: 16.9 }, // FP32
    f16: { 1: 12.5, 2: 11.5 }, // FP16 (also the peer for bf16)
    bf16: { 1: 12.5, 2: 11.5 },
    int8: { 1: 10.5, 2: 9.8 }, // Q8_0
  } as Record<string, Record<number, number>>,
  prefillTokensPerSecond: { f32: { 1: 279, 2: 427 } } as Record<string, Record<number, number>>,
  bandwidthGBs: { 1: 30, 2: 59 } as Record<number, number>,
};
