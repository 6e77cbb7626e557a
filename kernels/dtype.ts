/**
 * Weight storage formats shared by every target, so a checkpoint packed once means the same thing
 * everywhere. f32 → bf16/f16 round to nearest even; int8 is symmetric with one f16 scale per
 * INT8_BLOCK consecutive inputs of a row (a row length must be a multiple of it): ggml's Q8_0,
 * 34 bytes per 32 weights.
 */
export const INT8_BLOCK = 32;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40; // NaN stays NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow → ±0
    man |= 0x800000; // subnormal: shift in the implicit bit, round to nearest even
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = man >>> shift;
    const rest = man & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = man >>> 13;
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) { m = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | m;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function toBf16(w: Float32Array): Uint16Array {
  const out = new Uint16Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = f32ToBf16(w[i]);
  return out;
}

export function toF16(w: Float32Array): Uint16Array {
  const out = new Uint16Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = f32ToF16(w[i]);
  return out;
}

export interface Int8Weights { q: Int8Array; scales: Float32Array }

/**
 * Quantise an [rows, cols] matrix: per block of INT8_BLOCK along a row, scale = f16(max|w| / 127)
 * (an f16 value, held in f32) and q = round(w / scale) clamped to ±127 (the f16 rounding may put
 * the largest |w| a hair past 127 steps).
 */
export function toInt8(w: Float32Array, cols: number): Int8Weights {
  if (cols % INT8_BLOCK) throw new Error(`int8 weights need rows that are a multiple of ${INT8_BLOCK} long, got ${cols}`);
  const nb = w.length / INT8_BLOCK;
  const q = new Int8Array(w.length), scales = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    let m = 0;
    for (let i = 0; i < INT8_BLOCK; i++) m = Math.max(m, Math.abs(w[b * INT8_BLOCK + i]));
    const s = f16ToF32(f32ToF16(m / 127));
    if (!Number.isFinite(s)) throw new Error(`int8: a block of ${INT8_BLOCK} weights holds ${m}, beyond what an f16 scale covers (|w| ≤ 8.3e6)`);
    scales[b] = s;
    for (let i = 0; i < INT8_BLOCK; i++) q[b * INT8_BLOCK + i] = s ? Math.max(-127, Math.min(127, Math.round(w[b * INT8_BLOCK + i] / s))) : 0;
  }
  return { q, scales };
}

/**
 * 4-bit formats, exactly ggml's blocks of 32 consecutive inputs of a row (QK4_0 = QK4_1 = 32):
 *   q4_0  d (f16), 16 bytes of nibbles: value = (q − 8)·d             18 bytes per 32 weights
 *   q4_1  d (f16), m (f16), 16 bytes:   value = q·d + m               20 bytes per 32 weights
 * Byte j of a block holds input j in its low nibble and input j + 16 in its high one. The quantisers
 * are ggml's quantize_row_q4_0_ref / quantize_row_q4_1_ref operation for operation in f32 (d from the
 * f32 extreme, q from its unrounded inverse, `(int8_t)(x + 8.5f)` truncation), so a GGUF written from
 * these bytes and our kernels compute with the very same numbers.
 */
export const Q4_BLOCK = 32;
export type Q4Format = 'q4_0' | 'q4_1';
export interface Q4Weights {
  /** One nibble per weight, unpacked (0..15), in input order. */
  q: Uint8Array;
  /** Per block: d as an f16 value (held in f32). */
  d: Float32Array;
  /** Per block: q4_1's minimum m as an f16 value; zeros for q4_0 (whose offset is −8·d). */
  m: Float32Array;
  /** The f16 bits of d and m, as stored. */
  dBits: Uint16Array;
  mBits: Uint16Array;
}

/** The formats that block each row by 32 inputs (a row length must be a multiple of 32). */
export const isBlockFormat = (dtype: string): dtype is 'int8' | Q4Format => dtype === 'int8' || dtype === 'q4_0' || dtype === 'q4_1';

const fr = Math.fround;

