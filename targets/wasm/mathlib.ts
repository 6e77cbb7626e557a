/**
 * WAT helper functions every module carries: f32x4 transcendental functions (WASM has no exp),
 * a horizontal sum with a fixed order, a LayerNorm of one row, and the thread barrier.
 *
 * Accuracy: exp is a degree-7 polynomial after Cody–Waite reduction (≈ 2 ulp); tanh uses its Taylor
 * series below |x| = 0.4 (no cancellation for small x) and 1 − 2/(e^{2|x|}+1) above (≈ 3 ulp).
 * The tests compare every function against Math.* on many points.
 */
import { CTL } from './abi.ts';
import { f4, i4 } from './wat.ts';

const LOG2E = 1.4426950408889634;
const LN2_HI = 0.693359375; // few bits, so n·LN2_HI is exact
const LN2_LO = -2.12194440e-4;
// Taylor coefficients of tanh x = x·(1 + c1 x² + c2 x⁴ + …)
const TANH_C = [-1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075, -929569 / 638512875];

function horner(v: string, coefs: number[]): string {
  // coefs from the highest power down: ((c0·v + c1)·v + c2)…
  let e = f4(coefs[0]);
  for (let k = 1; k < coefs.length; k++) e = `(f32x4.add (f32x4.mul ${e} ${v}) ${f4(coefs[k])})`;
  return e;
}

const SPIN = 200000; // ≈ 0.3 ms: a decode phase is ~0.1–1 ms, and a futex wake-up costs tens of µs per phase

