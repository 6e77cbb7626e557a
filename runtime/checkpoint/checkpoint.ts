/** An open checkpoint, whatever its format (reader.ts opens one; config.ts checks its tensors). */
import type { TensorInfo } from './dtypes.ts';

export interface Checkpoint {
  path: string;
  format: 'pth' | 'safetensors';
  /** safetensors `__metadata__` (empty for .pth). */
  metadata: Record<string, string>;
  /** Official names (HF names are mapped to official). */
  names(): string[];
  /** Throws a UserError naming file and tensor if missing. */
  info(name: string): TensorInfo;
  /** Widened to f32 (bf16 exactly; f16 including subnormals, inf and NaN). */
  readF32(name: string): Float32Array;
  /** The stored bytes, little-endian. */
  readRaw(name: string): Uint8Array;
  /**
   * Rows [row0, row0 + rows) of a tensor (a row is its last dimension; leading ones are flattened), widened
   * to f32, reading only their bytes: how a load converts a large matrix piece by piece in bounded memory.
   */
  readRowsF32(name: string, row0: number, rows: number): Float32Array;
  close(): void;
}
