/**
 * A page keeps the checkpoint (and the vocabulary) it last loaded in the browser, so a reload does not ask
 * for the file again: in the Origin Private File System (navigator.storage.getDirectory, written with a
 * FileSystemWritableFileStream) where the browser has it, else in IndexedDB. Named slots ('checkpoint',
 * 'vocab', …) under one cache name per application; `forget` drops them all. Entries carry the file's
 * name, so the page can say what it will load. Shipped in every generated package
 * (`<pkg>/runtime/package/browser-cache.js`); the browser demo uses it.
 */

export type Slot = string;
export interface Cached { name: string; size: number; where: 'OPFS' | 'IndexedDB' }
export interface BrowserCache {
  /** Store `blob` (named `name`, e.g. a picked File) in `slot`, replacing what was there. */
  store(slot: Slot, name: string, blob: Blob): Promise<Cached>;
  /** What `slot` holds (its name, size and store), or null. */
  peek(slot: Slot): Promise<Cached | null>;
  /** The cached file of `slot` (read it with `arrayBuffer()` and pass it to `load`), or null. */
  read(slot: Slot): Promise<{ name: string; file: Blob; where: Cached['where'] } | null>;
  /** Drop every slot of this cache. */
  forget(): Promise<void>;
}

/** The cache named `name` (one OPFS folder / IndexedDB database per name: one per application). */
export function openBrowserCache(name: string): BrowserCache {
  if (!/^[\w.-]{1,64}$/.test(name)) throw new Error(`openBrowserCache: '${name.slice(0, 40)}' is not a cache name (letters, digits, . _ -)`);
  const DIR = name, DB = name;
  return {
    store: (slot, n, blob) => store(DIR, DB, slot, n, blob),
    peek: async (slot) => { const got = await read(DIR, DB, slot); return got && { name: got.name, size: got.file.size, where: got.where }; },
    read: (slot) => read(DIR, DB, slot),
    forget: () => forget(DIR, DB),
  };
}

const STORE = 'files';

const hasOpfs = () => typeof navigator !== 'undefined' && !!navigator.storage?.getDirectory &&
  typeof (globalThis as { FileSystemFileHandle?: { prototype: object } }).FileSystemFileHandle?.prototype === 'object' &&
  'createWritable' in (globalThis as unknown as { FileSystemFileHandle: { prototype: object } }).FileSystemFileHandle.prototype;

async function opfsDir(DIR: string): Promise<FileSystemDirectoryHandle> {
  return (await navigator.storage.getDirectory()).getDirectoryHandle(DIR, { create: true });
}

function idb<T>(DB: string, mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
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

async function store(DIR: string, DB: string, slot: Slot, name: string, blob: Blob): Promise<Cached> {
  if (hasOpfs()) {
    const dir = await opfsDir(DIR);
    const w = await (await dir.getFileHandle(slot, { create: true })).createWritable();
    await w.write(blob);
    await w.close();
    const m = await (await dir.getFileHandle(`${slot}.json`, { create: true })).createWritable();
    await m.write(JSON.stringify({ name, size: blob.size }));
    await m.close();
    return { name, size: blob.size, where: 'OPFS' };
  }
  await idb(DB, 'readwrite', (s) => s.put({ name, blob }, slot));
  return { name, size: blob.size, where: 'IndexedDB' };
}

async function read(DIR: string, DB: string, slot: Slot): Promise<{ name: string; file: Blob; where: Cached['where'] } | null> {
  if (hasOpfs()) {
    try {
      const dir = await opfsDir(DIR);
      const meta = JSON.parse(await (await (await dir.getFileHandle(`${slot}.json`)).getFile()).text()) as { name: string; size: number };
      const file = await (await dir.getFileHandle(slot)).getFile();
      // a write cut short (the tab closed mid-way) leaves a file of another size: not a checkpoint to offer
      return file.size === meta.size ? { name: meta.name, file, where: 'OPFS' } : null;
    } catch (e) {
      if ((e as DOMException).name === 'NotFoundError') return null;
      throw e;
    }
  }
  const v = await idb<{ name: string; blob: Blob } | undefined>(DB, 'readonly', (s) => s.get(slot) as IDBRequest<{ name: string; blob: Blob } | undefined>);
  return v ? { name: v.name, file: v.blob, where: 'IndexedDB' } : null;
}

async function forget(DIR: string, DB: string): Promise<void> {
  if (hasOpfs()) await (await navigator.storage.getDirectory()).removeEntry(DIR, { recursive: true }).catch((e: DOMException) => {
    if (e.name !== 'NotFoundError') throw e;
  });
  if (typeof indexedDB !== 'undefined') await idb(DB, 'readwrite', (s) => s.clear()).catch(() => {});
}
