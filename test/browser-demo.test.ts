// The browser demo (examples/browser/) end to end in headless Chromium: the package built for the fixture
// model's config (as `rwkvc compile … --emit package` does), the page served cross-origin isolated, the
// checkpoint fed to its file input, a token-id prompt generated from greedily. The logits after the prompt
// must match the official ones, the continuation must be the Node WASM target's, and tokens/s must show,
// on WebGPU (SwiftShader) and on WASM with 1 and 2 threads (Web Workers). The page reads the checkpoint with
// Blob.slice(), a weight at a time (never the whole file as one ArrayBuffer), with a progress bar.
import { statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { emitPackage } from '../driver/emit-package.ts';
import { load } from '../driver/load.ts';
import { openModel } from '../runtime/model.ts';
import { argmax } from '../runtime/sampler.ts';
import type { DemoState } from '../examples/browser/main.ts';
import { browserSkipReason, launchChromium, openPage, REPO_ROOT, startStaticServer, type StaticServer } from './helpers/browser.ts';
import { FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';
import { autoThreads, BYTES_PER_THREAD, bytesPerToken } from '../examples/browser/threads.ts';
import { compileGraph } from '../compiler/index.ts';
import { buildGraph } from '../driver/dsl.ts';
import { PRESETS } from '../runtime/presets.ts';
import type { ModelConfig } from '../kernels/config.ts';
import type { WeightDType } from '../kernels/plan.ts';
import { runBrowserBench, table } from '../bench/browser-3b.ts';
import finch from '../examples/finch.ts';
import { wasmLayout } from '../targets/wasm/build.ts';
import { loadWasmArtifact } from '../targets/wasm/runtime.ts';
import { tmpdir } from 'node:os';

const skip = browserSkipReason();
const MODEL = join(FIXTURES, 'finch-tiny', 'model.safetensors');
const PKG = join(REPO_ROOT, 'out', 'browser-demo-test', 'pkg');
const GENERATE = 16;
/**
 * The first page of a file transpiles the demo's modules in the static server: seconds, and more than
 * playwright's 30 s navigation default while other test files load the CPU (CI runs two at a time).
 */
const PAGE_TIMEOUT = 120_000;

describe('the demo\'s default thread count, from the weights a token streams', () => {
  const plan = async (config: ModelConfig, weights: WeightDType) =>
    compileGraph(await buildGraph(join(REPO_ROOT, 'examples', 'finch.ts'), config), config, { weights, logits: 'last', chunk: 128 }).plan;

  test('the fixture model runs on 1 thread; bench-0.1b on every core; a page without workers on 1', async () => {
    const tiny = bytesPerToken(await plan(PRESETS['finch-tiny']!, 'f32'));
    // 2 layers of C=128: 2.3 MiB of f32 weights in all, the 256×128 embedding (one row read per token) aside
    expect(tiny).toBeGreaterThan(2 * 2 ** 20);
    expect(tiny).toBeLessThan(2.4 * 2 ** 20);
    expect(autoThreads(tiny, 16, true)).toBe(1);
    const b01 = bytesPerToken(await plan(PRESETS['bench-0.1b']!, 'f16'));
    expect(b01 / 2 ** 30).toBeCloseTo(0.27, 2); // the README's CUDA section: 0.27 GiB of f16 per token, embedding row aside
    expect(autoThreads(b01, 16, true)).toBe(16);
    expect(autoThreads(b01, 2, true)).toBe(2);
    expect(autoThreads(b01, 16, false)).toBe(1);
    expect(autoThreads(3.5 * BYTES_PER_THREAD, 16, true)).toBe(3);
    expect(bytesPerToken(await plan(PRESETS['bench-0.1b']!, 'int8')) / b01).toBeCloseTo(34 / 64, 2);
  }, 60_000);
});

describe('a model over wasm32\'s 4 GiB', () => {
  test('finch-7b is refused before anything is allocated: one line with the need, the limit and what fits', async () => {
    const cfg = PRESETS['finch-7b']!;
    const layout = (w: WeightDType) => wasmLayout(compileGraph(finch(cfg), cfg, { weights: w, logits: 'last', chunk: 16, batch: 1 }).plan);
    const refusal = (w: WeightDType) => loadWasmArtifact({ wasm: new Uint8Array(0), layout: layout(w) }, () => { throw new Error('no weight is read'); }, { threads: 2 })
      .then(() => 'loaded', (e: Error) => e.message);
    expect(await refusal('int8')).toMatch(/^the WASM target needs 7\.\d\d GiB of linear memory \(int8 weights 7\.\d\d GiB, 2 threads\); WebAssembly \(wasm32\) allows 4 GiB: no weight format fits: WebGPU$/);
    // finch-3b in bf16 does not fit; int8 and 4-bit do (rwkvc inspect finch-3b --fits: 3.25, 1.89, 2.06 GiB)
    const c3 = PRESETS['finch-3b']!;
    const l3 = wasmLayout(compileGraph(finch(c3), c3, { weights: 'bf16', logits: 'last', chunk: 16, batch: 1 }).plan);
    expect(await loadWasmArtifact({ wasm: new Uint8Array(0), layout: l3 }, () => { throw new Error('no weight is read'); }, { threads: 2 }).catch((e: Error) => e.message))
      .toMatch(/wasm32\) allows 4 GiB: weights that would fit: int8, q4_0, q4_1$/);
  }, 60_000);
});

describe.skipIf(!!skip)(`browser demo in headless Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let isolated: StaticServer, open: StaticServer, browser: Browser;
  const golden = readGolden('finch-tiny');
  const prompt = [...golden.tokens.slice(0, 8)];
  const V = 256;
  const expectedLogits = golden.logits.subarray(7 * V, 8 * V);
  let nodeGreedy: number[];

  beforeAll(async () => {
    const m = openModel(MODEL);
    m.close();
    await emitPackage({ dsl: join(REPO_ROOT, 'examples', 'finch.ts'), config: m.config, out: PKG });
    // what the Node `--target wasm` path generates for the same prompt, greedily
    const s = await load(MODEL, { target: 'wasm', threads: 2 });
    let logits = await s.prefill(prompt);
    nodeGreedy = [];
    for (let i = 0; i < GENERATE; i++) {
      nodeGreedy.push(argmax(logits));
      logits = await s.decode(nodeGreedy.at(-1)!);
    }
    s.model.dispose();
    isolated = await startStaticServer();
    open = await startStaticServer({ crossOriginIsolated: false });
    browser = await launchChromium();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await isolated?.close();
    await open?.close();
  });

  /** Every Blob read the page makes, by size (installed before the page's scripts run). */
  const watchReads = (p: Page) => p.addInitScript(() => {
    const reads: number[] = ((window as unknown as { blobReads: number[] }).blobReads = []);
    const arrayBuffer = Blob.prototype.arrayBuffer;
    Blob.prototype.arrayBuffer = function (this: Blob) { reads.push(this.size); return arrayBuffer.call(this); };
  });
  /** openPage, with watchReads installed before the page loads. */
  const openWatched = async (url: string) => {
    const page = await browser.newPage();
    const log = { lines: [] as string[] };
    page.on('console', (m) => log.lines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.lines.push(`pageerror: ${e.message}`));
    await watchReads(page);
    await page.goto(url, { timeout: PAGE_TIMEOUT });
    return { page, log };
  };
  const blobReads = (p: Page) => p.evaluate(() => (window as unknown as { blobReads: number[] }).blobReads);
  /** The checkpoint was read in slices, none near its whole size, and the progress bar went to its end. */
  const checkSliced = async (p: Page, d: DemoState) => {
    const reads = await blobReads(p);
    const size = statSync(MODEL).size;
    expect(reads.length).toBeGreaterThan(20); // 30 weights: their tensors, fetched one weight at a time
    expect(Math.max(...reads)).toBeLessThan(size / 4);
    expect(d.progress!.weights![0]).toBe(d.progress!.weights![1]);
    expect(await p.isHidden('#progress')).toBe(true);
  };
  const demoState = (p: Page) => p.evaluate(() => (window as unknown as { rwkvcDemo: DemoState }).rwkvcDemo);
  const until = async (p: Page, states: DemoState['state'][], log: { lines: string[] }) => {
    await p.waitForFunction((want) => {
      const d = (window as unknown as { rwkvcDemo?: DemoState }).rwkvcDemo;
      return d && (want.includes(d.state) || d.state === 'error');
    }, states, { timeout: 100_000 });
    const d = await demoState(p);
    expect(d.error, log.lines.join('\n')).toBeUndefined();
    return d;
  };

  /** Open the page, pick the checkpoint, load on `target`; the page, still open, and what loading left. */
  async function loadDemo(server: StaticServer, target: 'auto' | 'webgpu' | 'wasm', threads: number) {
    const t0 = performance.now();
    const pkg = '/' + relative(REPO_ROOT, PKG).split('\\').join('/') + '/';
    const { page, log } = await openWatched(`${server.url}/examples/browser/index.html?pkg=${pkg}`);
    await page.waitForFunction(() => {
      const d = (window as unknown as { rwkvcDemo?: DemoState }).rwkvcDemo;
      return d && (d.package || d.state === 'error');
    }, null, { timeout: 60_000 });
    expect((await demoState(page)).error, log.lines.join('\n')).toBeUndefined();
    await page.setInputFiles('#checkpoint', MODEL);
    await page.selectOption('#target', target);
    await page.fill('#threads', String(threads));
    await page.click('#load');
    const loaded = await until(page, ['ready'], log);
    await checkSliced(page, loaded);
    return { page, log, loaded, t0 };
  }

  /** loadDemo, then generate greedily from the prompt; what the page shows. */
  async function runDemo(server: StaticServer, target: 'auto' | 'webgpu' | 'wasm', threads: number) {
    const { page, log, loaded, t0 } = await loadDemo(server, target, threads);
    return generate(page, log, loaded, `${target}, ${threads} thread(s)`, t0);
  }

  /** Generate greedily from the prompt on a loaded page; what it shows. */
  async function generate(page: Page, log: { lines: string[] }, loaded: DemoState, what: string, t0: number) {
    const tLoad = performance.now();
    await page.fill('#prompt', `ids:${prompt.join(',')}`);
    await page.fill('#max-tokens', String(GENERATE));
    await page.fill('#temperature', '0');
    await page.click('#generate');
    const d = await until(page, ['done'], log);
    const shown = await page.evaluate(() => ({
      prefill: document.getElementById('prefill-tps')!.textContent!, decode: document.getElementById('decode-tps')!.textContent!,
      backend: document.getElementById('backend')!.textContent!, notes: document.getElementById('notes')!.textContent!,
      ids: document.getElementById('ids')!.textContent!,
    }));
    await page.close();
    console.log(`[browser demo] ${what}: ${shown.backend}; prefill ${shown.prefill} tok/s, decode ${shown.decode} tok/s; ` +
      `page+load ${((tLoad - t0) / 1000).toFixed(1)} s, generate ${((performance.now() - tLoad) / 1000).toFixed(1)} s`);
    return { loaded, d, shown };
  }

  function checkRun({ d, shown }: Awaited<ReturnType<typeof runDemo>>) {
    expect(d.promptIds).toEqual(prompt);
    // (a) the logits after the prompt are the official ones
    expect(d.logitsAfterPrompt).toHaveLength(V);
    expect(maxAbsDiff(d.logitsAfterPrompt!, expectedLogits)).toBeLessThanOrEqual(1e-4);
    // (b) the greedy continuation is the Node WASM target's
    expect(d.generated).toEqual(nodeGreedy);
    expect(shown.ids).toBe(`ids: ${nodeGreedy.join(',')}`);
    // (c) tokens/s shown, and positive
    expect(Number(shown.prefill)).toBeGreaterThan(0);
    expect(Number(shown.decode)).toBeGreaterThan(0);
    expect(d.prefill!.tokensPerSecond).toBeGreaterThan(0);
    expect(d.decode!.tokens).toBe(GENERATE);
    expect(d.decode!.tokensPerSecond).toBeGreaterThan(0);
  }

  test('WebGPU (SwiftShader)', async () => {
    const r = await runDemo(isolated, 'webgpu', 1);
    expect(r.d.backend).toMatchObject({ target: 'wgsl', notes: [] });
    expect(r.d.backend!.adapter).toMatch(/swiftshader/i);
    expect(r.shown.backend).toMatch(/^WebGPU: .*SwiftShader/i);
    // the load reported its shader compilation and pipeline creation, each to its end
    const p = r.loaded.progress!;
    expect(p.shaders![0]).toBe(p.shaders![1]);
    expect(p.pipelines).toEqual(p.shaders);
    expect(p.shaders![1]).toBeGreaterThan(3);
    checkRun(r);
  });

  // Only the choice: once loaded on WebGPU the page runs what the test above runs (same package, target, page).
  test('auto picks WebGPU when navigator.gpu gives an adapter', async () => {
    const { page, loaded } = await loadDemo(isolated, 'auto', 2);
    await page.close();
    expect(loaded.backend).toMatchObject({ target: 'wgsl', notes: [] });
    expect(loaded.backend!.adapter).toMatch(/swiftshader/i);
  });

  test('WASM (forced), 1 thread', async () => {
    const r = await runDemo(isolated, 'wasm', 1);
    expect(r.d.backend).toMatchObject({ target: 'wasm', threads: 1, notes: [] });
    checkRun(r);
  });

  test('WASM, 2 threads on Web Workers in the cross-origin isolated page', async () => {
    const r = await runDemo(isolated, 'wasm', 2);
    expect(r.d.backend).toMatchObject({ target: 'wasm', threads: 2, notes: [] });
    expect(r.shown.backend).toMatch(/^WASM .*SIMD.*, 2 threads$/);
    expect(isolated.requests.some((u) => u.endsWith('/targets/wasm/team-worker.js'))).toBe(true);
    checkRun(r);
  });

  test('WASM with the thread field left empty: the automatic count (1 on this model) and the weight format are shown', async () => {
    const pkg = '/' + relative(REPO_ROOT, PKG).split('\\').join('/') + '/';
    const { page, log } = await openPage(browser, `${isolated.url}/examples/browser/index.html?pkg=${pkg}`);
    await page.waitForFunction(() => (window as unknown as { rwkvcDemo?: DemoState }).rwkvcDemo?.package, null, { timeout: 60_000 });
    expect(await page.inputValue('#threads')).toBe('');
    expect(await page.getAttribute('#threads', 'placeholder')).toBe('auto: 1');
    expect(await page.textContent('#threads-info')).toMatch(/^auto: 1 \(2\.\d MiB of weights per token, one thread per 16 MiB/);
    await page.setInputFiles('#checkpoint', MODEL);
    await page.selectOption('#target', 'wasm');
    await page.click('#load');
    const d = await until(page, ['ready'], log);
    expect(d.threads).toMatchObject({ auto: 1, asked: 1 });
    expect(d.backend).toMatchObject({ target: 'wasm', threads: 1 });
    expect(d.weights).toBe('f32');
    expect(await page.textContent('#weights')).toMatch(/^f32 \(2\.\d MiB per token\)$/);
    await page.close();
  });

  test('the loaded checkpoint stays in the browser (OPFS): after a reload Load needs no file; "Forget cached model" drops it', async () => {
    const pkg = '/' + relative(REPO_ROOT, PKG).split('\\').join('/') + '/';
    const { page, log } = await openWatched(`${isolated.url}/examples/browser/index.html?pkg=${pkg}`);
    const ready = () => page.waitForFunction(() => (window as unknown as { rwkvcDemo?: DemoState }).rwkvcDemo?.package, null, { timeout: 60_000 });
    await ready();
    expect((await demoState(page)).cached).toEqual({});
    expect(await page.isDisabled('#forget')).toBe(true);
    await page.setInputFiles('#checkpoint', MODEL);
    await page.selectOption('#target', 'wasm');
    await page.click('#load');
    expect((await until(page, ['ready'], log)).checkpointFrom).toBe('file');
    // stored in the background once loaded
    await page.waitForFunction(() => (window as unknown as { rwkvcDemo: DemoState }).rwkvcDemo.cached.checkpoint, null, { timeout: 30_000 });

    await page.reload();
    await ready();
    const after = await demoState(page);
    expect(after.cached.checkpoint).toMatchObject({ name: 'model.safetensors', size: statSync(MODEL).size, where: 'OPFS' });
    expect(await page.textContent('#cached')).toMatch(/cached in this browser \(OPFS\): model\.safetensors/);
    expect(await page.evaluate(() => (document.getElementById('checkpoint') as HTMLInputElement).files!.length)).toBe(0);
    await page.selectOption('#target', 'wasm');
    await page.click('#load');
    const d = await until(page, ['ready'], log);
    expect(d.checkpointFrom).toBe('cache');
    await checkSliced(page, d); // the OPFS file, read in slices too
    // the cached bytes are the checkpoint: the official logits after the prompt
    await page.fill('#prompt', `ids:${prompt.join(',')}`);
    await page.fill('#max-tokens', '1');
    await page.click('#generate');
    const g = await until(page, ['done'], log);
    expect(maxAbsDiff(g.logitsAfterPrompt!, expectedLogits)).toBeLessThanOrEqual(1e-4);

    await page.click('#forget');
    await page.waitForFunction(() => !(window as unknown as { rwkvcDemo: DemoState }).rwkvcDemo.cached.checkpoint);
    expect(await page.textContent('#cached')).toBe('no cached model');
    await page.reload();
    await ready();
    expect((await demoState(page)).cached).toEqual({});
    await page.click('#load');
    expect(await page.textContent('#status')).toMatch(/Pick a checkpoint/);
    await page.close();
  });

  test('bench/browser-3b.ts on the fixture: the same flow as the 3B run (demo page, Blob load, WASM, memory from /proc)', async () => {
    const r = await runBrowserBench({
      preset: 'finch-tiny', model: MODEL, pkg: PKG, cache: tmpdir(), weights: 'f32', threads: 2, tokens: 2, webgpuTokens: 0,
      targets: ['wasm'], refuse: 'none', say: () => {},
    });
    const [row] = r.rows;
    expect(row!.target).toBe('wasm 2 threads');
    expect(row!.tokens).toHaveLength(2);
    expect(row!.packedBytes).toBeGreaterThan(2 * 2 ** 20); // 2.3 MiB of f32 (the thread test above)
    expect(row!.rendererPeakBytes).toBeGreaterThanOrEqual(row!.rendererBaseBytes);
    expect(row!.rendererBaseBytes).toBeGreaterThan(20 * 2 ** 20); // a renderer's RSS was read from /proc
    expect(row!.pagePeakBytes).toBeGreaterThan(row!.packedBytes); // the WASM memory holds the weights
    expect(row!.reads.largest).toBeLessThan(row!.reads.fileBytes / 4);
    expect(row!.loadMs).toBeGreaterThan(0);
    expect(row!.msPerToken).toBeGreaterThan(0);
    expect(table(r.rows)).toMatch(/^\| target \| weights \| packed weights .*\n.*\n\| wasm 2 threads \| f32 \| 0\.00 GiB \|/);
  }, 120_000);

  test('WASM asked for 2 threads in a page that is not cross-origin isolated: 1 thread, and the page says why', async () => {
    const r = await runDemo(open, 'wasm', 2);
    expect(r.d.backend).toMatchObject({ target: 'wasm', threads: 1 });
    expect(r.shown.notes).toMatch(/not cross-origin isolated/);
    checkRun(r);
  });
});
