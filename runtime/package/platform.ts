/**
 * What a generated package needs from its host, in one interface with a Node implementation
 * (platform-node.ts) and a browser one (platform-web.ts). The package's package.json picks one with
 * the `#platform` subpath import (conditions "node" / "default"), so a bundler for the browser never
 * sees a `node:` import and Node never needs fetch.
 */
import type { Checkpoint } from '../checkpoint/reader.ts';

export interface Platform {
  /** The bytes of a file shipped in the package (a URL resolved against the entry module). */
  readAsset(url: URL): Promise<Uint8Array<ArrayBuffer>>;
  /** The bytes of a file the user names: a path in Node, a URL in a browser. */
  readFile(location: string): Promise<Uint8Array>;
  /** A checkpoint the user names: in Node a path read lazily, tensor by tensor; in a browser a URL, fetched. */
  openCheckpoint(location: string): Promise<Checkpoint>;
}
