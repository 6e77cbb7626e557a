/**
 * Node only: a safetensors file written tensor by tensor, each tensor's bytes made only when the file
 * reaches it. A real-size model (finch-3b is 6 GB in bf16) cannot be held whole in memory before writing;
 * this holds one tensor at a time. The header (shapes and offsets) is known up front from the shapes, so
 * it is written first. writeSafetensors (safetensors-write.ts) is this with every tensor already in memory.
 */
import { inputError } from './errors.ts';
import { writeFileAtomic } from './fileio.ts';
import { DTYPE_BYTES, numelOf, type StoredDType } from './dtypes.ts';
import { TO_ST } from './safetensors.ts';

export interface TensorShape { name: string; dtype: StoredDType; shape: number[] }

/** Write `tensors` in order; `data(i)` gives tensor i's raw little-endian bytes when it is written. */
export function writeSafetensorsStream(path: string, tensors: TensorShape[], data: (i: number) => ArrayBufferView, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = Object.create(null);
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) throw inputError(path, t.name, 'duplicate or reserved tensor name');
    const numel = numelOf(t.shape);
    if (numel === undefined) throw inputError(path, t.name, `bad shape ${JSON.stringify(t.shape)}`);
    const nbytes = numel * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + nbytes] };
    sizes.push(nbytes);
    offset += nbytes;
  }
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  const utf8 = new TextEncoder();
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + utf8.encode(json).byteLength) % 8)) % 8);
  const jsonBytes = utf8.encode(json);
  const head = new Uint8Array(8);
  new DataView(head.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);

  function* parts(): Generator<Uint8Array> {
    yield head;
    yield jsonBytes;
    for (let i = 0; i < tensors.length; i++) {
      const d = data(i);
      if (d.byteLength !== sizes[i]) throw inputError(path, tensors[i]!.name, `data has ${d.byteLength} bytes but its shape needs ${sizes[i]}`);
      yield new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
    }
  }
  writeFileAtomic(path, parts());
}
