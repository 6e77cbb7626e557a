/** The generated package's host functions in Node (see platform.ts): files by path, lazily read checkpoints. */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { inputError } from '../../kernels/errors.ts';
import { openFile } from '../checkpoint/fileio.ts';
import { openCheckpointSource } from '../checkpoint/reader.ts';
import type { Platform } from './platform.ts';

async function read(path: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw typeof code === 'string' ? inputError(path, undefined, `cannot read: ${code}`) : e;
  }
}

export const platform: Platform = {
  readAsset: (url) => read(fileURLToPath(url)),
  readFile: read,
  openCheckpoint: async (path) => openCheckpointSource(openFile(path)),
};
