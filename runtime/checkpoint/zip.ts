/**
 * Just enough of ZIP to find stored entries in a torch.save archive: the end-of-central-directory record
 * (and its ZIP64 variant, which every checkpoint over 4 GiB uses), the central directory, and each entry's
 * local header to learn where its data starts. Nothing is decompressed: torch.save stores entries as is,
 * which is what makes lazy, in-place tensor reads possible.
 */
import { inputError } from './errors.ts';
import { le, readAt, u64, type ByteSource } from './source.ts';

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  /** CRC-32 of the entry's data, from the central directory (which holds it even when a data descriptor is used). */
  crc32: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const MAX_EOCD_SEARCH = 22 + 0xffff; // the record plus the longest possible archive comment
const MAX_CENTRAL_DIR = 256 << 20; // a checkpoint has hundreds of entries, not millions

/** Bounds-checked little-endian reads: a record cut short is a truncated or corrupt archive. */
function view(buf: Uint8Array, onShort: () => Error) {
  const v = le(buf);
  const utf8 = new TextDecoder('utf-8');
  const check = (o: number, n: number) => {
    if (o < 0 || o + n > buf.length) throw onShort();
  };
  return {
    length: buf.length,
    u16: (o: number) => (check(o, 2), v.getUint16(o, true)),
    u32: (o: number) => (check(o, 4), v.getUint32(o, true)),
    u64: (o: number) => {
      check(o, 8);
      const n = u64(v, o);
      if (n === undefined) throw onShort();
      return n;
    },
    text: (o: number, n: number) => (check(o, n), utf8.decode(buf.subarray(o, o + n))),
  };
}

export function readZipDirectory(f: ByteSource): Map<string, ZipEntry> {
  const corrupt = (problem: string) => () => inputError(f.name, undefined, `corrupt ZIP: ${problem}`);

  // The EOCD record is at the end, possibly followed by a comment: scan backwards for its signature.
  const tailStart = Math.max(0, f.size - MAX_EOCD_SEARCH);
  const tail = view(readAt(f, tailStart, f.size - tailStart), corrupt('end-of-central-directory record cut short'));
  let eocd = -1;
  for (let p = tail.length - 22; p >= 0; p--) {
    if (tail.u32(p) === SIG_EOCD) { eocd = p; break; }
  }
  if (eocd < 0) throw inputError(f.name, undefined, 'not a ZIP archive (no end-of-central-directory record; truncated file?)');
  let count = tail.u16(eocd + 10);
  let cdSize = tail.u32(eocd + 12);
  let cdOffset = tail.u32(eocd + 16);

  // ZIP64: a locator just before the EOCD points at a record holding the 64-bit versions of these fields.
  const locatorAt = tailStart + eocd - 20;
  if (locatorAt >= 0) {
    const loc = view(readAt(f, locatorAt, 20), corrupt('ZIP64 locator cut short'));
    if (loc.u32(0) === SIG_ZIP64_LOCATOR) {
      const at = loc.u64(8);
      const z = view(readAt(f, at, 56, 'ZIP64 end of central directory'), corrupt('ZIP64 record cut short'));
      if (z.u32(0) !== SIG_ZIP64_EOCD) throw corrupt(`no ZIP64 end-of-central-directory record at byte ${at}`)();
      count = z.u64(32);
      cdSize = z.u64(40);
      cdOffset = z.u64(48);
    }
  }
  if (cdSize > MAX_CENTRAL_DIR) throw corrupt(`central directory of ${cdSize} bytes is implausibly large`)();

  const cd = view(readAt(f, cdOffset, cdSize, 'central directory'), corrupt('central directory entry cut short'));
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (cd.u32(p) !== SIG_CENTRAL) throw corrupt(`bad central directory entry ${i} at byte ${cdOffset + p}`)();
    const nameLen = cd.u16(p + 28), extraLen = cd.u16(p + 30), commentLen = cd.u16(p + 32);
    const e: ZipEntry = {
      name: cd.text(p + 46, nameLen),
      flags: cd.u16(p + 8),
      method: cd.u16(p + 10),
      crc32: cd.u32(p + 16),
      compressedSize: cd.u32(p + 20),
      size: cd.u32(p + 24),
      localHeaderOffset: cd.u32(p + 42),
    };
    // A field that does not fit in 32 bits is 0xFFFFFFFF here; the real values follow, in this order and
    // only for those fields, in the ZIP64 extra field (id 1).
    for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen; x += 4 + cd.u16(x + 2)) {
      if (cd.u16(x) !== 1) continue;
      let y = x + 4;
      for (const k of ['size', 'compressedSize', 'localHeaderOffset'] as const) {
        if (e[k] === 0xffffffff) { e[k] = cd.u64(y); y += 8; }
      }
    }
    if (entries.has(e.name)) throw corrupt(`duplicate entry ${e.name}`)();
    entries.set(e.name, e);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Where a stored entry's bytes start in the file; refuses what cannot be read in place. */
