/**
 * What 64-bit addressing (WASM memory64) costs the WASM target's decode: the real matvec kernel
 * (targets/wasm/linear.ts, decode, f32 / int8 / q4_0 panels) as the codegen renders it, against an
 * i64-addressed variant of the same text, timed A/B interleaved in headless Chromium and in Node 20
 * (`--experimental-wasm-memory64`, set here at run time), 1 and 2 threads on a shared memory.
 *
 *   npx tsx bench/wasm-memory64.ts [--rounds 30] [--window-ms 25] [--threads 1,2] [--dtypes f32,int8,q4_0]
 *                                  [--env chromium,node] [--stream-mib 128] [--plain] [--json]
 *                                  [--chromium-js-flags --no-wasm-memory64-trap-handling]
 *
 * The i64 variant is not a second renderer: `toMemory64` rewrites the module text the way a memory64
 * codegen would have to emit it. Addresses are values derived from the kernel's address parameters
 * (`$aK`) and the thread-scratch global `$ts`; those locals, params and globals become i64 (found by
 * propagation through local.set / global.set of pointer-valued expressions), pointer arithmetic becomes
 * i64 (an i32 offset joining it is widened: constants as i64 constants, products in i64 so that
 * panel index × panel bytes cannot wrap past 4 GiB, anything else by i64.extend_i32_u), pointer
 * comparisons become i64 compares, and the memory is declared `i64`. A pointer met anywhere else is an
 * error, so nothing is silently left 32-bit. In Chromium a third variant runs the same i64 module with
 * the weights placed above 4 GiB (memory of 4 GiB + the matrix), which only memory64 can address.
 *
 * Both (all three) variants must write bit-identical outputs; the first tile of rows is also checked
 * against a float64 reference of the dequantised weights.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { WeightDType } from '../kernels/plan.ts';
import { dequantize } from '../kernels/dtype.ts';
import { seededRandom } from '../runtime/random-model.ts';
import { LinearRenderer, panelBytes } from '../targets/wasm/linear.ts';
import { mathlib } from '../targets/wasm/mathlib.ts';
import { packWeight } from '../targets/wasm/pack.ts';
import { CONTROL_BYTES, PANEL } from '../targets/wasm/abi.ts';
import { Params } from '../targets/wasm/wat.ts';
import { PRESETS } from '../runtime/presets.ts';
import wabtInit from 'wabt';
import { CHROMIUM_QUIET_ARGS, findChromium } from '../examples/browser/chromium.ts';
import { startStaticServer } from '../examples/browser/static-server.ts';

// ---------------------------------------------------------------------------------------------------
// WAT as s-expressions

export type Sx = string | Sx[];

export function parseSx(text: string): Sx[] {
  const root: Sx[] = [];
  const stack: Sx[][] = [root];
  const re = /\s+|;;[^\n]*|\(;[\s\S]*?;\)|\(|\)|"(?:[^"\\]|\\.)*"|[^\s()";]+/g;
  for (const m of text.matchAll(re)) {
    const t = m[0];
    if (/^\s/.test(t) || t.startsWith(';;') || t.startsWith('(;')) continue;
    if (t === '(') { const l: Sx[] = []; stack[stack.length - 1].push(l); stack.push(l); }
    else if (t === ')') { stack.pop(); if (!stack.length) throw new Error('unbalanced )'); }
    else stack[stack.length - 1].push(t);
  }
  if (stack.length !== 1) throw new Error('unbalanced (');
  return root;
}

export const printSx = (e: Sx): string => (typeof e === 'string' ? e : `(${e.map(printSx).join(' ')})`);

const head = (e: Sx): string => (Array.isArray(e) && typeof e[0] === 'string' ? e[0] : '');

/** Memory instructions: their first list operand is the address. */
const MEMORY_OP = /^(?:[if](?:32|64)|v128)\.(?:load|store|atomic)|^v128\.load\d|^memory\.atomic\./;
const COMPARE = /^i32\.(eq|ne|lt_u|gt_u|le_u|ge_u|lt_s|gt_s|le_s|ge_s)$/;

/** V8's limit for a 64-bit memory: 16 GiB (the module's maximum; a wasm32 module declares 65536 pages, 4 GiB). */
export const MAX_PAGES64 = 262144;

/** Counts of what the rewrite did, for the report. */
export interface M64Stats { pointerLocals: string[]; extends: number; i64Muls: number; constants: number }

