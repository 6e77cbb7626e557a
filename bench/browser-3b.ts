/**
 * A real-size model in a browser tab (issue 14): a seeded finch-3b checkpoint loaded through the browser
 * demo (examples/browser/) in headless Chromium, the way a user does it: the file picked in the page's
 * <input type=file>, read with Blob.slice() one weight at a time into WASM (int8, 2 threads) and then
 * WebGPU (SwiftShader), a few tokens generated greedily on each. Prints packed weight bytes, peak memory,
 * their ratio (the goal: ≤ packed + 15 %), load time and ms/token; then loads a 7B-shaped checkpoint on
 * WASM, which cannot fit wasm32's 4 GiB, and prints the one line the page shows.
 *
 *   npx tsx bench/browser-3b.ts [--model FILE] [--cache DIR] [--preset finch-3b] [--weights int8]
 *        [--threads 2] [--tokens 4] [--webgpu-tokens 2] [--prompt ids:1,2,3] [--webgpu-prompt ids:1]
 *        [--targets wasm,webgpu] [--refuse finch-7b|none]
 *
 * The checkpoint (--model, else DIR/rwkvc-<preset>-seed1.bf16.safetensors, written on first use: 6 GB,
 * streamed tensor by tensor, several minutes) and the 7B-shaped one (headers only: a sparse file, no
 * data written or read) are kept in --cache (default /tmp). The package is compiled into out/browser-3b/.
 *
 * Peak memory, three ways:
 *  - renderer RSS: the highest VmRSS of the page's renderer process (sampled every 100 ms from /proc, and
 *    its VmHWM), which holds the page, its WASM memory and the Web Workers (WASM threads); on WebGPU the
 *    GPU process (where SwiftShader keeps the buffers) is shown beside it;
 *  - page: the JS heap (performance.memory with --enable-precise-memory-info) + the WASM memories the page
 *    created + the largest Blob range read at once (a weight's bytes, dropped after it is converted);
 *  - the goal compares the renderer's peak RSS with the packed weight bytes (the same number `rwkvc inspect
 *    --fits` prints); the renderer's RSS before Load (the page itself) is shown too.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { emitPackage } from '../driver/emit-package.ts';
import { expectedTensors } from '../runtime/checkpoint/config.ts';
import { PRESETS } from '../runtime/presets.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import type { ModelConfig } from '../kernels/config.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { footprint } from '../driver/limits.ts';
import type { DemoState } from '../examples/browser/main.ts';
import { REPO_ROOT, startStaticServer, type StaticServer } from '../examples/browser/static-server.ts';
import { CHROMIUM_QUIET_ARGS, CHROMIUM_WEBGPU_ARGS, findChromium } from '../examples/browser/chromium.ts';

export interface BenchOptions {
  preset: string;
  /** The checkpoint; default: written (once) into `cache`. */
  model?: string;
  cache: string;
  /** A package already compiled for the preset (a folder under the repository): not compiled again. */
  pkg?: string;
  weights: WeightDType;
  threads: number;
  tokens: number;
  webgpuTokens: number;
  /** The prompt, as the page takes it (default ids:1,2,3); one token runs the decode program, more the prefill one. */
  prompt?: string;
  /** WebGPU's prompt (default: `prompt`). On SwiftShader a 3-token prefill goes through the tiled matmul
   * shaders (32-token tiles), a 1-token prompt through the matvec ones: the first token comes sooner. */
  webgpuPrompt?: string;
  targets: ('wasm' | 'webgpu')[];
  /** A preset too big for wasm32, loaded from a headers-only checkpoint to show the refusal; none: skip. */
  refuse?: string;
  say?: (line: string) => void;
}

export interface Row {
  target: string;
  weights: string;
  /** Packed weight bytes (the package's layout for WASM, the uploaded buffers for WebGPU). */
  packedBytes: number;
  rendererBaseBytes: number;
  rendererPeakBytes: number;
  /** The page's own count: JS heap + WASM memory + the largest Blob range read. */
  pagePeakBytes: number;
  gpuProcessPeakBytes?: number;
  loadMs: number;
  prefillMs: number;
  /** Prompt tokens (the first generated token comes from their logits). */
  promptTokens: number;
  msPerToken: number;
  tokens: number[];
  backend: string;
  /** Blob ranges read, and the largest (never the whole checkpoint). */
  reads: { count: number; largest: number; fileBytes: number };
}

