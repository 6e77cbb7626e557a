/**
 * Where checkpoint bytes come from, for every reader: a `ByteSource` answers positioned reads. The
 * readers (safetensors, .pth/ZIP, pickle) parse headers with small reads and fetch each tensor's bytes
 * only when asked, so a source over a file (fileio.ts, Node only) never holds the whole file. This
 * module and the readers are portable: no `node:` imports, no Buffer; they run in a browser too.
 */
import { UserError } from '../../kernels/errors.ts';
import { inputError } from './errors.ts';

export interface ByteSource {
  /** Named in every error message (a path, a file name, a URL). */
  readonly name: string;
  readonly size: number;
  /**
   * `length` bytes at `offset` (within 0..size, checked by `readAt`), in a buffer the caller may keep
   * and modify. Fewer bytes than asked means the data ended early (a file truncated since it was opened).
   */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

/**
 * Read exactly `length` bytes at `offset`. A range past the end means the file was truncated (the
 * headers promised more bytes than exist), so say that; any failure is one line naming file and `what`.
 */
export function readAt(src: ByteSource, offset: number, length: number, what?: string): Uint8Array {
  if (offset < 0 || length < 0 || offset + length > src.size) {
    throw inputError(src.name, what, `truncated file: bytes ${offset}..${offset + length} are past the end of the file (size ${src.size})`);
  }
  let out: Uint8Array;
  try {
    out = src.read(offset, length);
  } catch (e) {
    throw sourceError(src.name, what, length, e);
  }
  if (out.length < length) throw inputError(src.name, what, `truncated file: unexpected end of file at byte ${offset + out.length}`);
  return out;
}

/** A source's failure as a one-line UserError: an I/O error code (ENOENT, EIO…) or a failed allocation. */
export function sourceError(name: string, what: string | undefined, length: number, e: unknown): Error {
  if (e instanceof UserError) return e;
  const err = e as { code?: unknown; syscall?: unknown };
  if (err && typeof err.code === 'string') return inputError(name, what, `cannot read: ${err.code} ${typeof err.syscall === 'string' ? err.syscall : ''}`.trim());
  if (e instanceof RangeError) return inputError(name, what, `cannot allocate ${length} bytes to read it`);
  return e as Error;
}

/**
 * A source over bytes already in memory (a fetched checkpoint, a browser File read with
 * `arrayBuffer()`). No copy of the whole is made; each read copies just its range, so tensors
 * handed out are aligned and never alias the caller's buffer.
 */
export function bytesSource(name: string, bytes: Uint8Array | ArrayBuffer): ByteSource {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return {
    name,
    size: b.byteLength,
    read: (offset, length) => b.slice(offset, offset + length),
    close: () => {},
  };
}

/** Little-endian reads over a byte range (the formats are all little-endian). */
export function le(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** u64 as a number, or undefined when above 2^53 − 1. */
export function u64(view: DataView, at: number): number | undefined {
  const v = view.getBigUint64(at, true);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
}

/** Bytes as latin1 text (each byte one code unit), e.g. a file's magic number. */
export function latin1(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}
