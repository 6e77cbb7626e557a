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
  kernels.forEach((k, i) => {
    for (const b of kernelBuffers(k)) {
      if (!first.has(b)) first.set(b, i);
      last.set(b, i);
    }
  });
  const size = (b: BufferDecl) => Math.ceil((numel(b.shape, maxT) * 4) / ALIGN) * ALIGN;
  const placed: { start: number; end: number; off: number; size: number }[] = [];
  let peak = 0;
  for (const b of [...acts].sort((p, q) => size(q) - size(p) || p.name.localeCompare(q.name))) {
    const start = first.get(b.name) ?? 0, end = last.get(b.name) ?? 0, sz = size(b);
    const clashes = placed.filter((p) => p.start <= end && start <= p.end).sort((p, q) => p.off - q.off);
    let off = 0;
    for (const p of clashes) {
      if (off + sz <= p.off) break;
      off = Math.max(off, p.off + p.size);
    }
    placed.push({ start, end, off, size: sz });
    b.offset = off;
    peak = Math.max(peak, off + sz);
  }
  return peak;
}
