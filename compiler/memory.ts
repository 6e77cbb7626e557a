/**
 * The memory plan: activation buffers live from the kernel that writes them to the last kernel that
 * reads them; buffers whose lifetimes do not overlap share arena bytes (greedy first fit, largest
 * first). Sizes are for maxT rows, so decode needs a T-independent arena and prefill one linear in
 * the chunk. State is updated in place and lives outside the arena.
 */
import type { BufferDecl, Kernel } from '../kernels/plan.ts';
import { numel } from '../ir/types.ts';
import { kernelBuffers } from '../kernels/program.ts';

const ALIGN = 256; // enough for WebGPU's minStorageBufferOffsetAlignment and SIMD loads

export function planMemory(kernels: Kernel[], buffers: BufferDecl[], maxT: number): number {
  const acts = buffers.filter((b) => b.role === 'activation');
  const first = new Map<string, number>(), last = new Map<string, number>();
  for (let i = 0; i < kernels.length; i++) {
    const bs = kernelBuffers(kernels[i]);
    for (let j = 0; j < bs.length; j++) {
      if (!first.has(bs[j])) first.set(bs[j], i);
      last.set(bs[j], i);
    }
  }
  const size = (b: BufferDecl) => Math.ceil((numel(b.shape, maxT) * 4) / ALIGN) * ALIGN;
  // by offset, ties in placing order: the buffers a new one's lifetime clashes with are then visited lowest first
  const placed: { start: number; end: number; off: number; size: number }[] = [];
  let peak = 0;
  const sizes = new Map<BufferDecl, number>(); // once per buffer, not per comparison of the sort
  for (const b of acts) sizes.set(b, size(b));
  for (const b of [...acts].sort((p, q) => sizes.get(q)! - sizes.get(p)! || p.name.localeCompare(q.name))) {
    const start = first.get(b.name) ?? 0, end = last.get(b.name) ?? 0, sz = sizes.get(b)!;
    let off = 0;
    // indexed: this loop runs ~n²/2 times for n buffers (thousands at 61 layers), an iterator's steps would be garbage
    for (let i = 0; i < placed.length; i++) {
      const p = placed[i];
      if (off + sz <= p.off) break; // this and every later one start above the gap
      if (p.start <= end && start <= p.end) off = Math.max(off, p.off + p.size);
    }
    let at = placed.length;
    while (at > 0 && placed[at - 1].off > off) at--;
    placed.splice(at, 0, { start, end, off, size: sz });
    b.offset = off;
    peak = Math.max(peak, off + sz);
  }
  return peak;
}
