/** WGSL as a dialect of the shared C-style printer (targets/gpu/cprint.ts). */
import type { Dialect } from '../gpu/cprint.ts';

export const WGSL: Dialect = {
  name: 'WGSL',
  f32: 'f32',
  u32: 'u32',
  bind: (name, value) => `let ${name} = ${value};`,
  literal: (text) => `${text}f`,
  bits: (hex) => `bitcast<f32>(0x${hex}u)`,
  exp: (a) => `exp(${a})`,
  relu: (a) => `max(${a}, 0.0)`,
  helpers: {
    // WGSL's tanh is only as accurate as sinh/cosh (and overflows to NaN on some drivers for |x| > ~44);
    // this form never overflows, is odd by construction, and is within ~1e-7 absolute of tanh.
    tanh_f32: `fn tanh_f32(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}`,
  },
  tanh: { helper: 'tanh_f32', call: (a) => `tanh_f32(${a})` },
  barrier: 'workgroupBarrier();',
  sharedArray: (name, elem, length) => `var<workgroup> ${name}: array<${elem}, ${length}>;`,
};