/**
 * The memory64 rewrite of a module (see the file comment). `seed(name)` says which params start as
 * addresses (the kernel's `$aK`); the globals seeded are `pointerGlobals`.
 */
export function toMemory64(text: string, seed = (p: string) => /^\$a\d+$/.test(p), pointerGlobals = ['$ts'], maxPages = MAX_PAGES64): { text: string; stats: M64Stats } {
  const mod = parseSx(text)[0] as Sx[];
  if (head(mod) !== 'module') throw new Error('not a module');
  const stats: M64Stats = { pointerLocals: [], extends: 0, i64Muls: 0, constants: 0 };
  const gptr = new Set(pointerGlobals);
  const funcs = mod.filter((f) => head(f) === 'func') as Sx[][];
  const nameOf = (f: Sx[]) => (typeof f[1] === 'string' && f[1].startsWith('$') ? f[1] : '');
  const paramsOf = (f: Sx[]) => f.filter((d) => head(d) === 'param').map((d) => (d as Sx[])[1] as string);
  // pointer locals per function, to a fixed point (calls pass pointers into callee params too)
  const ptr = new Map<Sx[], Set<string>>(funcs.map((f) => [f, new Set(paramsOf(f).filter(seed))]));
  const byName = new Map(funcs.map((f) => [nameOf(f), f]));
  const isPtr = (e: Sx, P: Set<string>): boolean => {
    const h = head(e);
    if (h === 'local.get' || h === 'local.tee') return P.has((e as Sx[])[1] as string);
    if (h === 'global.get') return gptr.has((e as Sx[])[1] as string);
    if (h === 'i32.add') return isPtr((e as Sx[])[1], P) || isPtr((e as Sx[])[2], P);
    if (h === 'i32.sub') return isPtr((e as Sx[])[1], P);
    return false;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (const f of funcs) {
      const P = ptr.get(f)!;
      const walk = (e: Sx): void => {
        if (!Array.isArray(e)) return;
        const h = head(e);
        if ((h === 'local.set' || h === 'local.tee') && !P.has(e[1] as string) && isPtr(e[2], P)) { P.add(e[1] as string); changed = true; }
        if (h === 'global.set' && e[2] !== undefined && head(e[2]) === 'local.get' && gptr.has(e[1] as string) && !P.has((e[2] as Sx[])[1] as string)) {
          P.add((e[2] as Sx[])[1] as string); changed = true;
        }
        if (h === 'call') {
          const callee = byName.get(e[1] as string);
          if (callee) {
            const cp = paramsOf(callee), CP = ptr.get(callee)!;
            e.slice(2).forEach((a, k) => { if (isPtr(a, P) && !CP.has(cp[k])) { CP.add(cp[k]); changed = true; } });
          }
        }
        e.forEach(walk);
      };
      f.forEach(walk);
    }
  }
  const i64const = (c: string) => {
    const v = BigInt.asUintN(32, BigInt(c));
    stats.constants++;
    return ['i64.const', v.toString()];
  };
  for (const f of funcs) {
    const P = ptr.get(f)!;
    stats.pointerLocals.push(...[...P].map((p) => `${nameOf(f) || '(export)'}:${p}`));
    /** An i32 offset joining pointer arithmetic, as i64. */
    const widen = (e: Sx): Sx => {
      if (isPtr(e, P)) return rw(e);
      const h = head(e), l = e as Sx[];
      if (h === 'i32.const') return i64const(l[1] as string);
      if (h === 'i32.mul' || h === 'i32.add' || h === 'i32.shl') {
        if (h === 'i32.mul') stats.i64Muls++;
        return [h.replace('i32', 'i64'), widen(l[1]), widen(l[2])];
      }
      stats.extends++;
      return ['i64.extend_i32_u', rw(e)];
    };
    const rw = (e: Sx): Sx => {
      if (!Array.isArray(e)) return e;
      const h = head(e);
      if (h === 'local.get' || h === 'global.get') return e;
      if ((h === 'i32.add' || h === 'i32.sub') && isPtr(e, P)) return [h.replace('i32', 'i64'), widen(e[1]), widen(e[2])];
      if ((h === 'local.set' || h === 'local.tee') && P.has(e[1] as string)) return [h, e[1], widen(e[2])];
      if (h === 'global.set' && gptr.has(e[1] as string)) return [h, e[1], widen(e[2])];
      if (COMPARE.test(h) && (isPtr(e[1], P) || isPtr(e[2], P))) return [h.replace('i32', 'i64'), widen(e[1]), widen(e[2])];
      if (h === 'param' || h === 'local') return P.has(e[1] as string) ? [h, e[1], 'i64'] : e;
      if (h === 'call') {
        const callee = byName.get(e[1] as string);
        const CP = callee ? ptr.get(callee)! : new Set<string>(), cp = callee ? paramsOf(callee) : [];
        return [h, e[1], ...e.slice(2).map((a, k) => (CP.has(cp[k]) ? widen(a) : guard(a, h)))];
      }
      if (MEMORY_OP.test(h)) {
        const at = e.findIndex((a, k) => k > 0 && Array.isArray(a));
        return e.map((a, k) => (k === at ? widen(a) : k > at && at > 0 ? guard(a, h) : a));
      }
      return e.map((a, k) => (k === 0 ? a : guard(a, h)));
    };
    /** An operand where an i32 is expected: a pointer here means the rewrite does not know the op. */
    const guard = (a: Sx, op: string): Sx => {
      if (Array.isArray(a) && isPtr(a, P)) throw new Error(`pointer ${printSx(a)} used by ${op}: not an address operation`);
      return rw(a);
    };
    const out = rw(f) as Sx[];
    f.splice(0, f.length, ...out);
  }
  for (let k = 0; k < mod.length; k++) {
    const d = mod[k];
    if (head(d) === 'global' && gptr.has((d as Sx[])[1] as string)) mod[k] = [d[0], d[1], ['mut', 'i64'], ['i64.const', '0']];
    const mem = head(d) === 'memory' ? d as Sx[] : head(d) === 'import' ? (d as Sx[]).find((x) => head(x) === 'memory') as Sx[] | undefined : undefined;
    if (mem) {
      // limits: min max [shared]; the maximum rises to what the engine allows a 64-bit memory
      const at = typeof mem[1] === 'string' && mem[1].startsWith('$') ? 2 : 1;
      if (/^\d+$/.test(mem[at + 1] as string)) mem[at + 1] = String(maxPages);
      mem.splice(at, 0, 'i64');
    }
  }
  return { text: printSx(mod), stats };
}

