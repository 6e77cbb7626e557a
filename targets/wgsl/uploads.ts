/**
 * Weights on their way to the GPU: read once from the provider, encoded per WeightRef (rows of a matrix in
 * its storage format, or dequantized vectors packed as f32) and uploaded once per distinct ref. Tables
 * that stay on the host (host-gathered embeddings) are kept encoded here too.
 */
import type { KernelPlan, WeightDecl } from '../../kernels/plan.ts';
import type { WeightProvider } from '../backend.ts';
import { WeightEncoder } from '../gpu/encode.ts';
import { weightRefId, type DispatchStep, type HostEmbedStep, type WeightRef } from '../gpu/lower.ts';

const STORAGE = 0x80; // GPUBufferUsage.STORAGE
const COPY_DST = 0x8; // GPUBufferUsage.COPY_DST

/**
 * Bytes per queue.writeBuffer call, and bytes written between waits for the queue to drain. Each write is
 * staged by the implementation (Dawn frees a staging buffer once the submission that copies it has
 * completed; in Chromium the bytes also cross to the GPU process through shared memory), so at most about
 * FLUSH_BYTES of staging are alive at once. Measured with finch-3b (int8, 2.99 GiB of buffers) in headless
 * Chromium on SwiftShader (bench/browser-3b.ts), the old way, mappedAtCreation with nothing submitted until
 * the load ended: every buffer's bytes piled up in the renderer's shared memory (3.5 GiB) while the GPU
 * process stayed at 0.15 GiB, then the first submit made the GPU process take them all at once, to 9.3 GiB
 * (shared memory, Dawn's staging and the buffers). These writes keep both in step: GPU process 3.43 GiB,
 * renderer 1.92 GiB at their peaks. (In Node, Dawn without the wire, both ways hold the bytes once.)
 */
export const WRITE_CHUNK = 4 << 20;
export const FLUSH_BYTES = 64 << 20;

export interface UploadSizes { chunk?: number; flush?: number }

export class WeightUploads {
  private readonly encoder: WeightEncoder;
  private readonly gpu = new Map<string, GPUBuffer>();
  private readonly host = new Map<string, Uint8Array>();
  private readonly decls: Map<string, WeightDecl>;
  /** Values of a packed buffer's parts, each read right after its bytes were brought in (see `upload`). */
  private readonly fetched = new Map<string, Float32Array>();
  /** Bytes uploaded so far. */
  bytes = 0;
  /** Bytes written since the queue last drained. */
  private pending = 0;

  private readonly chunk: number;
  private readonly flush: number;

  /** `sizes`: WRITE_CHUNK and FLUSH_BYTES by default (tests use small ones to cross every boundary). */
  constructor(plan: KernelPlan, private readonly provider: WeightProvider, private readonly device: GPUDevice, sizes: UploadSizes = {}) {
    this.chunk = sizes.chunk ?? WRITE_CHUNK;
    this.flush = sizes.flush ?? FLUSH_BYTES;
    if (this.chunk <= 0 || this.chunk % 4) throw new Error(`upload chunk ${this.chunk}: a positive multiple of 4 bytes`);
    this.decls = new Map(plan.weights.map((d) => [d.name, d]));
    const read: WeightProvider = Object.assign((d: WeightDecl) => this.fetched.get(d.name) ?? provider(d), provider.rows ? { rows: provider.rows } : {});
    this.encoder = new WeightEncoder(plan, read);
  }

