/**
 * Positioned reads on an open file descriptor. Checkpoints can be tens of GB, so nothing reads a whole
 * file: readers parse headers with small reads and fetch each tensor's bytes only when asked.
 */
import * as fs from 'node:fs';
import { UserError } from '../errors.ts';
import { inputError } from './errors.ts';

/** One fs.readSync call moves at most ~2 GiB; stay well below that. */
const CHUNK = 1 << 30;

export interface OpenFile {
  path: string;
  fd: number;
  size: number;
}

/** Turn an fs error (ENOENT, EISDIR, EIO…) into a one-line UserError; anything else is a bug. */
function fsError(file: string, what: string | undefined, e: unknown): Error {
  if (e instanceof UserError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string') return inputError(file, what, `cannot read: ${err.code} ${err.syscall ?? ''}`.trim());
  return e as Error;
}

export function openFile(path: string): OpenFile {
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, 'r');
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw inputError(path, undefined, 'not a regular file');
    return { path, fd, size: st.size };
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    throw fsError(path, undefined, e);
  }
}

/**
 * Read exactly `length` bytes at `offset` into a fresh buffer. A range past the end of the file means
 * the file was truncated (the headers promised more bytes than exist), so say that.
 */
export function readAt(f: OpenFile, offset: number, length: number, what?: string): Uint8Array {
  if (offset < 0 || length < 0 || offset + length > f.size) {
    throw inputError(f.path, what, `truncated file: bytes ${offset}..${offset + length} are past the end of the file (size ${f.size})`);
  }
  let out: Uint8Array;
  try {
    out = new Uint8Array(length);
  } catch {
    throw inputError(f.path, what, `cannot allocate ${length} bytes to read it`);
  }
  let done = 0;
  try {
    while (done < length) {
      const n = fs.readSync(f.fd, out, done, Math.min(CHUNK, length - done), offset + done);
      if (n === 0) throw inputError(f.path, what, `truncated file: unexpected end of file at byte ${offset + done}`);
      done += n;
    }
  } catch (e) {
    throw fsError(f.path, what, e);
  }
  return out;
}

export function closeFile(f: OpenFile): void {
  fs.closeSync(f.fd);
}