// ---------------------------------------------------------------------------------------------------
// The kernel module

/** Addresses inside the bench memory (bytes). Threads' scratch sits after the control block. */
const SCRATCH = 65536, SCRATCH_BYTES = 65536, X_AT = 4 << 20, Y_AT = 8 << 20, W_AT = 16 << 20;
const PAGE = 65536;

export interface KernelCase { dtype: WeightDType; O: number; I: number }

/**
 * The decode matvec phase for one O×I matrix exactly as kernels.ts lowers a linear (LinearRenderer,
 * matmul off, default schedule), in a module with the real $lo and $barrier, and an exported
 * `run(reps, tid, nth, addresses…)` that calls it `reps` times with a barrier after each call, as a
 * decode program does. Returns the i32 text and the order of the kernel's address params.
 */
export function kernelModule(c: KernelCase, relaxed: boolean): { text: string; roles: ('w' | 'x' | 'y')[] } {
  const P = new Params();
  const r = new LinearRenderer(P, { relaxed, matmul: false, stageOff: 0, panelOff: 4 * c.I + 64 });
  // distinct placeholders, so Params gives each role its own parameter; the real addresses are run()'s
  const ph = { w: 3, x: 1, y: 2 } as const;
  const body = r.render([{ w: { addr: ph.w, dtype: c.dtype, O: c.O, I: c.I }, x: ph.x, xStride: c.I, y: ph.y, yStride: c.O, loads: {}, last: false }]);
  const roles = P.values.map((v) => (v === ph.w ? 'w' : v === ph.x ? 'x' : 'y'));
  const lib = (parseSx(`(m ${mathlib()})`)[0] as Sx[]).filter((f) => ['$lo', '$barrier'].includes((f as Sx[])[1] as string)).map(printSx);
  const args = roles.map((_, k) => `(local.get $a${k})`).join(' ');
  const text = `(module
(import "env" "memory" (memory 1 65536 shared))
(global $ts (mut i32) (i32.const 0))
(func (export "init") (param $s i32) (global.set $ts (local.get $s)))
${lib.join('\n')}
(func $k0 (param $tid i32) (param $nth i32) (param $T i32) ${P.header()} ${r.L.text()}
${body})
(func (export "run") (param $reps i32) (param $tid i32) (param $nth i32) ${P.header()}
  (loop $r
    (call $k0 (local.get $tid) (local.get $nth) (i32.const 1) ${args})
    (call $barrier (local.get $nth))
    (local.set $reps (i32.sub (local.get $reps) (i32.const 1)))
    (br_if $r (i32.gt_s (local.get $reps) (i32.const 0)))))
)`;
  return { text, roles };
}