  /**
   * Upload every buffer the steps use, weight by weight, awaiting the provider's `prepare` before a weight
   * is read: over a browser File (Blob.slice) only the weight being converted is in memory. A packed
   * buffer's parts are prepared and read one after another (a prepare may drop the previous one's bytes).
   */
  async upload(steps: readonly (DispatchStep | HostEmbedStep)[]): Promise<void> {
    const prepare = this.provider.prepare;
    const refs = new Map<string, { ref: WeightRef; host: boolean }>();
    for (const s of steps) {
      if (s.kind === 'host_embed') refs.set(weightRefId(s.table), { ref: s.table, host: true });
      else for (const w of s.weights) refs.set(weightRefId(w), { ref: w, host: false });
    }
    // The buffers of one weight (a matrix split over several bindings) one after another: each prepared once.
    const rowsOf = new Map<string, { ref: WeightRef; host: boolean }[]>();
    for (const r of refs.values()) if (r.ref.kind === 'rows') rowsOf.set(r.ref.weight, [...(rowsOf.get(r.ref.weight) ?? []), r]);
    for (const [weight, list] of rowsOf) {
      const decl = this.decl(weight);
      // a provider that reads rows is asked for each buffer's rows alone; else the whole weight, once
      if (!this.provider.rows) await prepare?.(decl);
      for (const r of list) {
        if (this.provider.rows && r.ref.kind === 'rows') await prepare?.(decl, { row0: r.ref.row0, rows: r.ref.rows });
        this.put(r.ref, r.host);
        await this.drain(false);
      }
    }
    for (const r of refs.values()) {
      if (r.ref.kind !== 'pack') continue;
      if (prepare) for (const p of r.ref.parts) {
        const d = this.decl(p);
        await prepare(d);
        this.fetched.set(p, this.provider(d));
      }
      this.put(r.ref, r.host);
      this.fetched.clear();
      await this.drain(false);
    }
    await this.drain(true);
  }

  /** Submit what was written and wait for it (so the staging copies are freed), once FLUSH_BYTES are pending. */
  private async drain(always: boolean): Promise<void> {
    if (!this.pending || (!always && this.pending < this.flush)) return;
    this.pending = 0;
    const q = this.device.queue;
    q.submit([this.device.createCommandEncoder({ label: 'weight uploads' }).finish()]);
    await q.onSubmittedWorkDone();
  }

  private put(ref: WeightRef, host: boolean): void {
    if (host) this.hostTable(ref as HostEmbedStep['table']);
    else this.buffer(ref);
  }

  private decl(name: string): WeightDecl {
    const d = this.decls.get(name);
    if (!d) throw new Error(`weight ${name} is not declared by the plan`);
    return d;
  }

  /** The GPU buffer of a ref, created and filled on first use. */
  buffer(ref: WeightRef): GPUBuffer {
    const id = weightRefId(ref);
    let b = this.gpu.get(id);
    if (b) return b;
    const bytes = this.encoder.encode(ref);
    // Written in chunks through the queue, not mappedAtCreation: a mapped-at-creation buffer is staged whole
    // (in Chromium, in shared memory on both sides as well) and its staging is held until a submit completes.
    b = this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes.byteLength / 16) * 16), usage: STORAGE | COPY_DST, label: id });
    const whole = bytes.byteLength & ~3; // writeBuffer takes multiples of 4 bytes; the tail is padded below
    for (let at = 0; at < whole; at += this.chunk) {
      this.device.queue.writeBuffer(b, at, bytes.buffer, bytes.byteOffset + at, Math.min(this.chunk, whole - at));
    }
    if (whole < bytes.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(whole));
      this.device.queue.writeBuffer(b, whole, tail);
    }
    this.gpu.set(id, b);
    this.bytes += bytes.byteLength;
    this.pending += bytes.byteLength;
    return b;
  }

  /** An embedding table kept on the host, encoded in its storage format (decodeRow reads it). */
  hostTable(ref: HostEmbedStep['table']): Uint8Array {
    const id = weightRefId(ref);
    let t = this.host.get(id);
    if (!t) this.host.set(id, (t = this.encoder.encode(ref)));
    return t;
  }

  /** Drop the provider's f32 arrays (everything has been encoded). */
  releaseSources(): void {
    this.encoder.release();
  }

  destroy(): void {
    for (const b of this.gpu.values()) b.destroy();
    this.gpu.clear();
    this.host.clear();
  }
}
