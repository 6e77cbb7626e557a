/**
 * Node only: writing safetensors files (the format is described in safetensors.ts).
 */
import { inputError } from './errors.ts';
import { writeFileAtomic } from './fileio.ts';
import { DTYPE_BYTES, numelOf, shapeStr, type StoredDType } from './dtypes.ts';
import { TO_ST } from './safetensors.ts';

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
  // No prototype: tensor names such as "__proto__" or "toString" are plain keys here.
  const header: Record<string, unknown> = Object.create(null);
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) throw inputError(path, t.name, 'duplicate or reserved tensor name');
    const numel = numelOf(t.shape);
    if (numel === undefined) throw inputError(path, t.name, `bad shape ${JSON.stringify(t.shape)}`);
    const nbytes = numel * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== nbytes) {
      throw inputError(path, t.name, `data has ${t.data.byteLength} bytes but shape ${shapeStr(t.shape)} of ${t.dtype} needs ${nbytes}`);
    }
    header[t.name] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  const utf8 = new TextEncoder();
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + utf8.encode(json).byteLength) % 8)) % 8);
  const jsonBytes = utf8.encode(json);
  const head = new Uint8Array(8);
  new DataView(head.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);

  writeFileAtomic(path, [head, jsonBytes, ...tensors.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}
