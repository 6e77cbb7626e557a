/**
 * A target's weights from an open checkpoint, portable (Node and browsers): each plan weight made as its
 * source says (transposed, ln0 folded: kernels/weights.ts), with `rows` reading just a slice of a stored
 * matrix from the file, and, over a Blob checkpoint, `prepare` fetching a weight's bytes before it is read.
 */
import { materializeWeight } from '../../kernels/weights.ts';
import type { KernelPlan, WeightDecl } from '../../kernels/plan.ts';
import type { WeightProvider } from '../../targets/backend.ts';
import type { Checkpoint } from './checkpoint.ts';
import type { BlobCheckpoint } from './blob.ts';

export function checkpointProvider(
  plan: KernelPlan, ckpt: Checkpoint & { fetch?: BlobCheckpoint['fetch'] },
  onProgress?: (phase: string, done: number, total: number) => void,
): WeightProvider {
  let done = 0;
  const seen = new Set<string>();
  // Progress counts weights: a weight read in pieces counts once, at its first piece.
  const tick = (d: WeightDecl) => {
    if (seen.has(d.name)) return;
    seen.add(d.name);
    onProgress?.('weights', ++done, plan.weights.length);
  };
  const read = (n: string) => ckpt.readF32(n);
  const provider: WeightProvider = (d) => {
    const v = materializeWeight(d.source, read);
    tick(d);
    return v;
  };
  // Rows of a stored (not transposed) tensor come straight from the file; an ln0 fold works row by row.
  // A transposed or row-repeated one (QRWKV6's k/v, kernels/weights.ts) has other rows than the file's.
  // Any transform but the row-wise ln0 fold (transpose, QRWKV6's row repeat, one added later) gets other rows than the file's.
  const fileRows = (d: WeightDecl) => !Object.keys(d.source).some((k) => k !== 'tensor' && k !== 'stored' && k !== 'fold' && (d.source as unknown as Record<string, unknown>)[k]);
  let whole: { name: string; v: Float32Array } | undefined;
  provider.rows = (d, row0, rows) => {
    tick(d);
    if (!fileRows(d)) {
      const cols = d.shape[d.shape.length - 1]!;
      // made once and kept while its slices are asked for (the last such weight only)
      if (whole?.name !== d.name) whole = { name: d.name, v: materializeWeight(d.source, read) };
      return whole.v.subarray(row0 * cols, (row0 + rows) * cols);
    }
    const part = ckpt.readRowsF32(d.source.tensor, row0, rows);
    return materializeWeight(d.source, (n) => (n === d.source.tensor ? part : read(n)));
  };
  const fetch = ckpt.fetch;
  if (fetch) provider.prepare = (d, rows) => fetch([
    // rows of a weight whose rows are the file's: only those rows' bytes (a 65536-row head is 320 MiB of bf16)
    rows && fileRows(d) ? { name: d.source.tensor, ...rows } : d.source.tensor,
    ...(d.source.fold ? [d.source.fold.w, d.source.fold.b] : []),
  ]);
  return provider;
}
