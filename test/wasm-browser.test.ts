// The WASM runtime in headless Chromium: targets/wasm/runtime.ts served as transpiled TypeScript, threads
// on Web Workers (team-web.ts) in a cross-origin isolated page, one thread on the main thread otherwise.
// The logits must be bit-identical to Node's for the same thread count and module, and match the official
// numbers; the page must not need the compiler.
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { openModel } from '../runtime/model.ts';
import { compileWasm } from '../targets/wasm/codegen.ts';
import { loadWasmArtifact } from '../targets/wasm/runtime.ts';
import { browserSkipReason, launchChromium, openPage, startStaticServer, type StaticServer } from './helpers/browser.ts';
import { FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';

const skip = browserSkipReason();
const MODEL = join(FIXTURES, 'finch-tiny', 'model.safetensors');

const page = `<!doctype html><meta charset="utf-8"><title>wasm runtime</title>
<script type="module">
import { loadWasmArtifact } from '/targets/wasm/runtime.ts';
import { openCheckpointBytes } from '/runtime/checkpoint/reader.ts';
import { materializeWeight } from '/kernels/weights.ts';
const q = new URLSearchParams(location.search);
window.result = (async () => {
  if (q.get('refuseShared')) {
    // a browser that refuses shared memory outside cross-origin isolation
    const M = WebAssembly.Memory;
    WebAssembly.Memory = function (d) { if (d.shared) throw new TypeError('shared memory is disabled'); return new M(d); };
  }
  const get = (p) => fetch(p).then((r) => r.ok ? r : Promise.reject(new Error(p + ': ' + r.status)));
  const bytes = async (p) => new Uint8Array(await (await get(p)).arrayBuffer());
  const art = { wasm: await bytes('/model.wasm'), wasmRelaxed: await bytes('/model.relaxed.wasm'), layout: await (await get('/layout.json')).json() };
  const ckpt = openCheckpointBytes('model.safetensors', await bytes('/test/fixtures/finch-tiny/model.safetensors'));
  const model = await loadWasmArtifact(art, (d) => materializeWeight(d.source, (n) => ckpt.readF32(n)),
    { threads: Number(q.get('threads')), relaxed: q.get('relaxed') === '1' });
  const tokens = JSON.parse(q.get('tokens'));
  const prefill = await model.run('prefill', Int32Array.from(tokens.slice(0, -1)));
  const decode = await model.run('decode', Int32Array.from(tokens.slice(-1)));
  const [a, b] = await Promise.all([model.run('decode', Int32Array.of(7)), model.readState()]); // queued in order
  const out = { prefill: [...prefill], decode: [...decode], after: [...a], stateKeys: Object.keys(b).length,
    threads: model.threads, note: model.threadNote ?? null, variant: model.variant, isolated: self.crossOriginIsolated };
  let sync = null;
  try { model.runSync('decode', Int32Array.of(1)); sync = 'ok'; } catch (e) { sync = e.message; }
  out.sync = sync;
  model.dispose();
  return out;
})().catch((e) => ({ error: String(e && e.stack || e) }));
</script>`;

interface Result {
  error?: string; prefill: number[]; decode: number[]; after: number[]; stateKeys: number;
  threads: number; note: string | null; variant: string; isolated: boolean; sync: string;
}

describe.skipIf(!!skip)(`WASM runtime in headless Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let isolated: StaticServer, open: StaticServer, strict: StaticServer, browser: Browser;
  const m = openModel(MODEL);
  const config = m.config;
  const { plan } = compileGraph(finch(config), config, { weights: 'f32', logits: 'last', chunk: 128, batch: 4 });
  const values = new Map(plan.weights.map((d) => [d.name, materializeWeight(d.source, m.read)]));
  m.close();
  const art = compileWasm(plan);
  const golden = readGolden('finch-tiny');
  const tokens = [...golden.tokens.slice(0, 8)];
  const V = config.vocabSize;

  /** What Node computes for the same module and thread count. */
  async function inNode(threads: number) {
    const model = await loadWasmArtifact(art, (d) => values.get(d.name)!, { threads, relaxed: false });
    const prefill = await model.run('prefill', Int32Array.from(tokens.slice(0, -1)));
    const decode = await model.run('decode', Int32Array.from(tokens.slice(-1)));
    const after = await model.run('decode', Int32Array.of(7));
    model.dispose();
    return { prefill: [...prefill], decode: [...decode], after: [...after] };
  }

  beforeAll(async () => {
    const pages = {
      '/index.html': page, '/model.wasm': art.wasm, '/model.relaxed.wasm': art.wasmRelaxed!, '/layout.json': JSON.stringify(art.layout),
    };
    isolated = await startStaticServer({ pages });
    open = await startStaticServer({ pages, crossOriginIsolated: false });
    // no 'unsafe-eval': only WebAssembly compilation ('wasm-unsafe-eval') and this test's inline page script
    strict = await startStaticServer({ pages, csp: "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'" });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await isolated?.close();
    await open?.close();
    await strict?.close();
  });

  async function inBrowser(server: StaticServer, q: Record<string, string | number>): Promise<Result> {
    const qs = new URLSearchParams({ tokens: JSON.stringify(tokens), relaxed: '0', ...Object.fromEntries(Object.entries(q).map(([k, v]) => [k, String(v)])) });
    const { page: p, log } = await openPage(browser, `${server.url}/index.html?${qs}`);
    const r = (await p.waitForFunction(() => (window as unknown as { result?: Promise<unknown> }).result, null, { timeout: 60_000 })
      .then(() => p.evaluate(() => (window as unknown as { result: Promise<unknown> }).result))
      .catch((e: Error) => ({ error: `${e.message}\n${log.lines.join('\n')}` }))) as Result;
    await p.close();
    expect(r.error, log.lines.join('\n')).toBeUndefined();
    return r;
  }

  test.each([1, 2, 3])('%i thread(s) in a cross-origin isolated page: bit-identical to Node, official logits within 1e-4', async (threads) => {
    const r = await inBrowser(isolated, { threads });
    expect(r.isolated).toBe(true);
    expect(r).toMatchObject({ threads, note: null, variant: 'simd', stateKeys: 3 * config.nLayer });
    const node = await inNode(threads);
    expect(r.prefill).toEqual(node.prefill);
    expect(r.decode).toEqual(node.decode);
    expect(r.after).toEqual(node.after);
    expect(maxAbsDiff(r.decode, golden.logits.subarray(7 * V, 8 * V))).toBeLessThanOrEqual(1e-4);
    expect(r.sync).toBe(threads === 1 ? 'ok' : 'wasm target: this model runs on Web Workers; use run() (asynchronous), not runSync()');
    // the page ran without the compiler
    if (threads > 1) expect(isolated.requests).toContain('/targets/wasm/team-worker.ts');
    expect(isolated.requests.filter((u) => /codegen|wabt|compiler\//.test(u))).toEqual([]);
  });

  test('the relaxed-SIMD (FMA) module, 2 threads: official logits within 1e-4', async () => {
    const r = await inBrowser(isolated, { threads: 2, relaxed: 1 });
    expect(r.variant).toBe('relaxed'); // Chromium has relaxed SIMD (Node 20 needs a flag)
    expect(maxAbsDiff(r.decode, golden.logits.subarray(7 * V, 8 * V))).toBeLessThanOrEqual(1e-4);
  });

  test('a page that is not cross-origin isolated runs 1 thread on the main thread, and says why', async () => {
    const r = await inBrowser(open, { threads: 2 });
    expect(r.isolated).toBe(false);
    expect(r.threads).toBe(1);
    expect(r.note).toMatch(/not cross-origin isolated .*Cross-Origin-Opener-Policy: same-origin.*running 1 thread on the main thread instead of 2/);
    expect(r.sync).toBe('ok');
    expect(r.decode).toEqual((await inNode(1)).decode);
  });

  test('where shared memory is refused, one thread runs on unshared memory with the same results', async () => {
    const r = await inBrowser(open, { threads: 2, refuseShared: 1 });
    expect(r.threads).toBe(1);
    const node = await inNode(1);
    expect(r.prefill).toEqual(node.prefill);
    expect(r.after).toEqual(node.after);
  });

  test('a Content-Security-Policy without unsafe-eval: 2 threads run (the worker script evaluates no strings)', async () => {
    const r = await inBrowser(strict, { threads: 2 });
    expect(r).toMatchObject({ threads: 2, note: null });
    expect(r.decode).toEqual((await inNode(2)).decode);
  });
});
