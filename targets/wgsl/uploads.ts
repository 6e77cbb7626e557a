/**
 * Weights on their way to the GPU: read once from the provider, encoded per WeightRef (rows of a matrix in
 * its storage format, or dequantized vectors packed as f32) and uploaded once per distinct ref. Tables
 * that stay on the host (host-gathered embeddings) are kept encoded here too.
 */
import type { KernelPlan } from '../../kernels/plan.ts';
import type { WeightProvider } from '../backend.ts';
import { WeightEncoder } from '../gpu/encode.ts';
import { weightRefId, type HostEmbedStep, type WeightRef } from '../gpu/lower.ts';

const STORAGE = 0x80; // GPUBufferUsage.STORAGE

export class WeightUploads {
  private readonly encoder: WeightEncoder;
  private readonly gpu = new Map<string, GPUBuffer>();
  private readonly host = new Map<string, Uint8Array>();
  /** Bytes uploaded so far. */
  bytes = 0;

  constructor(plan: KernelPlan, provider: WeightProvider, private readonly device: GPUDevice) {
    this.encoder = new WeightEncoder(plan, provider);
  }

  /** The GPU buffer of a ref, created and filled on first use. */
  buffer(ref: WeightRef): GPUBuffer {
    const id = weightRefId(ref);
    let b = this.gpu.get(id);
    if (b) return b;
    const bytes = this.encoder.encode(ref);
    b = this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes.byteLength / 16) * 16), usage: STORAGE, mappedAtCreation: true, label: id });
    new Uint8Array(b.getMappedRange()).set(bytes);
    b.unmap();
    this.gpu.set(id, b);
    this.bytes += bytes.byteLength;
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
