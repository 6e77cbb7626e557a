/**
 * The generated package's host functions in a browser or any bundle without Node (see platform.ts):
 * files are URLs, fetched. A checkpoint the user already has in memory (a File read with
 * `arrayBuffer()`) is passed to `load` as bytes and never comes here.
 */
import { inputError } from '../../kernels/errors.ts';
import { bytesSource } from '../checkpoint/source.ts';
import { openCheckpointSource } from '../checkpoint/reader.ts';
import type { Platform } from './platform.ts';

async function get(url: string | URL): Promise<Uint8Array<ArrayBuffer>> {
  let r: Response;
  try {
    r = await fetch(url);
  } catch (e) {
    throw inputError(String(url), undefined, `cannot fetch: ${(e as Error).message}`);
  }
  if (!r.ok) throw inputError(String(url), undefined, `cannot fetch: HTTP ${r.status} ${r.statusText}`.trim());
  return new Uint8Array(await r.arrayBuffer());
}

export const platform: Platform = {
  readAsset: get,
  readFile: get,
  openCheckpoint: async (url) => openCheckpointSource(bytesSource(url, await get(url))),
};
