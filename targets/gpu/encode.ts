/**
 * Weights on their way to a GPU buffer, the same for every GPU target: each plan weight's f32 values are
 * read once from the provider (and checked against its shape), then encoded per WeightRef: rows of a
 * matrix in its storage format (formats.ts encodeRows), or the dequantized values of several parts
 * (vectors and small matrices) packed end to end as f32.
 */
import { dequantize } from '../../kernels/dtype.ts';
import type { KernelPlan, WeightDecl } from '../../kernels/plan.ts';
import { UserError } from '../../kernels/errors.ts';
import type { WeightProvider } from '../backend.ts';
import { encodeRows, type WFormat } from './formats.ts';

/** The fields of a weight buffer the encoding depends on (lower.ts's WeightRef, or an artifact's copy of it). */
export type EncodableRef =
  | { kind: 'rows'; weight: string; fmt: WFormat; row0: number; rows: number; cols: number }
  | { kind: 'pack'; parts: string[] };

export class WeightEncoder {
  private readonly decls: Map<string, WeightDecl>;
  private readonly values = new Map<string, Float32Array>();

  constructor(plan: KernelPlan, private readonly provider: WeightProvider) {
    this.decls = new Map(plan.weights.map((d) => [d.name, d]));
  }

  /** The bytes of a weight buffer. */
  encode(ref: EncodableRef): Uint8Array {
    if (ref.kind === 'pack') return this.pack(ref.parts);
    // A provider that reads rows gives just this buffer's rows, nothing kept: a load holds one buffer's
    // values at a time, not every matrix as f32 (a 3B model is 12 GB as f32).
    if (this.provider.rows && !this.values.has(ref.weight)) {
      const decl = this.decl(ref.weight);
      const v = this.provider.rows(decl, ref.row0, ref.rows);
      if (v.length !== ref.rows * ref.cols) throw new UserError(`weight ${ref.weight}: expected ${ref.rows * ref.cols} values for rows ${ref.row0}..${ref.row0 + ref.rows}, got ${v.length}`);
      return encodeRows(ref.fmt, v, ref.cols, 0, ref.rows);
    }
    return encodeRows(ref.fmt, this.f32(ref.weight), ref.cols, ref.row0, ref.rows);
  }

  /** Drop the provider's f32 arrays (everything has been encoded). */
  release(): void {
    this.values.clear();
  }

  private decl(name: string): WeightDecl {
    const d = this.decls.get(name);
    if (!d) throw new Error(`weight ${name} is not declared by the plan`);
    return d;
  }

  private f32(name: string): Float32Array {
    let v = this.values.get(name);
    if (!v) {
      const decl = this.decl(name);
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
      const d = this.decl(name);
      return dequantize(this.f32(name), d.shape[d.shape.length - 1], d.dtype);
    });
    const all = new Float32Array(vals.reduce((n, v) => n + v.length, 0));
    let at = 0;
    for (const v of vals) { all.set(v, at); at += v.length; }
    return new Uint8Array(all.buffer);
  }
}