export interface BenchResult { rows: Row[]; refusal?: string }

const GiB = 2 ** 30;
const gib = (b: number) => `${(b / GiB).toFixed(2)} GiB`;

/** Write the seeded checkpoint once (to a temporary name, renamed when complete), with progress. */
function ensureCheckpoint(path: string, cfg: ModelConfig, say: (s: string) => void): void {
  if (existsSync(path)) return;
  const tmp = `${path}.partial`;
  const t0 = performance.now();
  let last = 0;
  say(`writing the seeded checkpoint ${path} (bf16, streamed tensor by tensor)…`);
  writeRandomModel(tmp, cfg, 1, 'bf16', (i, n) => {
    const now = performance.now();
    if (now - last > 5000 || i === n - 1) {
      last = now;
      say(`  ${i + 1}/${n} tensors, ${((now - t0) / 1000).toFixed(0)} s`);
    }
  });
  renameSync(tmp, path);
}

/**
 * A safetensors file with `cfg`'s headers and no data: a sparse file of the full size (nothing written
 * past the header), enough for a loader that refuses before it reads a weight.
 */
function headersOnly(path: string, cfg: ModelConfig): void {
  if (existsSync(path)) return;
  const header: Record<string, unknown> = { __metadata__: { generator: 'bench/browser-3b.ts (headers only)' } };
  let offset = 0;
  for (const [name, shape] of expectedTensors(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(`${path}.partial`, 'w');
  writeSync(fd, len);
  writeSync(fd, json);
  ftruncateSync(fd, 8 + Buffer.byteLength(json) + offset);
  closeSync(fd);
  renameSync(`${path}.partial`, path);
}

/** Every process below `root` (Chromium's zygotes, renderers, GPU process…), with its --type. */
function chromiumProcesses(root: number): { pid: number; type: string }[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone */ }
  }
  const out: { pid: number; type: string }[] = [];
  for (const pid of parent.keys()) {
    let p = parent.get(pid);
    while (p && p !== root) p = parent.get(p);
    if (p !== root) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      out.push({ pid, type: /--type=([\w-]+)/.exec(cmd)?.[1] ?? 'browser' });
    } catch { /* gone */ }
  }
  return out;
}