const wabt = await wabtInit();
export function assembleWat(text: string, relaxed: boolean, memory64: boolean): Uint8Array<ArrayBuffer> {
  const m = wabt.parseWat('bench.wat', text, { simd: true, threads: true, relaxed_simd: relaxed, memory64, mutable_globals: true, sign_extension: true, sat_float_to_int: true, bulk_memory: true, multi_value: true });
  try { return new Uint8Array(m.toBinary({}).buffer); } finally { m.destroy(); }
}

/** One tile of the matrix (TILE_O rows) packed in the target's panel layout, and x. */
const TILE_O = 768;
const tiles = new Map<string, { tile: Uint8Array; values: Float32Array; x: Float32Array }>();
export function packTile(dtype: WeightDType, I: number, seed = 1): { tile: Uint8Array; values: Float32Array; x: Float32Array } {
  const key = `${dtype} ${I} ${seed}`;
  if (!tiles.has(key)) tiles.set(key, packTileNow(dtype, I, seed));
  return tiles.get(key)!;
}
function packTileNow(dtype: WeightDType, I: number, seed: number): { tile: Uint8Array; values: Float32Array; x: Float32Array } {
  const rnd = seededRandom(seed);
  const values = Float32Array.from({ length: TILE_O * I }, () => (rnd() * 2 - 1) * 0.05);
  const x = Float32Array.from({ length: I }, () => rnd() * 2 - 1);
  const bytes = panelBytes(dtype, I) * (TILE_O / PANEL);
  const buf = new ArrayBuffer(bytes);
  packWeight(buf, { key: 'w', weight: 'w', pack: 'panel', dtype, O: TILE_O, I, row0: 0, offset: 0, bytes }, values,
    { name: 'w', shape: [TILE_O, I], dtype, source: { kind: 'random' } as never });
  return { tile: new Uint8Array(buf), values, x };
}

/** float64 reference of the tile's outputs (dequantised weights, exact x). */
function reference(dtype: WeightDType, I: number, values: Float32Array, x: Float32Array): { y: Float64Array; scale: Float64Array } {
  const w = dequantize(values, I, dtype as 'f32');
  const y = new Float64Array(TILE_O), scale = new Float64Array(TILE_O);
  for (let o = 0; o < TILE_O; o++) {
    let s = 0, a = 0;
    for (let i = 0; i < I; i++) { s += w[o * I + i] * x[i]; a += Math.abs(w[o * I + i] * x[i]); }
    y[o] = s; scale[o] = a;
  }
  return { y, scale };
}

/**
 * One matvec on this thread (no workers): the y row of the i32 or the i64 module for case `c`, the
 * weights tiled from packTile. Node 20 needs `--experimental-wasm-memory64` (see enableMemory64).
 */
export function matvecOnce(c: KernelCase, relaxed: boolean, is64: boolean): Float32Array {
  const { text, roles } = kernelModule(c, relaxed);
  const bin = is64 ? assembleWat(toMemory64(text).text, relaxed, true) : assembleWat(text, relaxed, false);
  const { tile, x } = packTile(c.dtype, c.I);
  const pages = Math.ceil((W_AT + tile.byteLength * (c.O / TILE_O) + PAGE) / PAGE);
  const mem = is64
    ? memory64(pages)
    : new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  for (let t = 0; t < c.O / TILE_O; t++) new Uint8Array(mem.buffer, W_AT + t * tile.byteLength, tile.byteLength).set(tile);
  new Float32Array(mem.buffer, X_AT, c.I).set(x);
  const ex = new WebAssembly.Instance(new WebAssembly.Module(bin), { env: { memory: mem } }).exports as { init(s: number | bigint): void; run(...a: (number | bigint)[]): void };
  const a = (v: number) => (is64 ? BigInt(v) : v);
  ex.init(a(SCRATCH));
  ex.run(1, 0, 1, ...roles.map((r) => a(r === 'w' ? W_AT : r === 'x' ? X_AT : Y_AT)));
  return new Float32Array(mem.buffer.slice(Y_AT, Y_AT + 4 * c.O));
}