export function mathlib(): string {
  const expPoly = horner('(local.get $r)', [1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1]);
  const tanhPoly = horner('(local.get $x2)', [...TANH_C].reverse().concat([1]));
  return `
(func $exp (param $x v128) (result v128) (local $n v128) (local $r v128) (local $p v128)
  (local.set $n (f32x4.nearest (f32x4.mul (f32x4.min (local.get $x) ${f4(88.3)}) ${f4(LOG2E)})))
  (local.set $r (f32x4.sub (f32x4.sub (f32x4.min (local.get $x) ${f4(88.3)}) (f32x4.mul (local.get $n) ${f4(LN2_HI)}))
                           (f32x4.mul (local.get $n) ${f4(LN2_LO)})))
  (local.set $p ${expPoly})
  (local.set $p (f32x4.mul (local.get $p)
    (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (f32x4.max (local.get $n) ${f4(-126)})) ${i4(127)}) (i32.const 23))))
  ;; below −87.33 the result is (almost) zero; NaN stays NaN (lt is false for NaN)
  (v128.andnot (local.get $p) (f32x4.lt (local.get $x) ${f4(-87.33)})))

(func $tanh (param $x v128) (result v128) (local $a v128) (local $x2 v128) (local $e v128) (local $big v128) (local $small v128)
  (local.set $a (f32x4.abs (local.get $x)))
  (local.set $x2 (f32x4.mul (local.get $a) (local.get $a)))
  (local.set $small (f32x4.mul (local.get $a) ${tanhPoly}))
  (local.set $e (call $exp (f32x4.add (local.get $a) (local.get $a))))
  (local.set $big (f32x4.sub ${f4(1)} (f32x4.div ${f4(2)} (f32x4.add (local.get $e) ${f4(1)}))))
  (local.set $a (v128.bitselect (local.get $small) (local.get $big) (f32x4.lt (local.get $a) ${f4(0.4)})))
  ;; copy the sign of x (tanh is odd); NaN falls through the big branch as NaN
  (v128.bitselect (local.get $x) (local.get $a) ${i4(0x80000000)}))

(func $sigmoid (param $x v128) (result v128)
  (f32x4.div ${f4(1)} (f32x4.add ${f4(1)} (call $exp (f32x4.neg (local.get $x))))))

(func $silu (param $x v128) (result v128)
  (f32x4.div (local.get $x) (f32x4.add ${f4(1)} (call $exp (f32x4.neg (local.get $x))))))

(func $sq (param $x v128) (result v128) (f32x4.mul (local.get $x) (local.get $x)))

;; ((l0 + l2) + (l1 + l3)): the one summation order of every horizontal reduction
(func $hsum (param $v v128) (result f32) (local $s v128)
  (local.set $s (f32x4.add (local.get $v) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
  (f32.add (f32x4.extract_lane 0 (local.get $s)) (f32x4.extract_lane 1 (local.get $s))))

;; out[0..n) = (x − mean)·inv·w + b with biased variance (torch LayerNorm); x may equal out
(func $ln_row (param $x i32) (param $o i32) (param $w i32) (param $b i32) (param $n i32) (param $eps f32)
  (local $i i32) (local $nv i32) (local $ne i32) (local $acc v128) (local $s f32) (local $mean f32) (local $d f32)
  (local $inv f32) (local $mv v128) (local $iv v128) (local $dv v128)
  (local.set $nv (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
  (local.set $ne (i32.shl (local.get $n) (i32.const 2)))
  ;; mean
  (local.set $acc (v128.const i32x4 0 0 0 0)) (local.set $i (i32.const 0))
  (block $b1 (loop $l1 (br_if $b1 (i32.ge_u (local.get $i) (local.get $nv)))
    (local.set $acc (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $x) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 16))) (br $l1)))
  (local.set $s (call $hsum (local.get $acc)))
  (block $b2 (loop $l2 (br_if $b2 (i32.ge_u (local.get $i) (local.get $ne)))
    (local.set $s (f32.add (local.get $s) (f32.load (i32.add (local.get $x) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 4))) (br $l2)))
  (local.set $mean (f32.div (local.get $s) (f32.convert_i32_u (local.get $n))))
  (local.set $mv (f32x4.splat (local.get $mean)))
  ;; variance
  (local.set $acc (v128.const i32x4 0 0 0 0)) (local.set $i (i32.const 0))
  (block $b3 (loop $l3 (br_if $b3 (i32.ge_u (local.get $i) (local.get $nv)))
    (local.set $dv (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $i))) (local.get $mv)))
    (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $dv) (local.get $dv))))
    (local.set $i (i32.add (local.get $i) (i32.const 16))) (br $l3)))
  (local.set $s (call $hsum (local.get $acc)))
  (block $b4 (loop $l4 (br_if $b4 (i32.ge_u (local.get $i) (local.get $ne)))
    (local.set $d (f32.sub (f32.load (i32.add (local.get $x) (local.get $i))) (local.get $mean)))
    (local.set $s (f32.add (local.get $s) (f32.mul (local.get $d) (local.get $d))))
    (local.set $i (i32.add (local.get $i) (i32.const 4))) (br $l4)))
  (local.set $inv (f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div (local.get $s) (f32.convert_i32_u (local.get $n))) (local.get $eps)))))
  (local.set $iv (f32x4.splat (local.get $inv)))
  ;; normalise
  (local.set $i (i32.const 0))
  (block $b5 (loop $l5 (br_if $b5 (i32.ge_u (local.get $i) (local.get $nv)))
    (v128.store (i32.add (local.get $o) (local.get $i))
      (f32x4.add (f32x4.mul (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $i))) (local.get $mv)) (local.get $iv))
                            (v128.load (i32.add (local.get $w) (local.get $i))))
                 (v128.load (i32.add (local.get $b) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 16))) (br $l5)))
  (block $b6 (loop $l6 (br_if $b6 (i32.ge_u (local.get $i) (local.get $ne)))
    (f32.store (i32.add (local.get $o) (local.get $i))
      (f32.add (f32.mul (f32.mul (f32.sub (f32.load (i32.add (local.get $x) (local.get $i))) (local.get $mean)) (local.get $inv))
                        (f32.load (i32.add (local.get $w) (local.get $i))))
               (f32.load (i32.add (local.get $b) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 4))) (br $l6))))

;; out[0..n) = x·inv·w with inv = 1/sqrt(mean(x²) + eps): RMSNorm (ggml rms_norm then mul); x may equal out
(func $rms_row (param $x i32) (param $o i32) (param $w i32) (param $n i32) (param $eps f32)
  (local $i i32) (local $nv i32) (local $ne i32) (local $acc v128) (local $s f32) (local $d f32) (local $inv f32) (local $iv v128) (local $dv v128)
  (local.set $nv (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
  (local.set $ne (i32.shl (local.get $n) (i32.const 2)))
  (local.set $acc (v128.const i32x4 0 0 0 0)) (local.set $i (i32.const 0))
  (block $b1 (loop $l1 (br_if $b1 (i32.ge_u (local.get $i) (local.get $nv)))
    (local.set $dv (v128.load (i32.add (local.get $x) (local.get $i))))
    (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $dv) (local.get $dv))))
    (local.set $i (i32.add (local.get $i) (i32.const 16))) (br $l1)))
  (local.set $s (call $hsum (local.get $acc)))
  (block $b2 (loop $l2 (br_if $b2 (i32.ge_u (local.get $i) (local.get $ne)))
    (local.set $d (f32.load (i32.add (local.get $x) (local.get $i))))
    (local.set $s (f32.add (local.get $s) (f32.mul (local.get $d) (local.get $d))))
    (local.set $i (i32.add (local.get $i) (i32.const 4))) (br $l2)))
  (local.set $inv (f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div (local.get $s) (f32.convert_i32_u (local.get $n))) (local.get $eps)))))
  (local.set $iv (f32x4.splat (local.get $inv)))
  (local.set $i (i32.const 0))
  (block $b3 (loop $l3 (br_if $b3 (i32.ge_u (local.get $i) (local.get $nv)))
    (v128.store (i32.add (local.get $o) (local.get $i))
      (f32x4.mul (f32x4.mul (v128.load (i32.add (local.get $x) (local.get $i))) (local.get $iv)) (v128.load (i32.add (local.get $w) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 16))) (br $l3)))
  (block $b4 (loop $l4 (br_if $b4 (i32.ge_u (local.get $i) (local.get $ne)))
    (f32.store (i32.add (local.get $o) (local.get $i))
      (f32.mul (f32.mul (f32.load (i32.add (local.get $x) (local.get $i))) (local.get $inv)) (f32.load (i32.add (local.get $w) (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 4))) (br $l4))))

;; [lo, hi) of n items for thread tid of nth: contiguous, fixed by (n, tid, nth) alone
(func $lo (param $n i32) (param $tid i32) (param $nth i32) (result i32)
  (i32.wrap_i64 (i64.div_u (i64.mul (i64.extend_i32_u (local.get $n)) (i64.extend_i32_u (local.get $tid))) (i64.extend_i32_u (local.get $nth)))))

;; Sense-counting barrier over the control block: spin briefly (threads ≤ cores in the common case),
;; then sleep on the round counter. A trapped thread sets ABORT; waiters then trap too instead of hanging.
(func $barrier (param $nth i32) (local $gen i32) (local $spin i32)
  (if (i32.le_u (local.get $nth) (i32.const 1)) (then (return)))
  (local.set $gen (i32.atomic.load (i32.const ${CTL.BAR_GEN})))
  (if (i32.eq (i32.atomic.rmw.add (i32.const ${CTL.BAR_COUNT}) (i32.const 1)) (i32.sub (local.get $nth) (i32.const 1)))
    (then
      (i32.atomic.store (i32.const ${CTL.BAR_COUNT}) (i32.const 0))
      (drop (i32.atomic.rmw.add (i32.const ${CTL.BAR_GEN}) (i32.const 1)))
      (if (i32.atomic.load (i32.const ${CTL.BAR_WAITERS}))
        (then (drop (memory.atomic.notify (i32.const ${CTL.BAR_GEN}) (i32.const -1)))))
      (return)))
  (local.set $spin (i32.const ${SPIN}))
  (loop $s
    (if (i32.ne (i32.atomic.load (i32.const ${CTL.BAR_GEN})) (local.get $gen)) (then (return)))
    (local.set $spin (i32.sub (local.get $spin) (i32.const 1)))
    (br_if $s (local.get $spin)))
  (loop $w
    (if (i32.atomic.load (i32.const ${CTL.ABORT})) (then (unreachable)))
    (drop (i32.atomic.rmw.add (i32.const ${CTL.BAR_WAITERS}) (i32.const 1)))
    (drop (memory.atomic.wait32 (i32.const ${CTL.BAR_GEN}) (local.get $gen) (i64.const 20000000)))
    (drop (i32.atomic.rmw.sub (i32.const ${CTL.BAR_WAITERS}) (i32.const 1)))
    (br_if $w (i32.eq (i32.atomic.load (i32.const ${CTL.BAR_GEN})) (local.get $gen)))))
`;
}
