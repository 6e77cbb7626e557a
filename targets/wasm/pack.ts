/**
 * Weight packing at load time (runtime side: no compiler needed). f32 values from the WeightProvider
 * become the storage dtype in the layout the kernels read:
 *
 *   panel [ceil(O/16)][I][16]: for each input i, the 16 outputs of a panel side by side (rows past O
 *   are zero). Within the 16 lanes the order is what makes the kernel's decode cheapest:
 *     f32        lane l = output l
 *     bf16, f16  u16 q = output 8·(q>>3) + 4·(q&1) + ((q&7)>>1)   (even/odd halves of i32 lanes
 *                                                                  widen with one shift or mask)
 *     int8       per block of 32 inputs: 16 input pairs × 32 bytes, byte 2o+u = output o, input 2j+u
 *                (i32x4.dot_i16x8_s adds a pair per output), then the 16 f16 scales, output order
 *     q4_0, q4_1 per block of 32 inputs: 16 input pairs × 16 bytes read as 8 u16 lanes: nibble v (bits
 *                4v..4v+3) of lane 2l+u holds output 4v+l, input 2j+u (an AND or a shift of the u16
 *                lanes gives i32x4.dot_i16x8_s's pairs for outputs 4v..4v+3, no widening), then the
 *                16 f16 d, output order; q4_1 then its 16 f16 minimums
 *   raw: dequantised f32 in the plan's layout (vectors, the embedding table, LoRA bases).
 * The values are exactly those of kernels/dtype.ts dequantize(), which the reference uses.
 */
import type { WeightDecl } from '../../kernels/plan.ts';
import { dequantize, f32ToF16, INT8_BLOCK, Q4_BLOCK, toBf16, toF16, toInt8, toQ4 } from '../../kernels/dtype.ts';
import { PANEL } from './abi.ts';
import type { PackedWeightLayout } from './layout.ts';

const U16_OUT = Array.from({ length: 16 }, (_, q) => 8 * (q >> 3) + 4 * (q & 1) + ((q & 7) >> 1));

export function packWeight(buf: ArrayBufferLike, w: PackedWeightLayout, values: Float32Array, decl: WeightDecl): void {
  const n = decl.shape.reduce((a, b) => a * b, 1);
  if (values.length !== n) throw new Error(`weight '${decl.name}': provider gave ${values.length} values, shape [${decl.shape}] needs ${n}`);
  if (w.pack === 'raw') {
    new Float32Array(buf, w.offset, n).set(dequantize(values, decl.shape[decl.shape.length - 1], decl.dtype));
    return;
  }
  if (w.pack === 'raw16') {
    new Uint16Array(buf, w.offset, n).set(w.dtype === 'bf16' ? toBf16(values) : toF16(values));
    return;
  }
  const O = w.O!, I = w.I!, row0 = w.row0 ?? 0;
  const np = Math.ceil(O / PANEL);
  const slice = values.subarray(row0 * I, (row0 + O) * I);
  switch (w.dtype) {
    case 'f32': {
      const dst = new Float32Array(buf, w.offset, np * I * PANEL);
      for (let p = 0; p < np; p++)
        for (let l = 0; l < PANEL; l++) {
          const o = p * PANEL + l;
          if (o >= O) break;
          const src = o * I, d = p * I * PANEL + l;
          for (let i = 0; i < I; i++) dst[d + i * PANEL] = slice[src + i];
        }
      return;
    }
    case 'bf16': case 'f16': {
      const h = w.dtype === 'bf16' ? toBf16(slice) : toF16(slice);
      const dst = new Uint16Array(buf, w.offset, np * I * PANEL);
      for (let p = 0; p < np; p++)
        for (let q = 0; q < PANEL; q++) {
          const o = p * PANEL + U16_OUT[q];
          if (o >= O) continue;
          const src = o * I, d = p * I * PANEL + q;
          for (let i = 0; i < I; i++) dst[d + i * PANEL] = h[src + i];
        }
      return;
    }
    case 'int8': {
      const { q, scales } = toInt8(slice, I);
      const nb = I / INT8_BLOCK, blockBytes = INT8_BLOCK * PANEL + PANEL * 2;
      const bytes = new Int8Array(buf, w.offset, np * nb * blockBytes);
      const view = new DataView(buf as ArrayBuffer, w.offset, np * nb * blockBytes);
      for (let p = 0; p < np; p++)
        for (let b = 0; b < nb; b++) {
          const base = (p * nb + b) * blockBytes;
          for (let k = 0; k < PANEL; k++) {
            const o = p * PANEL + k;
            if (o >= O) continue;
            for (let i = 0; i < INT8_BLOCK; i++) bytes[base + (i >> 1) * 2 * PANEL + 2 * k + (i & 1)] = q[o * I + b * INT8_BLOCK + i];
          }
          for (let l = 0; l < PANEL; l++) {
            const o = p * PANEL + l;
            view.setUint16(base + INT8_BLOCK * PANEL + 2 * l, o < O ? f32ToF16(scales[o * nb + b]) : 0, true);
          }
        }
      return;
    }
    case 'q4_0': case 'q4_1': {
      const q = toQ4(slice, I, w.dtype);
      const nb = I / Q4_BLOCK, blockBytes = q4BlockBytes(w.dtype);
      const bytes = new Uint8Array(buf, w.offset, np * nb * blockBytes);
      bytes.fill(0); // nibbles are OR-ed in
      const view = new DataView(buf as ArrayBuffer, w.offset, np * nb * blockBytes);
      for (let p = 0; p < np; p++)
        for (let b = 0; b < nb; b++) {
          const base = (p * nb + b) * blockBytes;
          for (let k = 0; k < PANEL; k++) {
            const o = p * PANEL + k;
            if (o >= O) continue;
            for (let i = 0; i < Q4_BLOCK; i++)
              bytes[base + (i >> 1) * 16 + 4 * (k & 3) + 2 * (i & 1) + (k >> 3)] |= q.q[o * I + b * Q4_BLOCK + i] << (4 * ((k >> 2) & 1));
          }
          for (let l = 0; l < PANEL; l++) {
            const o = p * PANEL + l;
            view.setUint16(base + 256 + 2 * l, o < O ? q.dBits[o * nb + b] : 0, true);
            if (w.dtype === 'q4_1') view.setUint16(base + 288 + 2 * l, o < O ? q.mBits[o * nb + b] : 0, true);
          }
        }
      return;
    }
  }
}

/** Bytes of one panel block of 32 inputs: 256 of nibbles, 16 f16 d, and q4_1's 16 f16 m. */
export const q4BlockBytes = (dtype: 'q4_0' | 'q4_1'): number => (dtype === 'q4_0' ? 288 : 320);
