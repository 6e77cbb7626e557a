/**
 * Stored element types and their widening to f32. Every reader hands out freshly allocated buffers
 * (offset 0, so always aligned), and every host rwkvc runs on is little-endian, like the files: typed
 * array views over the raw bytes are therefore the decoded values, no byte swapping needed.
 */
import { inputError } from './errors.ts';

export type StoredDType = 'f32' | 'f16' | 'bf16' | 'i32' | 'f64' | 'i64';

export interface TensorInfo {
  name: string;
  dtype: StoredDType;
  shape: number[];
}

/** A tensor as a reader located it: what it is and where its stored bytes lie in the file. */
export interface StoredTensor extends TensorInfo {
  offset: number;
  nbytes: number;
  /** A .pth tensor's storage (a ZIP entry), whose CRC-32 is checked once, the first time any of it is read. */
  storage?: { name: string; offset: number; size: number; crc32: number };
}

export const DTYPE_BYTES: Record<StoredDType, number> = { f32: 4, f16: 2, bf16: 2, i32: 4, f64: 8, i64: 8 };

/** Element count, or undefined when the shape is not a list of safe non-negative integers. */
export function numelOf(shape: readonly unknown[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return undefined;
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

// f16 has only 65536 values: one lookup table (256 KiB, built on first use) is both the fastest and the
// most obviously correct conversion, since each entry is computed from the IEEE definition.
let f16Table: Float32Array | undefined;

export function f16BitsToF32(h: number): number {
  const sign = h >> 15 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals (exact in f32)
  if (exp === 0x1f) {
    if (mant === 0) return sign * Infinity;
    // Keep the NaN payload (and sign) by building the f32 bit pattern directly.
    const bits = new Uint32Array([((h & 0x8000) << 16) | 0x7f800000 | (mant << 13)]);
    return new Float32Array(bits.buffer)[0]!;
  }
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Decode stored bytes (length already checked against the shape) into f32 values. */
export function widenToF32(dtype: StoredDType, bytes: Uint8Array, file: string, name: string): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  switch (dtype) {
    case 'f32':
      return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case 'bf16': {
      // bf16 is the top half of an f32: shifting the bits up is exact, no rounding involved.
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case 'f16': {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const table = f16ToF32Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
      return out;
    }
    case 'i32':
      return Float32Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, n));
    case 'f64':
      return Float32Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, n));
    case 'i64': {
      const src = new BigInt64Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]!);
      return out;
    }
    default:
      throw inputError(file, name, `cannot widen dtype ${String(dtype)} to f32`);
  }
}