/** VmRSS and VmHWM of a process, in bytes (0 when it is gone). */
function rss(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/** Peak RSS per process type while `f` runs (sampled), the renderer's VmHWM included. */
async function sampled<T>(root: number, f: () => Promise<T>): Promise<{ result: T; peak: Map<string, number> }> {
  const peak = new Map<string, number>();
  const sample = () => {
    for (const p of chromiumProcesses(root)) {
      const m = rss(p.pid);
      const v = p.type === 'renderer' ? Math.max(m.rss, m.hwm) : m.rss;
      peak.set(p.type, Math.max(peak.get(p.type) ?? 0, v));
    }
  };
  sample();
  const timer = setInterval(sample, 100);
  try {
    const result = await f();
    sample();
    return { result, peak };
  } finally {
    clearInterval(timer);
  }
}

/** Installed before the page's scripts: Blob reads, WASM memories and the JS heap, for the page's own count. */
function instrument(): void {
  type Counts = { reads: number[]; memories: WebAssembly.Memory[]; heapPeak: number; pagePeak: number };
  const b: Counts = { reads: [], memories: [], heapPeak: 0, pagePeak: 0 };
  (window as unknown as { bench: Counts }).bench = b;
  const arrayBuffer = Blob.prototype.arrayBuffer;
  Blob.prototype.arrayBuffer = function (this: Blob) { b.reads.push(this.size); return arrayBuffer.call(this); };
  const Memory = WebAssembly.Memory;
  WebAssembly.Memory = function (this: unknown, d: WebAssembly.MemoryDescriptor) {
    const m = new Memory(d);
    b.memories.push(m);
    return m;
  } as unknown as typeof WebAssembly.Memory;
  WebAssembly.Memory.prototype = Memory.prototype;
  setInterval(() => {
    const heap = (performance as unknown as { memory?: { usedJSHeapSize: number } }).memory?.usedJSHeapSize ?? 0;
    const wasm = b.memories.reduce((n, m) => n + m.buffer.byteLength, 0);
    b.heapPeak = Math.max(b.heapPeak, heap);
    b.pagePeak = Math.max(b.pagePeak, heap + wasm + Math.max(0, ...b.reads));
  }, 50);
}

const demoState = (p: Page) => p.evaluate(() => (window as unknown as { rwkvcDemo: DemoState }).rwkvcDemo);

async function until(p: Page, states: DemoState['state'][], timeoutMs: number): Promise<DemoState> {
  await p.waitForFunction((want) => {
    const d = (window as unknown as { rwkvcDemo?: DemoState }).rwkvcDemo;
    return d && (want.includes(d.state) || d.state === 'error');
  }, states, { timeout: timeoutMs, polling: 250 });
  return demoState(p);
}

/** Open the demo on the package, pick the checkpoint, load on `target`. */
async function openAndLoad(browser: Browser, server: StaticServer, pkg: string, file: string, target: 'wasm' | 'webgpu', threads: number, log: string[]) {
  const page = await browser.newPage();
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  await page.addInitScript(instrument);
  await page.goto(`${server.url}/examples/browser/index.html?pkg=/${pkg}/`);
  await page.waitForFunction(() => {
    const d = (window as unknown as { rwkvcDemo?: DemoState }).rwkvcDemo;
    return d && (d.package || d.state === 'error');
  }, null, { timeout: 120_000 });
  const d = await demoState(page);
  if (d.error) throw new Error(`the demo page: ${d.error}\n${log.join('\n')}`);
  await page.setInputFiles('#checkpoint', file);
  await page.selectOption('#target', target);
  await page.fill('#threads', String(threads));
  await page.setChecked('#keep', false); // copying 6 GB into OPFS is not what is measured
  return page;
}

export async function runBrowserBench(o: BenchOptions): Promise<BenchResult> {
  const say = o.say ?? ((s: string) => process.stderr.write(s + '\n'));
  const cfg = PRESETS[o.preset];
  if (!cfg) throw new Error(`--preset: no preset ${o.preset} (${Object.keys(PRESETS).join(', ')})`);
  const exe = findChromium();
  if (!exe) throw new Error('no Chromium (apt-get install chromium, or set RWKVC_CHROMIUM)');
  mkdirSync(o.cache, { recursive: true });
  const file = o.model ?? join(o.cache, `rwkvc-${o.preset}-seed1.bf16.safetensors`);
  if (!o.model) ensureCheckpoint(file, cfg, say);
  const fileBytes = statSync(file).size;

  const pkgDir = o.pkg ?? join(REPO_ROOT, 'out', 'browser-3b', `${o.preset}-${o.weights}`);
  let t = performance.now();
  if (o.targets.length && !o.pkg) await emitPackage({ dsl: join(REPO_ROOT, 'examples', 'finch.ts'), config: cfg, out: pkgDir, weights: o.weights, batch: 1, chunk: 16 });
  // packed bytes as `rwkvc inspect --fits` counts them (the target's own layout code)
  const plan = o.targets.length ? JSON.parse(readFileSync(join(pkgDir, 'plan.json'), 'utf8')) as KernelPlan : undefined;
  const packed = plan ? { wasm: (await footprint('wasm', plan, { threads: o.threads })).weightBytes, webgpu: (await footprint('wgsl', plan)).weightBytes } : { wasm: NaN, webgpu: NaN };
  if (plan && !o.pkg) say(`package for ${o.preset} (${o.weights}) compiled in ${((performance.now() - t) / 1000).toFixed(1)} s → ${relative(REPO_ROOT, pkgDir)}`);

  const server = await startStaticServer();
  const { chromium } = await import('playwright-core');
  const ours = new Set(chromiumProcesses(process.pid).map((p) => p.pid));
  const browser = await chromium.launch({
    executablePath: exe, headless: true,
    args: [...CHROMIUM_WEBGPU_ARGS, ...CHROMIUM_QUIET_ARGS, '--enable-precise-memory-info'],
  });
  // this browser's own processes (a test may have another Chromium running)
  const root = chromiumProcesses(process.pid).find((p) => p.type === 'browser' && !ours.has(p.pid) && /chrom/i.test(readFileSync(`/proc/${p.pid}/cmdline`, 'utf8')))?.pid;
  if (!root) throw new Error('cannot find the Chromium process just launched in /proc');
  const rows: Row[] = [];
  let refusal: string | undefined;
  try {
    const pkg = relative(REPO_ROOT, pkgDir).split('\\').join('/');
    for (const target of o.targets) {
      const log: string[] = [];
      const n = target === 'wasm' ? o.tokens : o.webgpuTokens;
      say(`${target}: loading ${file} (${gib(fileBytes)}) through the demo page…`);
      const page = await openAndLoad(browser, server, pkg, file, target, o.threads, log);
      const renderers = () => chromiumProcesses(root).filter((p) => p.type === 'renderer');
      const base = Math.max(...renderers().map((p) => rss(p.pid).rss));
      t = performance.now();
      const progress = setInterval(() => {
        void demoState(page).then((d) => {
          const p = Object.entries(d.progress ?? {}).map(([k, [a, b]]) => `${k} ${a}/${b}`).join(', ');
          // memory as it goes: on WebGPU the GPU process holds the buffers (SwiftShader: in its own memory)
          const mem = chromiumProcesses(root).filter((q) => q.type === 'renderer' || q.type === 'gpu-process')
            .map((q) => `${q.type} ${gib(rss(q.pid).rss)}`).join(', ');
          say(`  ${((performance.now() - t) / 1000).toFixed(0)} s: ${p || d.state}; RSS ${mem}`);
        }, () => {});
      }, 15_000);
      const { result: d, peak } = await sampled(root, async () => {
        await page.click('#load');
        const loaded = await until(page, ['ready'], 3_600_000);
        if (loaded.error) return loaded;
        await page.fill('#prompt', target === 'webgpu' ? o.webgpuPrompt ?? o.prompt ?? 'ids:1,2,3' : o.prompt ?? 'ids:1,2,3');
        await page.fill('#max-tokens', String(n));
        await page.fill('#temperature', '0');
        await page.click('#generate');
        return until(page, ['done'], 3_600_000);
      }).finally(() => clearInterval(progress));
      if (d.error) throw new Error(`${target}: ${d.error}\n${log.slice(-20).join('\n')}`);
      const b = await page.evaluate(() => (window as unknown as { bench: { reads: number[]; heapPeak: number; pagePeak: number } }).bench);
      await page.close();
      rows.push({
        target: target === 'wasm' ? `wasm ${d.backend?.threads ?? '?'} threads` : 'webgpu',
        weights: d.weights ?? o.weights,
        packedBytes: packed[target],
        rendererBaseBytes: base,
        rendererPeakBytes: peak.get('renderer') ?? 0,
        pagePeakBytes: b.pagePeak,
        ...(target === 'webgpu' ? { gpuProcessPeakBytes: peak.get('gpu-process') ?? 0 } : {}),
        loadMs: d.loadMs ?? NaN,
        prefillMs: d.prefill?.ms ?? NaN,
        promptTokens: d.prefill?.tokens ?? NaN,
        msPerToken: d.decode ? d.decode.ms / d.decode.tokens : NaN,
        tokens: d.generated,
        backend: d.backend?.description ?? '?',
        reads: { count: b.reads.length, largest: Math.max(0, ...b.reads), fileBytes },
      });
      const r = rows[rows.length - 1];
      say(`  ${target}: loaded in ${(r.loadMs / 1000).toFixed(1)} s; first token (prompt of ${r.promptTokens}) ${(r.prefillMs / 1000).toFixed(1)} s; ${d.generated.length} tokens, ${(r.msPerToken / 1000).toFixed(1)} s/token after; peak RSS renderer ${gib(r.rendererPeakBytes)}${r.gpuProcessPeakBytes === undefined ? '' : `, GPU process ${gib(r.gpuProcessPeakBytes)}`} for ${gib(r.packedBytes)} of packed weights\n${table(rows.slice(-1))}`);
    }

    if (o.refuse && o.refuse !== 'none') {
      const big = PRESETS[o.refuse];
      if (!big) throw new Error(`--refuse: no preset ${o.refuse}`);
      const bigFile = join(o.cache, `rwkvc-${o.refuse}-headers-only.safetensors`);
      headersOnly(bigFile, big);
      const bigPkg = join(REPO_ROOT, 'out', 'browser-3b', `${o.refuse}-${o.weights}`);
      await emitPackage({ dsl: join(REPO_ROOT, 'examples', 'finch.ts'), config: big, out: bigPkg, weights: o.weights, batch: 1, chunk: 16 });
      const log: string[] = [];
      const page = await openAndLoad(browser, server, relative(REPO_ROOT, bigPkg).split('\\').join('/'), bigFile, 'wasm', o.threads, log);
      await page.click('#load');
      const d = await until(page, ['ready'], 600_000);
      refusal = d.error ? (await page.textContent('#status'))! : `loaded?! (${d.state})`;
      await page.close();
    }
  } finally {
    await browser.close();
    await server.close();
  }
  return { rows, ...(refusal ? { refusal } : {}) };
}

/** The table (markdown). */
export function table(rows: Row[]): string {
  const head = ['target', 'weights', 'packed weights', 'renderer RSS before load', 'renderer peak RSS', 'peak / packed', 'page peak (JS heap + WASM + largest Blob read)', 'GPU process peak', 'load', 'prompt (→ first token)', 'ms/token', 'Blob reads (largest)'];
  const cells = rows.map((r) => [
    r.target, r.weights, gib(r.packedBytes), gib(r.rendererBaseBytes), gib(r.rendererPeakBytes),
    `${(r.rendererPeakBytes / r.packedBytes).toFixed(3)}`, `${gib(r.pagePeakBytes)} (${(r.pagePeakBytes / r.packedBytes).toFixed(3)})`,
    r.gpuProcessPeakBytes === undefined ? '–' : gib(r.gpuProcessPeakBytes),
    `${(r.loadMs / 1000).toFixed(1)} s`, `${r.promptTokens} tokens: ${r.prefillMs.toFixed(0)} ms`, r.msPerToken.toFixed(0),
    `${r.reads.count} (${(r.reads.largest / 2 ** 20).toFixed(1)} MiB of ${gib(r.reads.fileBytes)})`,
  ]);
  const line = (c: string[]) => `| ${c.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...cells.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' }, cache: { type: 'string', default: '/tmp' }, preset: { type: 'string', default: 'finch-3b' },
      weights: { type: 'string', default: 'int8' }, threads: { type: 'string', default: '2' }, tokens: { type: 'string', default: '4' },
      'webgpu-tokens': { type: 'string', default: '2' }, prompt: { type: 'string', default: 'ids:1,2,3' }, 'webgpu-prompt': { type: 'string' }, targets: { type: 'string', default: 'wasm,webgpu' }, refuse: { type: 'string', default: 'finch-7b' },
    },
  });
  const targets = values.targets.split(',').map((s) => s.trim()).filter(Boolean) as BenchOptions['targets'];
  for (const t of targets) if (t !== 'wasm' && t !== 'webgpu') throw new Error(`--targets: ${t} is not wasm or webgpu`);
  const r = await runBrowserBench({
    preset: values.preset, model: values.model, cache: values.cache, weights: values.weights as WeightDType,
    threads: Number(values.threads), tokens: Number(values.tokens), webgpuTokens: Number(values['webgpu-tokens']), prompt: values.prompt, webgpuPrompt: values['webgpu-prompt'], targets, refuse: values.refuse,
  });
  console.log(table(r.rows));
  for (const row of r.rows) console.log(`${row.target}: ${row.backend}; tokens ${row.tokens.join(',')}; goal (peak ≤ packed × 1.15): ${row.rendererPeakBytes <= row.packedBytes * 1.15 ? 'met' : 'NOT met'}`);
  if (r.refusal) console.log(`${values.refuse} on WASM in the page: ${r.refusal}`);
}

if (process.argv[1] && /browser-3b\.ts$/.test(process.argv[1])) {
  main().catch((e) => {
    process.stderr.write(`browser-3b: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
