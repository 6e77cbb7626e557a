/**
 * Native streaming-read bandwidth without a compiler: `Buffer.indexOf` of a byte that is absent from
 * the buffer is one call to glibc's `memchr` over all of it (Node's IndexOfNumber), which is vectorised
 * for the CPU it runs on (AVX2/EVEX via ifunc) — the fastest plain read a native program gets. Each
 * thread scans its own share of one SharedArrayBuffer (≥ 1 GiB) in a worker; the passes start together.
 *
 * This is the physical limit `rwkvc bench` reports decode against beside the WASM probe
 * (bench/wasm-roofline.ts): the WASM probe is bounded by what V8 makes of a SIMD128 read loop, which
 * on some hosts is well under what the memory bus gives native code. bench/bandwidth-probe.cpp is the
 * one-off check that memchr reads as fast as a hand-written native loop (`npx tsx bench/bandwidth.ts --c`).
 *
 * Usage: npx tsx bench/bandwidth.ts [--c] [threads...]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

// the worker: wait for a pass number in ctl[0], scan its share, report its ms (indexOf of 0 over bytes of 1)
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { sab, ctl, off, len } = workerData;
const buf = Buffer.from(sab, off, len), flag = new Int32Array(ctl);
let seen = 0;
for (;;) {
  Atomics.wait(flag, 0, seen);
  seen = Atomics.load(flag, 0);
  if (seen < 0) break;
  const t0 = performance.now();
  const hit = buf.indexOf(0);
  parentPort.postMessage({ ms: performance.now() - t0, hit });
}`;

export interface NativeProbe {
  threads: number;
  bytes: number;
  /** Scan the whole buffer once on every thread; GB/s (bytes over the slowest thread's time). */
  pass(): Promise<number>;
  dispose(): Promise<void>;
}

/** Open the probe: `bytes` (default 1 GiB) of ones shared by `threads` workers. */
export async function openNativeProbe(threads: number, bytes = 2 ** 30): Promise<NativeProbe> {
  const share = Math.floor(bytes / threads / 4096) * 4096, total = share * threads;
  const sab = new SharedArrayBuffer(total), ctl = new SharedArrayBuffer(4);
  new Uint8Array(sab).fill(1); // every page touched: untouched pages all map to one zero page
  const workers = Array.from({ length: threads }, (_, i) => new Worker(WORKER, { eval: true, workerData: { sab, ctl, off: i * share, len: share } }));
  const flag = new Int32Array(ctl);
  let n = 0;
  const pass = async () => {
    const done = workers.map((w) => new Promise<{ ms: number; hit: number }>((res, rej) => { w.once('message', res); w.once('error', rej); }));
    Atomics.store(flag, 0, ++n);
    Atomics.notify(flag, 0);
    const r = await Promise.all(done);
    if (r.some((x) => x.hit !== -1)) throw new Error('native bandwidth probe: the absent byte was found');
    return total / (Math.max(...r.map((x) => x.ms)) / 1e3) / 1e9;
  };
  await pass(); // warm-up (first-touch of the workers' TLBs, the ifunc resolved)
  return {
    threads, bytes: total, pass,
    async dispose() { Atomics.store(flag, 0, -1); Atomics.notify(flag, 0); await Promise.all(workers.map((w) => w.terminate())); },
  };
}

/** The best of `passes` native passes, GB/s. */
export async function measureNativeBandwidth(threads: number, passes = 4, bytes?: number): Promise<number> {
  const p = await openNativeProbe(threads, bytes);
  try {
    let best = 0;
    for (let i = 0; i < passes; i++) best = Math.max(best, await p.pass());
    return best;
  } finally {
    await p.dispose();
  }
}

/**
 * The C++ check (bench/bandwidth-probe.cpp, built here with g++ -O3 -march=native): memchr and an
 * AVX2 read loop over the same size, per thread count. Undefined when g++ is absent.
 */
export function runCProbe(threads: number, bytes = 2 ** 30): { memchrGBs: number; loopGBs: number; compiler: string } | undefined {
  const src = join(dirname(fileURLToPath(import.meta.url)), 'bandwidth-probe.cpp');
  if (spawnSync('g++', ['--version']).status !== 0 || !existsSync(src)) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'rwkvc-bw-'));
  try {
    const exe = join(dir, 'probe');
    execFileSync('g++', ['-O3', '-march=native', '-pthread', '-o', exe, src]);
    const out = execFileSync(exe, [String(threads), String(bytes)], { encoding: 'utf8' });
    const m = /memchr ([\d.]+) GB\/s, loop ([\d.]+) GB\/s/.exec(out);
    if (!m) throw new Error(`bandwidth-probe printed: ${out}`);
    return { memchrGBs: Number(m[1]), loopGBs: Number(m[2]), compiler: execFileSync('g++', ['--version'], { encoding: 'utf8' }).split('\n')[0] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "CPU model; N cores; flags: avx2 avx512f … avx_vnni …" (the flags that matter for these kernels). */
export function machineLine(): string {
  let model = 'unknown CPU', flags: string[] = [];
  if (existsSync('/proc/cpuinfo')) {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1] ?? model;
    const all = (/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/);
    flags = all.filter((f) => /^(sse4_2|avx|avx2|fma|f16c|avx512\w*|avx_vnni|amx\w*)$/.test(f));
  }
  return `${model}, ${availableParallelism()} cores; flags: ${flags.join(' ')}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { measureBandwidth } = await import('./wasm-roofline.ts');
  const c = process.argv.includes('--c');
  const list = process.argv.slice(2).filter((a) => a !== '--c').map(Number);
  for (const th of list.length ? list : [1, availableParallelism()]) {
    // the three take turns, twice, so a drift in the machine's share of the bus hits all of them
    const js: number[] = [], wasm: number[] = [], cc: { memchrGBs: number; loopGBs: number }[] = [];
    for (let r = 0; r < 2; r++) {
      js.push(await measureNativeBandwidth(th));
      wasm.push(await measureBandwidth(th));
      const p = c ? runCProbe(th) : undefined;
      if (p) cc.push(p);
    }
    const best = (a: number[]) => Math.max(...a).toFixed(1);
    console.log(`threads ${th}: Buffer.indexOf (glibc memchr) ${best(js)} GB/s, WASM SIMD read ${best(wasm)} GB/s` +
      (cc.length ? `, C++ memchr ${best(cc.map((x) => x.memchrGBs))} GB/s, C++ AVX2 loop ${best(cc.map((x) => x.loopGBs))} GB/s` : ''));
  }
}
