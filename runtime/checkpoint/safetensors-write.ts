/**
 * Node only: writing safetensors files (the format is described in safetensors.ts).
 */
import { inputError } from './errors.ts';
import { DTYPE_BYTES, numelOf, shapeStr, type StoredDType } from './dtypes.ts';
import { writeSafetensorsStream } from './safetensors-stream.ts';

export interface TensorToWrite {
  name: string;
  dtype: StoredDType;
  shape: number[];
  /** Raw little-endian values: Float32Array for f32, Uint16Array for f16/bf16 bits, BigInt64Array for i64… */
  data: ArrayBufferView;
}

/**
 * Write a safetensors file. Tensors are streamed one by one (no concatenated copy of a large model), into
 * a temporary file renamed at the end so that a failed write never leaves a half file under `path`; only a
 * regular file (or nothing) at `path` is replaced: a device node, FIFO, directory or symlink is refused
 * (writeFileAtomic).
 */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  // every tensor's bytes against its shape before anything is written (the streaming writer checks as it goes)
  for (const t of tensors) {
    const numel = numelOf(t.shape);
    if (numel !== undefined && t.data.byteLength !== numel * DTYPE_BYTES[t.dtype])
      throw inputError(path, t.name, `data has ${t.data.byteLength} bytes but shape ${shapeStr(t.shape)} of ${t.dtype} needs ${numel * DTYPE_BYTES[t.dtype]}`);
  }
  writeSafetensorsStream(path, tensors, (i) => tensors[i]!.data, metadata);
}
