/**
 * How weights are laid out in GPU buffers, and how shaders read them back.
 *
 * Every format is read four elements at a time (`wN_4(e)` in WGSL, e a multiple of 4), so a matrix row
 * starts on a 4-element boundary: rows are padded with zeros to a multiple of 4 (int8 rows are already a
 * multiple of INT8_BLOCK = 32). `shader-f16` is not needed: f16 and bf16 are two per u32, widened with
 * `unpack2x16float` or a shift, which is exact, so the values a shader multiplies are exactly
 * `dequantize(w, cols, fmt)` of kernels/dtype.ts.
 *
 *   f32   array<vec4<f32>>   4 elements per vec4
 *   f16   array<vec2<u32>>   element 2k in the low half of word k (little-endian u16 pairs)
 *   bf16  array<vec2<u32>>   same packing; a bf16 is the top half of an f32
 *   int8  array<u32>         the q bytes of all rows, 4 per word, then one f16 scale per 32 consecutive
 *                            elements of a row, two per word, from word `sc` (a shader parameter): Q8_0's bytes
 *   q4_0  array<u32>         ggml's nibbles of all rows (16 bytes per 32-block: element j of the block in
 *                            the low nibble of byte j, element j + 16 in its high one), then the f16 d of
 *                            each block, two per word, from word `sc`: Q4_0's bytes with d moved aside
 *   q4_1  array<u32>         the same nibbles, then one word per block from word `sc`: f16 d low, f16 m high
 */
import {
  INT8_BLOCK, Q4_BLOCK, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, isBlockFormat, q4Bytes, q4Value, toInt8, toQ4, type Int8Weights,
} from '../../kernels/dtype.ts';
import type { WeightDType } from '../../kernels/plan.ts';

export type WFormat = WeightDType;

const ceil4 = (n: number) => Math.ceil(n / 4) * 4;

/** Elements from one row's start to the next one's, as uploaded. */
export function rowStride(fmt: WFormat, cols: number): number {
  return isBlockFormat(fmt) ? cols : ceil4(cols);
}

/** Bytes that `rows` rows of `cols` take in a GPU buffer (a multiple of 4). */
export function matrixBytes(fmt: WFormat, rows: number, cols: number): number {
  const s = rowStride(fmt, cols);
  switch (fmt) {
    case 'f32': return rows * s * 4;
    case 'f16': case 'bf16': return rows * s * 2;
    case 'int8': return rows * cols + Math.ceil(rows * cols / INT8_BLOCK / 2) * 4;
    case 'q4_0': return rows * cols / 2 + Math.ceil(rows * cols / Q4_BLOCK / 2) * 4;
    case 'q4_1': return rows * cols / 2 + (rows * cols / Q4_BLOCK) * 4;
  }
}

/** Word offset of the int8 scales in a buffer holding `rows` rows. */
export function int8ScaleWord(rows: number, cols: number): number {
  return (rows * cols) / 4;
}

/** Word offset of the block scales (int8, q4_0, q4_1) in a buffer holding `rows` rows. */
export function scaleWord(fmt: WFormat, rows: number, cols: number): number {
  return fmt === 'int8' ? int8ScaleWord(rows, cols) : (rows * cols) / 8;
}

/** Rows [row0, row0 + rows) of a [*, cols] matrix, encoded for the GPU. */
export function encodeRows(fmt: WFormat, values: Float32Array, cols: number, row0: number, rows: number): Uint8Array {
  const bytes = new Uint8Array(matrixBytes(fmt, rows, cols));
  const src = values.subarray(row0 * cols, (row0 + rows) * cols);
  const s = rowStride(fmt, cols);
  switch (fmt) {
    case 'f32': {
      const out = new Float32Array(bytes.buffer);
      for (let r = 0; r < rows; r++) out.set(src.subarray(r * cols, (r + 1) * cols), r * s);
      break;
    }
    case 'f16': case 'bf16': {
      const out = new Uint16Array(bytes.buffer);
      const conv = fmt === 'f16' ? f32ToF16 : f32ToBf16;
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * s + c] = conv(src[r * cols + c]);
      break;
    }
    case 'int8': {
      const { q, scales } = toInt8(src, cols);
      bytes.set(new Uint8Array(q.buffer, q.byteOffset, q.byteLength), 0);
      new Uint16Array(bytes.buffer, q.byteLength, scales.length).set(Array.from(scales, f32ToF16));
      break;
    }
    case 'q4_0': case 'q4_1': {
      const q = toQ4(src, cols, fmt);
      for (let b = 0; b < q.d.length; b++) q4Bytes(q.q, b, bytes, 16 * b);
      const h = new Uint16Array(bytes.buffer, rows * cols / 2, fmt === 'q4_0' ? q.d.length : 2 * q.d.length);
      for (let b = 0; b < q.d.length; b++) {
        if (fmt === 'q4_0') h[b] = q.dBits[b];
        else { h[2 * b] = q.dBits[b]; h[2 * b + 1] = q.mBits[b]; }
      }
      break;
    }
  }
  return bytes;
}

/** One row of an encoded matrix back as f32 (the embedding kept on the host). */
export function decodeRow(fmt: WFormat, bytes: Uint8Array, cols: number, rows: number, row: number, out: Float32Array, at: number): void {
  const s = rowStride(fmt, cols);
  switch (fmt) {
    case 'f32':
      out.set(new Float32Array(bytes.buffer, bytes.byteOffset + row * s * 4, cols), at);
      return;
    case 'f16': case 'bf16': {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset + row * s * 2, cols);
      const conv = fmt === 'f16' ? f16ToF32 : bf16ToF32;
      for (let c = 0; c < cols; c++) out[at + c] = conv(h[c]);
      return;
    }
    case 'int8': {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset + rows * cols + (row * cols / INT8_BLOCK) * 2, cols / INT8_BLOCK);
      const w: Int8Weights = { q: new Int8Array(bytes.buffer, bytes.byteOffset + row * cols, cols), scales: Float32Array.from(h, f16ToF32) };
      // Same product as dequantize(): q·scale rounded once to f32.
      for (let c = 0; c < cols; c++) out[at + c] = w.q[c] * w.scales[Math.floor(c / INT8_BLOCK)];
      return;
    }
    case 'q4_0': case 'q4_1': {
      const nb = cols / Q4_BLOCK, per = fmt === 'q4_0' ? 1 : 2;
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset + rows * cols / 2 + row * nb * 2 * per, nb * per);
      const w = { q: new Uint8Array(cols), d: new Float32Array(nb), m: new Float32Array(nb), dBits: new Uint16Array(0), mBits: new Uint16Array(0) };
      for (let c = 0; c < cols; c++) {
        const byte = bytes[row * cols / 2 + (c >> 5) * 16 + (c & 15)];
        w.q[c] = c & 16 ? byte >> 4 : byte & 15;
      }
      for (let b = 0; b < nb; b++) { w.d[b] = f16ToF32(h[b * per]); if (per === 2) w.m[b] = f16ToF32(h[2 * b + 1]); }
      for (let c = 0; c < cols; c++) out[at + c] = q4Value(w, fmt, c);
      return;
    }
  }
}

/** The WGSL element type of a weight binding. */
export function wgslArrayElem(fmt: WFormat): string {
  switch (fmt) {
    case 'f32': return 'vec4<f32>';
    case 'f16': case 'bf16': return 'vec2<u32>';
    case 'int8': case 'q4_0': case 'q4_1': return 'u32';
  }
}
