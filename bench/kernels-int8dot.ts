/**
 * Does the relaxed-SIMD int8 dot product win on this host? A register-resident loop of 8 independent
 * `i32x4.relaxed_dot_i8x16_i7x16_add_s` chains (16 multiply-adds per op) against 8 chains of
 * `i32x4.dot_i16x8_s` + `i32x4.add` (8 per op, what the WASM int8 matvec uses: targets/wasm/linear.ts),
 * in multiply-adds per second. On an AVX-VNNI host V8 could lower the first to one `vpdpbusd`; run with
 * `--print-wasm-code` to see what it emits (Node 20's V8 11.3 emits vpmaddubsw + vpmaddwd + vpaddd).
 * The module is exported for a browser page too (`int8DotProbe()` bytes).
 *
 * Usage: npx tsx --experimental-wasm-relaxed-simd [--print-wasm-code] bench/kernels-int8dot.ts
 */
import { assemble } from '../targets/wasm/assemble.ts';

const K = 8;

export function int8DotProbe(): Uint8Array<ArrayBuffer> {
  const locals = Array.from({ length: K }, (_, k) => `(local $a${k} v128) (local $w${k} v128)`).join(' ');
  const sum = Array.from({ length: K }, (_, k) => `(local.get $a${k})`).reduce((e, a) => `(i32x4.add ${e} ${a})`);
  const loop = (op: (k: number) => string) => `(loop $l ${Array.from({ length: K }, (_, k) => `(local.set $a${k} ${op(k)})`).join(' ')}
    (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br_if $l (local.get $n)))`;
  return assemble(`(module
 (func (export "dot") (param $n i32) (result i32) (local $x v128) ${locals}
  (local.set $x (v128.const i8x16 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16))
  ${Array.from({ length: K }, (_, k) => `(local.set $w${k} (v128.const i8x16 ${k} -3 4 -5 6 7 -8 9 1 2 3 4 5 6 7 8))`).join(' ')}
  ${loop((k) => `(i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $w${k}) (local.get $x) (local.get $a${k}))`)}
  (i32x4.extract_lane 0 ${sum}))
 (func (export "i16") (param $n i32) (result i32) (local $x v128) ${locals}
  (local.set $x (v128.const i16x8 1 2 3 4 5 6 7 8))
  ${Array.from({ length: K }, (_, k) => `(local.set $w${k} (v128.const i16x8 ${k} -3 4 -5 6 7 -8 9))`).join(' ')}
  ${loop((k) => `(i32x4.add (local.get $a${k}) (i32x4.dot_i16x8_s (local.get $w${k}) (local.get $x)))`)}
  (i32x4.extract_lane 0 ${sum})))`, true);
}

/** GMAC/s of each loop, `rounds` alternating runs of `n` iterations each. */
export async function measureInt8Dot(rounds = 3, n = 20_000_000): Promise<{ relaxedDot: number[]; dotI16: number[] } | { unavailable: string }> {
  const bin = int8DotProbe();
  if (!WebAssembly.validate(bin)) return { unavailable: 'this engine does not validate relaxed SIMD (Node 20: run with --experimental-wasm-relaxed-simd)' };
  const { compileOptimized } = await import('../targets/wasm/runtime.ts');
  const inst = await WebAssembly.instantiate(await compileOptimized(bin, true));
  const f = inst.exports as { dot(n: number): number; i16(n: number): number };
  f.dot(1000); f.i16(1000);
  const relaxedDot: number[] = [], dotI16: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let t0 = performance.now(); f.dot(n); relaxedDot.push((n * K * 16) / (performance.now() - t0) / 1e6);
    t0 = performance.now(); f.i16(n); dotI16.push((n * K * 8) / (performance.now() - t0) / 1e6);
  }
  return { relaxedDot, dotI16 };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await measureInt8Dot();
  if ('unavailable' in r) console.log(r.unavailable);
  else console.log(`relaxed_dot_i8x16_i7x16_add_s ${r.relaxedDot.map((x) => x.toFixed(1)).join(' / ')} GMAC/s; dot_i16x8_s + add ${r.dotI16.map((x) => x.toFixed(1)).join(' / ')} GMAC/s`);
}
