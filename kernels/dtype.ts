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

/** The values a target computes with, so tests can compare a quantised run with exact arithmetic. */
export function dequantize(w: Float32Array, cols: number, dtype: 'f32' | 'bf16' | 'f16' | 'int8'): Float32Array {
  switch (dtype) {
    case 'f32': return w;
    case 'bf16': return Float32Array.from(toBf16(w), bf16ToF32);
    case 'f16': return Float32Array.from(toF16(w), f16ToF32);
    case 'int8': {
      const { q, scales } = toInt8(w, cols);
      return Float32Array.from(q, (v, i) => v * scales[Math.floor(i / INT8_BLOCK)]);
    }
  }
}