/** A shared i64 memory of `pages` (descriptor key 'address' in the finished proposal, 'index' in V8 11.3). */
function memory64(pages: number): WebAssembly.Memory {
  const M = WebAssembly.Memory as unknown as new (d: object) => WebAssembly.Memory;
  try { return new M({ initial: BigInt(pages), maximum: BigInt(pages), shared: true, address: 'i64', index: 'i64' }); }
  catch { return new M({ initial: pages, maximum: pages, shared: true, address: 'i64', index: 'i64' }); }
}

/** Node 20 (V8 11.3) has memory64 behind a flag; it takes effect for modules compiled after this. */
export function enableMemory64(): void {
  v8.setFlagsFromString('--experimental-wasm-memory64');
}

/** The first tile's outputs against float64 (relative to Σ|w·x| per output): the kernel really ran. */
export function tileError(c: KernelCase, y: Float32Array): number {
  const { values, x } = packTile(c.dtype, c.I);
  return relErr(c, values, x, Array.from(y.subarray(0, TILE_O)));
}

// ---------------------------------------------------------------------------------------------------
// The harness: one ES module text run by Node (data: URL) and by the page. Every thread is a worker
// (thread 0 too: a page may not block); each variant has its own memory and its own workers.

const WORKER = String.raw`
let ex, tid, nth, is64;
const onMsg = async (m) => {
  if (m.type === 'init') {
    ({ tid, nth, is64 } = m);
    try {
      const inst = await WebAssembly.instantiate(m.module, { env: { memory: m.memory } });
      ex = inst.exports;
      ex.init(is64 ? BigInt(m.scratch) : m.scratch);
      post({ type: 'ready' });
    } catch (e) { post({ type: 'error', message: String(e && e.stack || e) }); }
  } else if (m.type === 'run') {
    const a = m.addrs.map((v) => (is64 ? BigInt(v) : v));
    try {
      ex.run(1, tid, nth, ...a); // every thread leaves this barrier together: the clock starts level
      const t0 = performance.now();
      ex.run(m.reps, tid, nth, ...a);
      post({ type: 'done', ms: (performance.now() - t0) / m.reps });
    } catch (e) { post({ type: 'error', message: String(e && e.stack || e) }); }
  }
};
let post;
if (typeof self !== 'undefined' && typeof self.postMessage === 'function' && typeof require === 'undefined') {
  post = (m) => self.postMessage(m); self.onmessage = (e) => onMsg(e.data);
} else {
  const { parentPort } = require('node:worker_threads');
  post = (m) => parentPort.postMessage(m); parentPort.on('message', onMsg);
}
`;

