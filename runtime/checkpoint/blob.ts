/**
 * A checkpoint in a browser File or Blob, read with `Blob.slice()`: never one ArrayBuffer of the whole file
 * (a 3B model is 6 GB of bf16). The readers are synchronous (source.ts), a Blob is not, so bytes are fetched
 * ahead of the synchronous reads: opening retries the (inert, cheap) header parse, fetching each range it
 * asked for that was not there yet; `fetch(names)` brings tensors' bytes in before they are read and drops
 * those of the tensors fetched before (header ranges stay). Portable: no `node:` imports.
 */
import { UserError } from '../../kernels/errors.ts';
import { openCheckpointSource } from './reader.ts';
import type { ByteSource } from './source.ts';
import type { Checkpoint } from './checkpoint.ts';
import { DTYPE_BYTES } from './dtypes.ts';

/** Thrown by the source for bytes not fetched yet; opening fetches them and parses again. */
class NeedBytes extends Error {
  constructor(readonly offset: number, readonly length: number) { super(`bytes ${offset}..${offset + length} not fetched`); }
}

interface Range { offset: number; bytes: Uint8Array; pinned: boolean }

export interface BlobCheckpoint extends Checkpoint {
  /**
   * Fetch these tensors' bytes, or just some rows of one (dropping those fetched before); then read them
   * synchronously. Rows alone are fetched only where a tensor's bytes are its own span (not a .pth
   * storage whose CRC-32 is still to be checked over the whole entry).
   */
  fetch(names: (string | { name: string; row0: number; rows: number })[]): Promise<void>;
}

/** The smallest read when opening: parsing asks for many small ranges near each other (headers, a ZIP directory). */
const MIN_FETCH = 64 << 10;
/** Parses of the headers at most (one per range fetched): a .pth has a local header per storage. */
const MAX_TRIES = 100_000;

export async function openCheckpointBlob(blob: Blob, name = (blob as { name?: string }).name ?? 'checkpoint'): Promise<BlobCheckpoint> {
  const ranges: Range[] = [];
  const get = async (offset: number, length: number, pinned: boolean) => {
    const bytes = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    ranges.push({ offset, bytes, pinned });
  };
  const src: ByteSource = {
    name,
    size: blob.size,
    read(offset, length) {
      const r = ranges.find((x) => x.offset <= offset && offset + length <= x.offset + x.bytes.length);
      if (!r) throw (missing = new NeedBytes(offset, length));
      return r.bytes.slice(offset - r.offset, offset - r.offset + length);
    },
    // A failed parse closes its source: while opening, that must not drop what was fetched.
    close: () => { if (opened) ranges.length = 0; },
  };
  let opened = false;
  // The last range asked for and missing: a reader may wrap the error it got (a safetensors header over
  // MIN_FETCH is "bad header JSON: …"), so a failed parse that asked for missing bytes fetches them and retries.
  let missing: NeedBytes | undefined;
  let ckpt: ReturnType<typeof openCheckpointSource> | undefined;
  for (let tries = 0; !ckpt; tries++) {
    if (tries > MAX_TRIES) throw new UserError(`${name}: the headers asked for more than ${MAX_TRIES} separate ranges`);
    try {
      missing = undefined;
      ckpt = openCheckpointSource(src);
    } catch (err) {
      const e = err instanceof NeedBytes ? err : missing;
      if (!e) throw err;
      const at = e.length < MIN_FETCH ? Math.max(0, Math.min(e.offset, blob.size - MIN_FETCH)) : e.offset;
      await get(at, Math.min(blob.size - at, Math.max(e.length, MIN_FETCH)), true);
    }
  }
  const c = ckpt;
  opened = true;
  // A read that misses is a caller that did not fetch first: say so in one line, not "NeedBytes".
  const guard = <T>(what: string, f: () => T): T => {
    try { return f(); } catch (e) {
      if (e instanceof NeedBytes) throw new UserError(`${name}: ${what}: its bytes were not fetched first (BlobCheckpoint.fetch)`);
      throw e;
    }
  };
  return {
    path: c.path, format: c.format, metadata: c.metadata,
    names: () => c.names(),
    info: (n) => c.info(n),
    readRaw: (n) => guard(n, () => c.readRaw(n)),
    readF32: (n) => guard(n, () => c.readF32(n)),
    readRowsF32: (n, r0, rows) => guard(n, () => c.readRowsF32(n, r0, rows)),
    close: () => c.close(),
    async fetch(names) {
      for (let i = ranges.length - 1; i >= 0; i--) if (!ranges[i]!.pinned) ranges.splice(i, 1);
      for (const n of names) {
        let { offset, length } = c.span(typeof n === 'string' ? n : n.name);
        if (typeof n !== 'string') {
          const { shape, dtype } = c.info(n.name);
          const row = (shape.at(-1) ?? 1) * DTYPE_BYTES[dtype];
          if (shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype] === length) {
            offset += n.row0 * row;
            length = n.rows * row;
          }
        }
        if (!ranges.some((x) => x.offset <= offset && offset + length <= x.offset + x.bytes.length)) await get(offset, length, false);
      }
    },
  };
}
