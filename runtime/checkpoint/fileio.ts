/**
 * Node only: a checkpoint file as a ByteSource of positioned reads on an open file descriptor, and
 * writing a file whole or not at all.
 * Checkpoints can be tens of GB, so nothing reads a whole file: readers parse headers with small reads
 * and fetch each tensor's bytes only when asked. The readers themselves are portable (source.ts).
 */
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
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
 * Refuse, before any work, an output path that writeFileAtomic would refuse: something already there that
 * is not a regular file (a device node such as /dev/null or /dev/full, a FIFO, a directory, a socket),
 * a symbolic link (refused, not followed: write to the link's target path instead), or a parent that is
 * missing, not a folder or not writable. One UserError line naming the path.
 */
export function checkWritable(path: string): void {
  const refuse = (why: string): never => { throw inputError(path, undefined, why); };
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') refuse('cannot write: a parent of this path is a file, not a folder');
    if (code !== 'ENOENT') refuse(`cannot write: ${code ?? String(e)}`);
  }
  if (st?.isSymbolicLink()) refuse('is a symbolic link; refusing to replace it (give the path it points to)');
  if (st && !st.isFile()) refuse(`is not a regular file (${kind(st)}); refusing to replace it`);
  const dir = dirname(path);
  let d: fs.Stats;
  try {
    d = fs.statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return refuse(code === 'ENOENT' ? `cannot write: the folder ${dir} does not exist`
      : code === 'ENOTDIR' ? 'cannot write: a parent of this path is a file, not a folder' : `cannot write: ${code ?? String(e)}`);
  }
  if (!d.isDirectory()) refuse(`cannot write: ${dir} is a file, not a folder`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    refuse(`cannot write: the folder ${dir} is not writable`);
  }
}

function kind(st: fs.Stats): string {
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device'
    : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'a special file';
}

/**
 * Removal of a temporary file if this process dies during the write. The writes are synchronous, so a JS
 * signal handler (process.once('SIGINT')) would only run once the write had ended: Ctrl-C would wait for
 * a 100 MB file. Instead, while the temporary file exists, a small detached `sh` holds the read end
 * of a pipe from this process; when this process ends, however it ends (SIGINT, SIGTERM, SIGKILL, out of
 * memory, normally), the pipe closes and the `sh` removes the temporary name (a no-op when it was renamed
 * into place). Signals keep their default action: the process stops at once (exit status 128 + signal).
 */
function guard(tmp: string): () => void {
  if (process.platform === 'win32') return () => {};
  try {
    const child = spawn('sh', ['-c', 'cat >/dev/null; rm -f -- "$1"', 'sh', tmp], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    child.on('error', () => { /* no sh: the write goes on without the guard */ });
    child.stdin?.on('error', () => {});
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return () => child.stdin?.end();
  } catch {
    return () => {};
  }
}

/**
 * Write `parts` one after another to a temporary file renamed to `path` at the end, so a failed write
 * (disk full, a bad value found half-way) never leaves a half file under `path`, and an interrupted one
 * (SIGINT, SIGTERM, even SIGKILL) leaves no temporary file (see guard). Only a regular file (or nothing) at `path` is replaced:
 * see checkWritable.
 */
export function writeFileAtomic(path: string, parts: Iterable<Uint8Array>): void {
  checkWritable(path);
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | undefined;
  let release: () => void;
  // the guard first: from the moment the temporary file exists, its removal is assured
  release = guard(tmp);
  try {
    // 'wx': never through something planted at the temporary name; a stale one of ours is replaced
    try {
      fd = fs.openSync(tmp, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.lstatSync(tmp).isFile()) throw e;
      fs.rmSync(tmp);
      fd = fs.openSync(tmp, 'wx');
    }
    // writeSync may write less than asked (and refuses > 2 GiB at once): loop in 1 GiB pieces
    for (const b of parts) {
      for (let done = 0; done < b.byteLength; ) done += fs.writeSync(fd, b, done, Math.min(CHUNK, b.byteLength - done));
    }
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (e) {
    try { if (fd !== undefined) fs.closeSync(fd); } catch { /* the write's error is the one to report */ }
    try { fs.rmSync(tmp, { force: true }); } catch { /* nothing was created (ENOTDIR, EACCES…) */ }
    const code = (e as NodeJS.ErrnoException).code;
    throw typeof code === 'string' ? inputError(path, undefined, `cannot write: ${code}`) : e;
  } finally {
    release();
  }
}
