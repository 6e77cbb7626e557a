/**
 * The demo keeps the checkpoint (and the vocabulary) it last loaded in the browser, so a reload does not ask
 * for the file again: in the Origin Private File System (navigator.storage.getDirectory, written with a
 * FileSystemWritableFileStream) where the browser has it, else in IndexedDB. One slot per kind; the page's
 * "Forget cached model" drops both. Entries carry the file's name, so the page can say what it will load.
 */

export type Slot = 'checkpoint' | 'vocab';
export interface Cached { name: string; size: number; where: 'OPFS' | 'IndexedDB' }

const DIR = 'rwkvc-demo';
const DB = 'rwkvc-demo', STORE = 'files';

const hasOpfs = () => typeof navigator !== 'undefined' && !!navigator.storage?.getDirectory &&
  typeof (globalThis as { FileSystemFileHandle?: { prototype: object } }).FileSystemFileHandle?.prototype === 'object' &&
  'createWritable' in (globalThis as unknown as { FileSystemFileHandle: { prototype: object } }).FileSystemFileHandle.prototype;

async function opfsDir(): Promise<FileSystemDirectoryHandle> {
  return (await navigator.storage.getDirectory()).getDirectoryHandle(DIR, { create: true });
}

function idb<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction(STORE, mode);
      const req = f(tx.objectStore(STORE));
      tx.oncomplete = () => { open.result.close(); resolve(req.result); };
      tx.onerror = tx.onabort = () => { open.result.close(); reject(tx.error ?? req.error); };
    };
  });
}

/** Store `bytes` (named `name`) in `slot`, replacing what was there. */
export async function store(slot: Slot, name: string, blob: Blob): Promise<Cached> {
  if (hasOpfs()) {
    const dir = await opfsDir();
    const w = await (await dir.getFileHandle(slot, { create: true })).createWritable();
    await w.write(blob);
    await w.close();
    const m = await (await dir.getFileHandle(`${slot}.json`, { create: true })).createWritable();
    await m.write(JSON.stringify({ name, size: blob.size }));
    await m.close();
    return { name, size: blob.size, where: 'OPFS' };
  }
  await idb('readwrite', (s) => s.put({ name, blob }, slot));
  return { name, size: blob.size, where: 'IndexedDB' };
}

/** What `slot` holds (its name, size and store), or null. */
export async function peek(slot: Slot): Promise<Cached | null> {
  const got = await read(slot);
  return got && { name: got.name, size: got.file.size, where: got.where };
}

/** The cached file of `slot`, or null. */
export async function read(slot: Slot): Promise<{ name: string; file: Blob; where: Cached['where'] } | null> {
  if (hasOpfs()) {
    try {
      const dir = await opfsDir();
      const meta = JSON.parse(await (await (await dir.getFileHandle(`${slot}.json`)).getFile()).text()) as { name: string; size: number };
      const file = await (await dir.getFileHandle(slot)).getFile();
      // a write cut short (the tab closed mid-way) leaves a file of another size: not a checkpoint to offer
      return file.size === meta.size ? { name: meta.name, file, where: 'OPFS' } : null;
    } catch (e) {
      if ((e as DOMException).name === 'NotFoundError') return null;
      throw e;
    }
  }
  const v = await idb<{ name: string; blob: Blob } | undefined>('readonly', (s) => s.get(slot) as IDBRequest<{ name: string; blob: Blob } | undefined>);
  return v ? { name: v.name, file: v.blob, where: 'IndexedDB' } : null;
}

/** Drop every cached file. */
export async function forget(): Promise<void> {
  if (hasOpfs()) await (await navigator.storage.getDirectory()).removeEntry(DIR, { recursive: true }).catch((e: DOMException) => {
    if (e.name !== 'NotFoundError') throw e;
  });
  if (typeof indexedDB !== 'undefined') await idb('readwrite', (s) => s.clear()).catch(() => {});
}