export function toQ4(w: Float32Array, cols: number, fmt: Q4Format): Q4Weights {
  if (cols % Q4_BLOCK) throw new Error(`${fmt} weights need rows that are a multiple of ${Q4_BLOCK} long, got ${cols}`);
  const nb = w.length / Q4_BLOCK;
  const q = new Uint8Array(w.length), d = new Float32Array(nb), m = new Float32Array(nb);
  const dBits = new Uint16Array(nb), mBits = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const x = w.subarray(b * Q4_BLOCK, (b + 1) * Q4_BLOCK);
    let id: number, off: number; // q = trunc(fround(fround((x − min)·id) + off)), as ggml
    let min = 0;
    if (fmt === 'q4_0') {
      let amax = 0, max = 0;
      for (let j = 0; j < Q4_BLOCK; j++) if (amax < Math.abs(x[j])) { amax = Math.abs(x[j]); max = x[j]; }
      const df = fr(max / -8);
      id = df ? fr(1 / df) : 0;
      off = 8.5;
      dBits[b] = f32ToF16(df);
    } else {
      let lo = Infinity, hi = -Infinity; // FLT_MAX / −FLT_MAX start: same result for finite weights
      for (let j = 0; j < Q4_BLOCK; j++) { if (x[j] < lo) lo = x[j]; if (x[j] > hi) hi = x[j]; }
      const df = fr(fr(hi - lo) / 15);
      id = df ? fr(1 / df) : 0;
      off = 0.5;
      min = lo;
      dBits[b] = f32ToF16(df);
      mBits[b] = f32ToF16(lo);
      m[b] = f16ToF32(mBits[b]);
    }
    d[b] = f16ToF32(dBits[b]);
    if (!Number.isFinite(d[b]) || !Number.isFinite(m[b]))
      throw new Error(`${fmt}: a block of ${Q4_BLOCK} weights is beyond what its f16 ${fmt === 'q4_0' ? 'scale covers (|w| ≤ 5.2e5)' : 'scale and minimum cover (|w| ≤ 65504)'}`);
    for (let j = 0; j < Q4_BLOCK; j++) {
      const v = fr(fr(fmt === 'q4_0' ? x[j] * id : fr(x[j] - min) * id) + off);
      // (int8_t) truncates toward zero; v ≥ 0 here (|x·id| ≤ 8 for q4_0, (x − min)·id ≥ 0 for q4_1)
      q[b * Q4_BLOCK + j] = Math.min(15, Math.trunc(v));
    }
  }
  return { q, d, m, dBits, mBits };
}

/** Block `b`'s 16 ggml nibble bytes (input j low, j + 16 high). */
export function q4Bytes(q: Uint8Array, b: number, out: Uint8Array, at: number): void {
  for (let j = 0; j < 16; j++) out[at + j] = q[b * Q4_BLOCK + j] | (q[b * Q4_BLOCK + j + 16] << 4);
}

/**
 * The value of nibble q of block b: q4_0 (q − 8)·d is exact in f32 (4 × 11 significant bits); q4_1
 * q·d + m is rounded once to f32 (q·d exact, then the add), which is what every target's widening
 * computes (mul, then add; no fused multiply-add).
 */
export function q4Value(w: Q4Weights, fmt: Q4Format, i: number): number {
  const b = Math.floor(i / Q4_BLOCK);
  return fmt === 'q4_0' ? (w.q[i] - 8) * w.d[b] : fr(w.q[i] * w.d[b] + w.m[b]);
}

/** The values a target computes with, so tests can compare a quantised run with exact arithmetic. */
export function dequantize(w: Float32Array, cols: number, dtype: 'f32' | 'bf16' | 'f16' | 'int8' | Q4Format): Float32Array {
  switch (dtype) {
    case 'f32': return w;
    case 'bf16': return Float32Array.from(toBf16(w), bf16ToF32);
    case 'f16': return Float32Array.from(toF16(w), f16ToF32);
    case 'int8': {
      const { q, scales } = toInt8(w, cols);
      return Float32Array.from(q, (v, i) => v * scales[Math.floor(i / INT8_BLOCK)]);
    }
    case 'q4_0': case 'q4_1': {
      const q = toQ4(w, cols, dtype);
      return Float32Array.from(q.q, (_, i) => q4Value(q, dtype, i));
    }
  }
}