const HARNESS = String.raw`
const PAGE = 65536;
/** A shared memory of 'bytes', 32- or 64-bit index (the JS API takes BigInt limits for i64 in newer engines). */
function memory(bytes, is64) {
  const pages = Math.ceil(bytes / PAGE);
  if (!is64) return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  // the descriptor key is 'address' in the finished proposal (Chromium), 'index' in V8 11.3 (Node 20)
  try { return new WebAssembly.Memory({ initial: BigInt(pages), maximum: BigInt(pages), shared: true, address: 'i64', index: 'i64' }); }
  catch { return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true, address: 'i64', index: 'i64' }); }
}
function call(w, msg) {
  return new Promise((res, rej) => { w.onmsg = (m) => (m.type === 'error' ? rej(new Error(m.message)) : res(m)); w.postMessage(msg); });
}
export async function runCase(cfg, spawn) {
  const { tile, x, tiles, L, nth, rounds, targetMs } = cfg;
  const variants = [];
  for (const v of cfg.variants) {
    const bin = v.is64 ? cfg.wasm64 : cfg.wasm32;
    const module = await WebAssembly.compile(bin);
    const wBytes = tile.byteLength * tiles;
    const mem = memory(v.w + wBytes + PAGE, v.is64);
    const buf = mem.buffer;
    for (let t = 0; t < tiles; t++) new Uint8Array(buf, v.w + t * tile.byteLength, tile.byteLength).set(tile);
    new Uint8Array(buf, L.x, x.byteLength).set(x);
    const workers = [];
    for (let t = 0; t < nth; t++) {
      const w = spawn();
      workers.push(w);
      await call(w, { type: 'init', module, memory: mem, tid: t, nth, is64: v.is64, scratch: L.scratch + t * L.scratchBytes });
    }
    const addrs = cfg.roles.map((r) => (r === 'w' ? v.w : r === 'x' ? L.x : L.y));
    variants.push({ name: v.name, mem, workers, addrs, ms: [] });
  }
  const time = async (v, reps) => {
    const out = await Promise.all(v.workers.map((w) => call(w, { type: 'run', reps, addrs: v.addrs })));
    return out[0].ms;
  };
  // warm-up (tier-up to the optimising compiler) and the number of calls per timing
  let reps = 1;
  for (const v of variants) {
    let ms = await time(v, 2);
    const t0 = performance.now();
    while (performance.now() - t0 < cfg.warmMs) ms = await time(v, Math.max(1, Math.round(50 / ms)));
    reps = Math.max(reps, Math.max(3, Math.round(targetMs / ms)));
  }
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? [...variants].reverse() : variants;
    for (const v of order) v.ms.push(await time(v, reps));
  }
  // outputs: clear y, one call, compare
  const ys = [];
  for (const v of variants) {
    new Uint8Array(v.mem.buffer, L.y, cfg.O * 4).fill(0xff);
    await time(v, 1);
    ys.push(new Uint32Array(v.mem.buffer.slice(L.y, L.y + cfg.O * 4)));
  }
  let diff = 0;
  for (let k = 1; k < ys.length; k++) for (let i = 0; i < cfg.O; i++) if (ys[k][i] !== ys[0][i]) diff++;
  for (const v of variants) for (const w of v.workers) w.terminate();
  return {
    reps, diffs: diff,
    y0: Array.from(new Float32Array(ys[0].buffer, 0, cfg.tileO)),
    variants: variants.map((v) => ({ name: v.name, ms: v.ms })),
  };
}
`;

// ---------------------------------------------------------------------------------------------------
// Drivers

interface Variant { name: string; is64: boolean; w: number }
interface CaseResult { env: string; dtype: WeightDType; O: number; I: number; mib: number; nth: number; reps: number; identical: boolean; refErr: number; variants: { name: string; ms: number[] }[]; load: number[] }

function caseConfig(c: KernelCase, nth: number, rounds: number, relaxed: boolean, variants: Variant[], windowMs: number) {
  const { text, roles } = kernelModule(c, relaxed);
  const m64 = toMemory64(text);
  const { tile, values, x } = packTile(c.dtype, c.I);
  return {
    wasm32: assembleWat(text, relaxed, false), wasm64: assembleWat(m64.text, relaxed, true), stats: m64.stats,
    tile, x: new Uint8Array(x.buffer), tiles: c.O / TILE_O, tileO: TILE_O, O: c.O, roles, nth, rounds,
    variants, targetMs: windowMs, warmMs: 400,
    L: { x: X_AT, y: Y_AT, scratch: SCRATCH, scratchBytes: SCRATCH_BYTES },
    check: { values, xf: x },
  };
}

type RunCase = (cfg: Record<string, unknown>) => Promise<{ reps: number; diffs: number; y0: number[]; variants: { name: string; ms: number[] }[] }>;

function relErr(c: KernelCase, values: Float32Array, x: Float32Array, y0: number[]): number {
  const ref = reference(c.dtype, c.I, values, x);
  let e = 0;
  for (let o = 0; o < TILE_O; o++) e = Math.max(e, Math.abs(y0[o] - ref.y[o]) / ref.scale[o]);
  return e;
}

async function nodeRunner(): Promise<RunCase> {
  // V8 11.3 (Node 20) has memory64 and relaxed SIMD behind flags; set before the first wasm compile
  enableMemory64();
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  // optimised code from the first call, as the runtime compiles (no background tier-up racing the clock)
  v8.setFlagsFromString('--no-liftoff');
  const mod = await import(`data:text/javascript,${encodeURIComponent(HARNESS)}`);
  const spawn = () => {
    const w = new Worker(WORKER, { eval: true }) as Worker & { onmsg?: (m: unknown) => void };
    w.on('message', (m) => w.onmsg?.(m));
    return w;
  };
  return (cfg) => mod.runCase(cfg, spawn);
}

