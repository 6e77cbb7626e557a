/**
 * Weights on their way to the GPU: read once from the provider, encoded per WeightRef (rows of a matrix in
 * its storage format, or dequantized vectors packed as f32) and uploaded once per distinct ref. Tables
 * that stay on the host (host-gathered embeddings) are kept encoded here too.
 */
import { dequantize } from '../../kernels/dtype.ts';
import type { KernelPlan, WeightDecl } from '../../kernels/plan.ts';
import { UserError } from '../../kernels/errors.ts';
import type { WeightProvider } from '../backend.ts';
import { encodeRows } from '../gpu/formats.ts';
import { weightRefId, type HostEmbedStep, type WeightRef } from '../gpu/lower.ts';

const STORAGE = 0x80; // GPUBufferUsage.STORAGE

export class WeightUploads {
  private readonly decls: Map<string, WeightDecl>;
  private readonly values = new Map<string, Float32Array>();
  private readonly gpu = new Map<string, GPUBuffer>();
  private readonly host = new Map<string, Uint8Array>();
  /** Bytes uploaded so far. */
  bytes = 0;

  constructor(plan: KernelPlan, private readonly provider: WeightProvider, private readonly device: GPUDevice) {
    this.decls = new Map(plan.weights.map((d) => [d.name, d]));
  }

  /** The GPU buffer of a ref, created and filled on first use. */
  buffer(ref: WeightRef): GPUBuffer {
    const id = weightRefId(ref);
    let b = this.gpu.get(id);
    if (b) return b;
    const bytes = ref.kind === 'rows' ? encodeRows(ref.fmt, this.f32(ref.weight), ref.cols, ref.row0, ref.rows) : this.pack(ref.parts);
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
    if (!t) this.host.set(id, (t = encodeRows(ref.fmt, this.f32(ref.weight), ref.cols, ref.row0, ref.rows)));
    return t;
  }

  /** Drop the provider's f32 arrays (everything has been encoded). */
  releaseSources(): void {
    this.values.clear();
  }

  destroy(): void {
    for (const b of this.gpu.values()) b.destroy();
    this.gpu.clear();
    this.host.clear();
  }

  private f32(name: string): Float32Array {
    let v = this.values.get(name);
    if (!v) {
      const decl = this.decls.get(name)!;
      v = this.provider(decl);
      const n = decl.shape.reduce((a, b) => a * b, 1);
      if (v.length !== n) throw new UserError(`weight ${name}: expected ${n} values for shape [${decl.shape.join(', ')}], got ${v.length}`);
      this.values.set(name, v);
    }
    return v;
  }

  /** The values the plan's dtype represents (as every target computes with), packed end to end. */
  private pack(parts: string[]): Uint8Array {
    const vals = parts.map((name) => {
      const d = this.decls.get(name)!;
      return dequantize(this.f32(name), d.shape[d.shape.length - 1], d.dtype);
    });
    const all = new Float32Array(vals.reduce((n, v) => n + v.length, 0));
    let at = 0;
    for (const v of vals) { all.set(v, at); at += v.length; }
    return new Uint8Array(all.buffer);
  }
}
