/**
 * One interface over the checkpoint formats: the official `.pth`, safetensors with official names, and
 * safetensors with Hugging Face names (mapped to official ones here, so nothing downstream sees them).
 * Opening a checkpoint reads only its headers; each tensor is read from its source when asked for.
 *
 * Portable (Node and browsers): it reads through a ByteSource. `openCheckpoint(path)` (index.ts) opens
 * a file in Node; `openCheckpointBytes` takes bytes already in memory (a fetched file, a browser File).
 */
import { inputError, unsupportedFormat } from './errors.ts';
import { DTYPE_BYTES, widenToF32, type StoredTensor, type TensorInfo } from './dtypes.ts';
import { readPthTensors } from './pth.ts';
import { checkCrc, checkCrcValue, crc32 } from './zip.ts';

/** Bytes read at a time when a storage's CRC-32 is checked ahead of row reads. */
const CRC_CHUNK = 16 << 20;
import { readSafetensorsHeader } from './safetensors.ts';
import { bytesSource, latin1, readAt, type ByteSource } from './source.ts';

export type { StoredDType, TensorInfo } from './dtypes.ts';
export { expectedTensors, inferConfig, validateCheckpoint, type ModelConfig } from './config.ts';
export type { Checkpoint } from './checkpoint.ts';
import type { Checkpoint } from './checkpoint.ts';


/**
 * HF (`RWKV/v6-Finch-*-HF`) name → official name. The tensors themselves are identical (never transposed),
 * so renaming is all it takes. Names without the `rwkv.` prefix (`head.weight`, official ones) pass through.
 */
export function hfToOfficial(name: string): string {
  if (!name.startsWith('rwkv.')) return name;
  return name
    .slice('rwkv.'.length)
    .replace(/^embeddings\./, 'emb.')
    .replace(/^blocks\.0\.pre_ln\./, 'blocks.0.ln0.')
    .replace('.attention.', '.att.')
    .replace('.feed_forward.', '.ffn.');
}

/** Open a checkpoint from any byte source; the checkpoint owns it (closing one closes the other). */
export function openCheckpointSource(file: ByteSource): Checkpoint & { span(name: string): { offset: number; length: number } } {
  const path = file.name;
  let stored: StoredTensor[];
  let metadata: Record<string, string> = {};
  let format: Checkpoint['format'];
  try {
    // A ZIP starts with a local file header; a safetensors file with its (small) header length.
    const magic = file.size >= 4 ? latin1(readAt(file, 0, 4)) : '';
    if (magic === 'GGUF') throw unsupportedFormat(path, 'GGUF');
    if (magic === 'PK\x03\x04') {
      format = 'pth';
      stored = readPthTensors(file);
    } else {
      format = 'safetensors';
      ({ tensors: stored, metadata } = readSafetensorsHeader(file));
    }
  } catch (e) {
    file.close();
    throw e;
  }

  const tensors = new Map<string, StoredTensor>();
  for (const t of stored) {
    const name = hfToOfficial(t.name);
    if (tensors.has(name)) {
      file.close();
      throw inputError(path, t.name, `duplicate tensor (another one is also named ${name})`);
    }
    tensors.set(name, { ...t, name });
  }
  return new LazyCheckpoint(file, format, metadata, tensors);
}

/** A checkpoint whose bytes are already in memory; `name` is what error messages call it. */
export function openCheckpointBytes(name: string, bytes: Uint8Array | ArrayBuffer): Checkpoint {
  return openCheckpointSource(bytesSource(name, bytes));
}

class LazyCheckpoint implements Checkpoint {
  private closed = false;
  /** .pth storages whose CRC-32 has been checked (by data offset). */
  private readonly verified = new Set<number>();
  readonly path: string;

  constructor(
    private readonly file: ByteSource,
    readonly format: Checkpoint['format'],
    readonly metadata: Record<string, string>,
    private readonly tensors: Map<string, StoredTensor>,
  ) {
    this.path = file.name;
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  private get(name: string): StoredTensor {
    const t = this.tensors.get(name);
    if (!t) throw inputError(this.path, name, 'tensor not found in checkpoint');
    return t;
  }

  /** Where a tensor's bytes lie in the file (a .pth tensor: its whole storage, whose CRC-32 is checked on first read). */
  span(name: string): { offset: number; length: number } {
    const t = this.get(name);
    return t.storage && !this.verified.has(t.storage.offset) ? { offset: t.storage.offset, length: t.storage.size } : { offset: t.offset, length: t.nbytes };
  }

  info(name: string): TensorInfo {
    const { dtype, shape } = this.get(name);
    return { name, dtype, shape: [...shape] };
  }

  readRaw(name: string): Uint8Array {
    const t = this.get(name);
    if (this.closed) throw inputError(this.path, name, 'checkpoint is closed');
    const s = t.storage;
    if (!s || this.verified.has(s.offset)) return readAt(this.file, t.offset, t.nbytes, name);
    // The first read of a storage checks its CRC-32, which covers the whole entry: read all of it (no
    // more than the file holds) and hand out this tensor's part.
    const whole = readAt(this.file, s.offset, s.size, s.name);
    checkCrc(this.path, { name: s.name, crc32: s.crc32 }, whole);
    this.verified.add(s.offset);
    const at = t.offset - s.offset;
    return at === 0 && t.nbytes === whole.length ? whole : whole.slice(at, at + t.nbytes);
  }

  readRowsF32(name: string, row0: number, rows: number): Float32Array {
    const t = this.get(name);
    if (this.closed) throw inputError(this.path, name, 'checkpoint is closed');
    const cols = t.shape.length ? t.shape[t.shape.length - 1]! : 1;
    const total = cols ? t.nbytes / DTYPE_BYTES[t.dtype] / cols : 0;
    if (!Number.isSafeInteger(row0) || !Number.isSafeInteger(rows) || row0 < 0 || rows < 0 || row0 + rows > total)
      throw inputError(this.path, name, `rows ${row0}..${row0 + rows} asked of a tensor with ${total} rows`);
    const s = t.storage;
    // A .pth storage's CRC-32 covers the whole entry: check it once, streaming (never the whole entry at once).
    if (s && !this.verified.has(s.offset)) {
      let crc = 0;
      for (let at = 0; at < s.size; at += CRC_CHUNK) crc = crc32(readAt(this.file, s.offset + at, Math.min(CRC_CHUNK, s.size - at), s.name), crc);
      checkCrcValue(this.path, { name: s.name, crc32: s.crc32 }, crc);
      this.verified.add(s.offset);
    }
    const row = cols * DTYPE_BYTES[t.dtype];
    return widenToF32(t.dtype, readAt(this.file, t.offset + row0 * row, rows * row, name), this.path, name);
  }

  readF32(name: string): Float32Array {
    return widenToF32(this.get(name).dtype, this.readRaw(name), this.path, name);
  }

  close(): void {
    if (!this.closed) this.file.close();
    this.closed = true;
  }
}