/**
 * Chromium with V8's baseline compiler off (--no-liftoff), so every timed call runs the optimised code,
 * as the Node runtime arranges for itself; on a loaded machine the background tier-up can otherwise
 * land in the middle of the timings. `jsFlags` adds V8 flags.
 */
async function chromiumRunner(jsFlags = ''): Promise<{ run: RunCase; close: () => Promise<void>; version: string }> {
  const exe = findChromium();
  if (!exe) throw new Error('no Chromium (set RWKVC_CHROMIUM)');
  const page0 = `<!doctype html><script type="module">
import { runCase } from '/harness.js';
const workerUrl = URL.createObjectURL(new Blob([await (await fetch('/worker.js')).text()], { type: 'text/javascript' }));
window.runCase = async (cfg) => {
  for (const k of ['wasm32', 'wasm64', 'tile', 'x']) cfg[k] = new Uint8Array(await (await fetch(cfg[k])).arrayBuffer());
  return runCase(cfg, () => { const w = new Worker(workerUrl); w.onmessage = (e) => w.onmsg?.(e.data); return w; });
};
window.ready = crossOriginIsolated;
</script>`;
  const pages: Record<string, string | Uint8Array> = { '/index.html': page0, '/harness.js': HARNESS, '/worker.js': WORKER };
  const server = await startStaticServer({ pages, crossOriginIsolated: true });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: exe, headless: true, args: [...CHROMIUM_QUIET_ARGS, `--js-flags=--no-liftoff${jsFlags ? ` ${jsFlags}` : ''}`] });
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error' && !/favicon|404/.test(m.text())) console.error('[page]', m.text()); });
  page.on('crash', () => console.error('[page] renderer crashed'));
  page.on('pageerror', (e) => console.error('[page]', e.message));
  await page.goto(`${server.url}/index.html`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready !== undefined);
  if (!(await page.evaluate(() => (window as unknown as { ready: boolean }).ready))) throw new Error('page is not cross-origin isolated');
  let n = 0;
  const run: RunCase = async (cfg) => {
    const id = n++;
    for (const k of ['wasm32', 'wasm64', 'tile', 'x']) { pages[`/d${id}-${k}.bin`] = cfg[k] as Uint8Array; cfg[k] = `/d${id}-${k}.bin`; }
    try { return await page.evaluate((c) => (window as unknown as { runCase: RunCase }).runCase(c), cfg); }
    finally { for (const k of ['wasm32', 'wasm64', 'tile', 'x']) delete pages[`/d${id}-${k}.bin`]; }
  };
  return { run, version: browser.version(), close: async () => { await browser.close(); await server.close(); } };
}

