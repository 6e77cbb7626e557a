/**
 * How many WASM threads the demo starts with, from the bytes of weights a decode step streams.
 *
 * Threads split each matrix's rows, and every kernel ends in a barrier the workers meet at: a fixed cost per
 * kernel per token, paid whatever the model's size. On small models that cost is the whole step: on this
 * project's 2-core machine (Node 20 WASM, finch-tiny fixture, 2.3 MiB of f32 weights per token) 1 thread
 * decoded 950–2650 tokens/s and 2 threads 140–230 (~4–5 ms of coordination per token); on bench-0.1b (0.27 GiB
 * f16, 0.5 GiB f32 per token) 2 threads ran level with 1 or up to 1.4× faster (11 vs 15 tok/s f16). A thread
 * pays for itself once its share of the weights takes several times that coordination to stream: at ≥ 5 GB/s
 * per core, 16 MiB per thread is ~3 ms. So: one thread per 16 MiB streamed per token, at most every core.
 */

/** Weights streamed per decode token, per extra thread, below which that thread costs more than it gains. */
export const BYTES_PER_THREAD = 16 * 2 ** 20;

/** Bytes per weight in each storage format (int8/q4: ggml blocks of 32 with their scales). */
const BYTES: Record<string, number> = { f32: 4, bf16: 2, f16: 2, int8: 34 / 32, q4_0: 18 / 32, q4_1: 20 / 32 };

/** A kernel plan's weights as the page reads them from the package's plan.json. */
export interface PlanWeights { weights: { name: string; shape: number[]; dtype: string }[] }

/**
 * Bytes of weights one decode token streams: every weight except the embedding, of which a token reads one
 * row (negligible).
 */
export function bytesPerToken(plan: PlanWeights): number {
  let b = 0;
  for (const w of plan.weights) {
    if (w.name.startsWith('emb.')) continue;
    b += w.shape.reduce((a, n) => a * n, 1) * (BYTES[w.dtype] ?? 4);
  }
  return Math.round(b);
}

/** The thread count for `bytes` per token on `cores` cores (1 when the page cannot run workers). */
export function autoThreads(bytes: number, cores: number, isolated: boolean): number {
  if (!isolated) return 1;
  return Math.max(1, Math.min(cores, Math.floor(bytes / BYTES_PER_THREAD)));
}
