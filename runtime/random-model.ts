/**
 * Seeded random checkpoints, with values in the ranges a trained RWKV-6 has (decays that neither vanish
 * nor explode, lerp coefficients in (0, 1), LayerNorm weights near 1), so that benchmarks and "unseen
 * model" tests run real arithmetic without a download. The one generator: in memory (`randomTensors`,
 * `randomWeights`) for tests and benchmarks, and as a file in the official safetensors layout
 * (`writeRandomModel`, `rwkvc random-model`); the same seed gives the same values in all three.
 */
import { expectedTensors, type StoredDType } from './checkpoint/index.ts';
import { writeSafetensorsStream } from './checkpoint/safetensors-stream.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { toBf16, toF16 } from '../kernels/dtype.ts';
import { materializeWeight, type TensorReader } from '../kernels/weights.ts';
import type { WeightProvider } from '../targets/backend.ts';

/** mulberry32: small, fast, and the same numbers on every platform. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function valuesFor(name: string, shape: number[], rnd: () => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const uni = (lo: number, hi: number) => { for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rnd(); return out; };
  const fanIn = shape.length >= 2 ? shape[shape.length - 1] : 1;
  if (/ln\d|ln_out|ln_x|ln0/.test(name)) return name.endsWith('.weight') ? uni(0.8, 1.2) : uni(-0.1, 0.1);
  if (name.endsWith('time_decay')) return uni(-6, -0.5);
  if (name.endsWith('time_faaaa')) return uni(-0.5, 0.5);
  if (/time_maa_[xwkvrg]$/.test(name)) return uni(0, 1);
  if (/time_maa_w[12]|time_decay_w[12]/.test(name)) return uni(-0.05, 0.05);
  if (name === 'emb.weight') return uni(-0.5, 0.5);
  const s = 1 / Math.sqrt(name.endsWith('att.output.weight') || name.endsWith('ffn.value.weight') ? fanIn * 4 : fanIn);
  return uni(-s * Math.sqrt(3), s * Math.sqrt(3));
}

/**
 * The tensors of a random checkpoint for `cfg`, by official name, each made when first read. Every
 * tensor has its own stream, seeded from `seed` and its name, so its values do not depend on which
 * tensors were read before it.
 */
export function randomTensors(cfg: ModelConfig, seed = 1): TensorReader {
  const shapes = expectedTensors(cfg);
  const made = new Map<string, Float32Array>();
  return (name) => {
    let v = made.get(name);
    if (!v) {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`no tensor ${name} in a ${cfg.nLayer}-layer model`);
      let h = seed;
      for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 0x9e3779b1);
      made.set(name, (v = valuesFor(name, shape, seededRandom(h))));
    }
    return v;
  };
}

/** randomTensors as a target's weights: each plan weight made from them as its source says (transposed, ln0 folded). */
export function randomWeights(cfg: ModelConfig, seed = 1): WeightProvider {
  const read = randomTensors(cfg, seed);
  return (d) => materializeWeight(d.source, read);
}

export function writeRandomModel(path: string, cfg: ModelConfig, seed: number, dtype: 'f32' | 'bf16' | 'f16' = 'bf16', onTensor?: (i: number, n: number) => void): void {
  // Tensor by tensor, each made when the file reaches it (a fresh generator each, so nothing is cached):
  // a real-size model (finch-3b: 6 GB of bf16) is never held whole.
  const names = [...expectedTensors(cfg)];
  const tensors = names.map(([name, shape]) => ({ name, dtype: dtype as StoredDType, shape }));
  writeSafetensorsStream(path, tensors, (i) => {
    onTensor?.(i, names.length);
    const v = randomTensors(cfg, seed)(names[i]![0]);
    return dtype === 'f32' ? v : dtype === 'bf16' ? toBf16(v) : toF16(v);
  }, { generator: 'rwkvc random-model', seed: String(seed) });
}