const median = (a: number[]) => { const s = [...a].sort((p, q) => p - q); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

function cpuLine(): string {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const name = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? '?';
  const flags = (/flags\s*:\s*(.*)/.exec(info)?.[1] ?? '').split(' ');
  const keep = ['sse4_2', 'avx', 'avx2', 'fma', 'bmi2', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx_vnni'].filter((f) => flags.includes(f));
  return `${name}, ${availableParallelism()} CPUs, ${keep.join(' ')}`;
}

export function benchCases(streamMiB: number, dtypes: WeightDType[]): KernelCase[] {
  const C = PRESETS['bench-0.1b'].nEmbd; // 768
  const out: KernelCase[] = [];
  for (const dtype of dtypes) {
    out.push({ dtype, O: C, I: C }); // an attention matrix of bench-0.1b: 768 × 768
    // rows of the same width, as many tiles as make streamMiB (bench-0.1b's head is 65536 × 768)
    const tileBytes = panelBytes(dtype, C) * (TILE_O / PANEL);
    out.push({ dtype, O: TILE_O * Math.max(1, Math.round((streamMiB * 2 ** 20) / tileBytes)), I: C });
  }
  return out;
}

async function main() {
  const argv = process.argv.slice(2);
  const opt = (k: string, d: string) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
  // Many short windows, A/B alternating: on a loaded machine the fastest windows are the ones no other
  // process interrupted, so the minimum is printed beside the median.
  const rounds = Number(opt('rounds', '30'));
  const windowMs = Number(opt('window-ms', '25'));
  const threads = opt('threads', '1,2').split(',').map(Number);
  const envs = opt('env', 'chromium,node').split(',');
  const dtypes = opt('dtypes', 'f32,int8,q4_0').split(',') as WeightDType[];
  const streamMiB = Number(opt('stream-mib', '128'));
  const relaxed = !argv.includes('--plain');
  const json = argv.includes('--json');
  // e.g. --no-wasm-memory64-trap-handling: explicit bounds checks on 64-bit accesses, to attribute the cost
  const jsFlags = opt('chromium-js-flags', '');
  const cases = benchCases(streamMiB, dtypes);
  console.log(`CPU: ${cpuLine()}; load ${loadavg().map((v) => v.toFixed(2)).join(' ')}; ${relaxed ? 'relaxed-SIMD' : 'plain SIMD'} modules; ${rounds} rounds`);
  const results: CaseResult[] = [];
  for (const env of envs) {
    let run: RunCase, close = async () => {}, label = env;
    if (env === 'node') { run = await nodeRunner(); label = `node ${process.version}`; }
    else { const c = await chromiumRunner(jsFlags); run = c.run; close = c.close; label = `chromium ${c.version}${jsFlags ? ` ${jsFlags}` : ''}`; }
    try {
      for (const c of cases) for (const nth of threads) {
        const mib = (panelBytes(c.dtype, c.I) * (c.O / PANEL)) / 2 ** 20;
        const variants: Variant[] = [{ name: 'i32', is64: false, w: W_AT }, { name: 'i64', is64: true, w: W_AT }];
        // above 4 GiB: Chromium only (Node 20's JS API caps an i64 memory at 65536 pages)
        if (env === 'chromium' && c.O > c.I) variants.push({ name: 'i64 >4GiB', is64: true, w: 2 ** 32 + W_AT });
        const cfg = caseConfig(c, nth, rounds, relaxed, variants, windowMs);
        const { check, stats, ...sent } = cfg;
        const before = loadavg();
        let r;
        try { r = await run(sent as Record<string, unknown>); }
        catch (e) { console.log(`${label} ${c.dtype} ${c.O}×${c.I} ${nth} thr: FAILED ${(e as Error).message.split('\n')[0]}`); continue; }
        const res: CaseResult = { env: label, dtype: c.dtype, O: c.O, I: c.I, mib, nth, reps: r.reps, identical: r.diffs === 0, refErr: relErr(c, check.values, check.xf, r.y0), variants: r.variants, load: [before[0], loadavg()[0]] };
        results.push(res);
        const cols = r.variants.map((v) => {
          const m = median(v.ms);
          // per-round ratio to i32 (same round), median: robust to drifts between rounds
          const ratio = median(v.ms.map((ms, k) => ms / r.variants[0].ms[k]));
          const lo = Math.min(...v.ms), lo0 = Math.min(...r.variants[0].ms);
          return `${v.name} ${m.toFixed(3)} ms ${((mib * 2 ** 20) / (m * 1e6)).toFixed(1)} GB/s${v === r.variants[0] ? '' : ` (×${ratio.toFixed(3)})`}` +
            ` min ${lo.toFixed(3)} ms ${((mib * 2 ** 20) / (lo * 1e6)).toFixed(1)} GB/s${v === r.variants[0] ? '' : ` (×${(lo / lo0).toFixed(3)})`}`;
        });
        console.log(`${label} ${c.dtype} ${c.O}×${c.I} (${mib.toFixed(1)} MiB) ${nth} thr, ${r.reps} calls/timing: ${cols.join(' | ')}; ` +
          `outputs ${r.diffs === 0 ? 'bit-identical' : `${r.diffs} differ`}; ref err ${res.refErr.toExponential(1)}; load ${res.load.map((v) => v.toFixed(2)).join('→')}`);
        if (stats && c === cases[0] && nth === threads[0] && env === envs[0]) console.log(`  rewrite: ${stats.pointerLocals.length} pointer locals/params, ${stats.extends} i64.extend_i32_u, ${stats.i64Muls} i64.mul, ${stats.constants} i64 consts`);
      }
    } finally { await close(); }
  }
  if (json) console.log(JSON.stringify(results));
  if (results.some((r) => !r.identical)) { console.log('the i64 variant changed outputs'); process.exitCode = 1; }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
