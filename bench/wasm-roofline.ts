/**
 * Roofline probes for the WASM target, run in WASM on the same thread team as the model:
 *   measureBandwidth(threads): SIMD streaming read of ≥ 1 GiB (each thread a contiguous share, read in
 *                              blocks of 1, 2, 4 or 8 nearby concurrent streams: the best), GB/s
 *   measureCompute(threads):  register-resident f32x4 multiply-add chains, GFLOP/s (mul+add = 2 flops/lane;
 *                             with relaxed SIMD one relaxed_madd = 2 flops/lane)
 * Usage: npx tsx bench/wasm-roofline.ts [threads...]
 */
import { availableParallelism } from 'node:os';
import { assemble } from '../targets/wasm/assemble.ts';
import { startTeam } from '../targets/wasm/team.ts';
import { compileOptimized } from '../targets/wasm/runtime.ts';
import { CONTROL_BYTES } from '../targets/wasm/abi.ts';
import { mathlib } from '../targets/wasm/mathlib.ts';

const CHAINS = 12; // independent accumulators: enough to hide mul→add latency on 2 pipes each
const UNROLL = 4;

/** Concurrent sequential streams per thread the read probe tries (the best is the roofline). */
export const STREAMS = [1, 2, 4, 8];
/** Bytes each stream reads of a block (a block is STREAM_CHUNK·S bytes). */
const STREAM_CHUNK = 32768;

/**
 * Read loop over this thread's share [p, p + n·64 KiB) in blocks of S·32 KiB, each block read as S
 * streams side by side (64 bytes from each per iteration). A lone stream leaves fetch slots idle:
 * on this project's Zen 3 VM, 2–4 nearby streams read ~25 % faster than one (and the two-panel
 * matvec is two such streams), so the roofline is the best over S, not one stream's rate.
 */
function readLoop(S: number): string {
  const loads: string[] = [];
  let k = 0;
  for (let s = 0; s < S; s++)
    for (let o = 0; o < 64; o += 16, k++) loads.push(`(local.set $s${k % 4} (f32x4.add (local.get $s${k % 4}) (v128.load offset=${s * STREAM_CHUNK + o} (local.get $q))))`);
  return `(local.set $e (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 16))))
    (loop $b${S}
      (local.set $q (local.get $p)) (local.set $qe (i32.add (local.get $p) (i32.const ${STREAM_CHUNK})))
      (loop $l${S}
        ${loads.join('\n        ')}
        (local.set $q (i32.add (local.get $q) (i32.const 64)))
        (br_if $l${S} (i32.lt_u (local.get $q) (local.get $qe))))
      (local.set $p (i32.add (local.get $p) (i32.const ${S * STREAM_CHUNK})))
      (br_if $b${S} (i32.lt_u (local.get $p) (local.get $e))))`;
}

export function probeWat(relaxed: boolean, pages: number): string {
  const chains = Array.from({ length: CHAINS }, (_, k) => k);
  const step = chains.map((k) => relaxed
    ? `(local.set $a${k} (f32x4.relaxed_madd (local.get $a${k}) (local.get $m) (local.get $c)))`
    : `(local.set $a${k} (f32x4.add (f32x4.mul (local.get $a${k}) (local.get $m)) (local.get $c)))`).join('\n');
  return `(module
(import "env" "memory" (memory ${pages} 65536 shared))
(global $ts (mut i32) (i32.const 0))
(func (export "init") (param $s i32) (global.set $ts (local.get $s)))
;; prog 0: T·1024 rounds of the chains; prog S (${STREAMS.join(', ')}): read bytes [base, base + T·64 KiB)
;; split across threads, each thread's share in blocks of S streams
(func (export "run") (param $prog i32) (param $T i32) (param $tid i32) (param $nth i32)
  (local $p i32) (local $e i32) (local $n i32) (local $q i32) (local $qe i32) (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
  (local $m v128) (local $c v128) ${chains.map((k) => `(local $a${k} v128)`).join(' ')}
  (if (local.get $prog) (then
    (local.set $n (i32.div_u (local.get $T) (local.get $nth)))
    (local.set $p (i32.add (i32.const ${CONTROL_BYTES * 256}) (i32.shl (i32.mul (local.get $n) (local.get $tid)) (i32.const 16))))
    ${STREAMS.map((S) => `(if (i32.eq (local.get $prog) (i32.const ${S})) (then ${readLoop(S)}))`).join('\n    ')}
    (v128.store (global.get $ts) (f32x4.add (f32x4.add (local.get $s0) (local.get $s1)) (f32x4.add (local.get $s2) (local.get $s3)))))
  (else
    (local.set $m (v128.const f32x4 0.9999999 0.9999999 0.9999999 0.9999999))
    (local.set $c (v128.const f32x4 1e-7 1e-7 1e-7 1e-7))
    (local.set $n (i32.mul (local.get $T) (i32.const 1024)))
    (loop $l
      ${Array.from({ length: UNROLL }, () => step).join('\n')}
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    ;; every chain feeds the stored result: a chain whose value is unused is dead code to the engine
    ;; (V8 removes it and the probe would count flops it never ran)
    (v128.store (global.get $ts) ${chains.reduce((e, k) => `(f32x4.add ${e} (local.get $a${k}))`, '(local.get $c)')})))
  ;; the model's barrier: the caller's run returns when every thread is done
  (call $barrier (local.get $nth)))
${mathlib()}
)`;
}

