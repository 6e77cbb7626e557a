// The browser demo (examples/browser/) end to end in headless Chromium: the package built for the fixture
// model's config (as `rwkvc compile … --emit package` does), the page served cross-origin isolated, the
// checkpoint fed to its file input, a token-id prompt generated from greedily. The logits after the prompt
// must match the official ones, the continuation must be the Node WASM target's, and tokens/s must show,
// on WebGPU (SwiftShader) and on WASM with 1 and 2 threads (Web Workers).
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

const skip = browserSkipReason();
const MODEL = join(FIXTURES, 'finch-tiny', 'model.safetensors');
const PKG = join(REPO_ROOT, 'out', 'browser-demo-test', 'pkg');
const GENERATE = 16;

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

  /** Open the page, pick the checkpoint, load on `target`, generate greedily from the prompt. */
  async function runDemo(server: StaticServer, target: 'auto' | 'webgpu' | 'wasm', threads: number) {
    const t0 = performance.now();
    const pkg = '/' + relative(REPO_ROOT, PKG).split('\\').join('/') + '/';
    const { page, log } = await openPage(browser, `${server.url}/examples/browser/index.html?pkg=${pkg}`);
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
    console.log(`[browser demo] ${target}, ${threads} thread(s): ${shown.backend}; prefill ${shown.prefill} tok/s, decode ${shown.decode} tok/s; ` +
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
    checkRun(r);
  });

  test('auto picks WebGPU when navigator.gpu gives an adapter', async () => {
    const r = await runDemo(isolated, 'auto', 2);
    expect(r.d.backend?.target).toBe('wgsl');
    checkRun(r);
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

  test('WASM asked for 2 threads in a page that is not cross-origin isolated: 1 thread, and the page says why', async () => {
    const r = await runDemo(open, 'wasm', 2);
    expect(r.d.backend).toMatchObject({ target: 'wasm', threads: 1 });
    expect(r.shown.notes).toMatch(/not cross-origin isolated/);
    checkRun(r);
  });
});
