/** CUDA C++ as a dialect of the shared C-style printer (targets/gpu/cprint.ts). */
import type { Dialect } from '../gpu/cprint.ts';

export const CUDA: Dialect = {
  name: 'CUDA',
  f32: 'float',
  u32: 'unsigned',
  bind: (name, value) => `const float ${name} = ${value};`,
  // A float literal needs a decimal point or an exponent before the suffix ('1f' is not C++).
  literal: (text) => (/[.e]/.test(text) ? `${text}f` : `${text}.0f`),
  bits: (hex) => `__uint_as_float(0x${hex}u)`,
  exp: (a) => `expf(${a})`,
  // max(a, 0) that keeps NaN (fmaxf would drop it); a helper, so a load argument is read once.
  relu: (a) => `relu_f32(${a})`,
  helpers: {
    // Every helper is defined once in the prelude of model.cu (static inline: unused ones cost nothing).
    tanh_f32: 'tanh_f32',
  },
  tanh: { helper: 'tanh_f32', call: (a) => `tanh_f32(${a})` },
  barrier: '__syncthreads();',
  sharedArray: (name, elem, length) => `__shared__ ${elem} ${name}[${length}];`,
};