export interface RooflineOptions {
  /** Use the relaxed-SIMD FMA for the compute probe when the engine supports it (default: when it validates). */
  relaxed?: boolean;
  bytes?: number;
}

interface Probe { run(prog: number, T: number): void; dispose(): Promise<void>; relaxed: boolean }

async function probe(threads: number, bytes: number, relaxed?: boolean): Promise<Probe> {
  const chunks = Math.ceil(bytes / 65536);
  const pages = CONTROL_BYTES * 256 / 65536 + chunks + threads + 1;
  let useRelaxed = false;
  let bin = assemble(probeWat(false, pages));
  if (relaxed !== false) {
    const r = assemble(probeWat(true, pages), true);
    if (WebAssembly.validate(r)) { bin = r; useRelaxed = true; }
  }
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  // Touch every page first: untouched pages all map to one zero page and would read from cache.
  new Uint8Array(memory.buffer, 65536).fill(1);
  const mod = await compileOptimized(bin, true); // optimised code on every thread from the first call
  const team = await startTeam(mod, memory, threads, (tid) => (pages - threads - 1 + tid) * 65536);
  return {
    relaxed: useRelaxed,
    run: (prog, T) => team.run(prog, T),
    dispose: () => team.dispose(),
  };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/**
 * A streaming-read probe kept open, so a benchmark can interleave its passes with the work it measures
 * (the machine's share of the memory bus drifts with other tenants). Opening it reads once with every
 * stream count and keeps the fastest; `pass()` reads the whole buffer once more with that count.
 */
export async function openBandwidthProbe(threads: number, bytes = 2 ** 30) {
  const p = await probe(threads, bytes, false);
  // whole 64 KiB chunks, the same number per thread, a whole number of blocks for every stream count
  const unit = threads * Math.max(...STREAMS) * STREAM_CHUNK / 65536;
  const chunks = Math.floor(bytes / 65536 / unit) * unit;
  p.run(1, Math.min(chunks, 256)); // compile and warm up
  const gbs = (S: number) => {
    const t0 = performance.now();
    p.run(S, chunks);
    return (chunks * 65536) / ((performance.now() - t0) / 1e3) / 1e9;
  };
  let streams = 1, first = 0;
  for (const S of STREAMS) {
    const r = gbs(S);
    if (r > first) { first = r; streams = S; }
  }
  return { streams, first, pass: () => gbs(streams), dispose: () => p.dispose() };
}

/** GB/s of a SIMD streaming read over `bytes` (default 1 GiB): the best of a few passes, best stream count. */
export async function measureBandwidth(threads: number, opts: RooflineOptions = {}): Promise<number> {
  const p = await openBandwidthProbe(threads, opts.bytes);
  let best = p.first;
  for (let r = 0; r < 4; r++) best = Math.max(best, p.pass());
  await p.dispose();
  return best;
}

/** GFLOP/s of register-resident f32x4 multiply-add chains on every thread. */
export async function measureCompute(threads: number, opts: RooflineOptions = {}): Promise<{ gflops: number; relaxed: boolean }> {
  const p = await probe(threads, 65536, opts.relaxed);
  const T = 2000; // rounds ×1024
  p.run(0, 10);
  const rates: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    p.run(0, T);
    const flops = threads * T * 1024 * UNROLL * CHAINS * 4 * 2;
    rates.push(flops / ((performance.now() - t0) / 1e3) / 1e9);
  }
  await p.dispose();
  return { gflops: median(rates), relaxed: p.relaxed };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const list = process.argv.slice(2).map(Number);
  for (const th of list.length ? list : [1, availableParallelism()]) {
    const bw = await measureBandwidth(th);
    const c = await measureCompute(th);
    console.log(`threads ${th}: bandwidth ${bw.toFixed(1)} GB/s, compute ${c.gflops.toFixed(1)} GFLOP/s (${c.relaxed ? 'relaxed FMA' : 'mul+add'})`);
  }
}