export function entryDataOffset(f: ByteSource, e: ZipEntry): number {
  if (e.method !== 0) {
    throw inputError(f.name, e.name, `ZIP entry is compressed (method ${e.method}); only stored entries can be read, as torch.save writes them`);
  }
  if (e.flags & 1) throw inputError(f.name, e.name, 'ZIP entry is encrypted');
  const h = view(readAt(f, e.localHeaderOffset, 30, e.name), () => inputError(f.name, e.name, 'corrupt ZIP local header'));
  if (h.u32(0) !== SIG_LOCAL) throw inputError(f.name, e.name, `corrupt ZIP: no local header at byte ${e.localHeaderOffset}`);
  const start = e.localHeaderOffset + 30 + h.u16(26) + h.u16(28);
  if (start + e.compressedSize > f.size) {
    throw inputError(f.name, e.name, `truncated file: entry data ends at byte ${start + e.compressedSize}, past the end of the file (size ${f.size})`);
  }
  return start;
}

// CRC-32 (ISO-HDLC, the ZIP one), slicing by 8: table k maps a byte seen k bytes earlier. Portable code
// cannot use node:zlib, and at ~1 GB/s this costs little next to reading the bytes.
const CRC_TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) t[k * 256 + n] = (t[(k - 1) * 256 + n]! >>> 8) ^ t[t[(k - 1) * 256 + n]! & 0xff]!;
  }
  return t;
})();

/** CRC-32 of `bytes`, continuing from `crc` (0 to start), as an unsigned 32-bit number. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  const t = CRC_TABLES;
  let c = ~crc;
  let i = 0;
  const n8 = bytes.length & ~7;
  for (; i < n8; i += 8) {
    const lo = (c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)));
    c = t[7 * 256 + (lo & 0xff)]! ^ t[6 * 256 + ((lo >>> 8) & 0xff)]! ^ t[5 * 256 + ((lo >>> 16) & 0xff)]! ^ t[4 * 256 + (lo >>> 24)]!
      ^ t[3 * 256 + bytes[i + 4]!]! ^ t[2 * 256 + bytes[i + 5]!]! ^ t[256 + bytes[i + 6]!]! ^ t[bytes[i + 7]!]!;
  }
  for (; i < bytes.length; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Refuse an entry whose bytes do not match its CRC-32: flipped bits in a checkpoint must not load silently. */
export function checkCrc(file: string, e: Pick<ZipEntry, 'name' | 'crc32'>, bytes: Uint8Array): void {
  checkCrcValue(file, e, crc32(bytes));
}

/** The same check for a CRC-32 computed piece by piece. */
export function checkCrcValue(file: string, e: Pick<ZipEntry, 'name' | 'crc32'>, got: number): void {
  if (got !== e.crc32) {
    const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
    throw inputError(file, e.name, `corrupt ZIP entry: its data has CRC-32 ${hex(got)} but the ZIP directory says ${hex(e.crc32)}`);
  }
}
