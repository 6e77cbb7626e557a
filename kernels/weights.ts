/**
 * Turning checkpoint tensors into the values a plan (or the interpreter) computes with: the one place
 * that knows the weight transforms, so the interpreter and every runtime agree.
 */
import type { WeightSource } from './plan.ts';

export type TensorReader = (name: string) => Float32Array;

export function materializeWeight(src: WeightSource, read: TensorReader): Float32Array {
  let v = read(src.tensor);
  if (src.transpose) {
    const s = src.stored;
    const rows = s[s.length - 2], cols = s[s.length - 1], batch = v.length / (rows * cols);
    const t = new Float32Array(v.length);
    for (let b = 0; b < batch; b++)
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) t[b * rows * cols + c * rows + r] = v[b * rows * cols + r * cols + c];
    v = t;
  }
  if (src.fold) {
    const w = read(src.fold.w), b = read(src.fold.b), C = w.length, out = new Float32Array(v.length);
    for (let r = 0; r < v.length / C; r++) {
      let mean = 0, vr = 0;
      for (let c = 0; c < C; c++) mean += v[r * C + c];
      mean /= C;
      for (let c = 0; c < C; c++) vr += (v[r * C + c] - mean) ** 2;
      const inv = 1 / Math.sqrt(vr / C + src.fold.eps);
      for (let c = 0; c < C; c++) out[r * C + c] = (v[r * C + c] - mean) * inv * w[c] + b[c];
    }
    v = out;
  }
  if (src.repeat) {
    // rows in groups of `group`, each group `times` times: [G·group, cols] → [G·times·group, cols]
    const { group, times } = src.repeat, rows = src.stored[0], cols = v.length / rows, out = new Float32Array(v.length * times);
    for (let gi = 0; gi < rows / group; gi++)
      for (let k = 0; k < times; k++) out.set(v.subarray(gi * group * cols, (gi + 1) * group * cols), (gi * times + k) * group * cols);
    v = out;
  }
  return v;
}
