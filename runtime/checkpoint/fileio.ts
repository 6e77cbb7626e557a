/**
 * Node only: a checkpoint file as a ByteSource of positioned reads on an open file descriptor, and
 * writing a file whole or not at all.
 * Checkpoints can be tens of GB, so nothing reads a whole file: readers parse headers with small reads
 * and fetch each tensor's bytes only when asked. The readers themselves are portable (source.ts).
 */
import * as fs from 'node:fs';
import { inputError } from './errors.ts';
import { readAt, sourceError, type ByteSource } from './source.ts';

export { readAt };

/** One fs.readSync call moves at most ~2 GiB; stay well below that. */
const CHUNK = 1 << 30;

export interface OpenFile extends ByteSource {
  path: string;
  fd: number;
  size: number;
}

/** Open `path` for lazy positioned reads; an fs error (ENOENT, EISDIR…) is a one-line UserError. */
export function openFile(path: string): OpenFile {
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, 'r');
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw inputError(path, undefined, 'not a regular file');
    const f: OpenFile = {
      name: path,
      path,
      fd,
      size: st.size,
      read: (offset, length) => readFd(f.fd, offset, length),
      close: () => fs.closeSync(f.fd),
    };
    return f;
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    throw sourceError(path, undefined, 0, e);
  }
}

/** Read into a fresh buffer; a short result means end of file (readAt reports it). */
function readFd(fd: number, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, Math.min(CHUNK, length - done), offset + done);
    if (n === 0) return out.subarray(0, done);
    done += n;
  }
  return out;
}

export function closeFile(f: OpenFile): void {
  f.close();
}

/**
 * Write `parts` one after another to a temporary file renamed to `path` at the end, so a failed write
 * (disk full, a bad value found half-way) never leaves a half file under `path`.
 */
export function writeFileAtomic(path: string, parts: Iterable<Uint8Array>): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    // writeSync may write less than asked (and refuses > 2 GiB at once): loop in 1 GiB pieces
    for (const b of parts)
      for (let done = 0; done < b.byteLength; ) done += fs.writeSync(fd, b, done, Math.min(CHUNK, b.byteLength - done));
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    throw typeof code === 'string' ? inputError(path, undefined, `cannot write: ${code}`) : e;
  }
}
