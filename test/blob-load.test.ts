// Loading from a picked File in headless Chromium with Blob.slice() (runtime/checkpoint/blob.ts): the page
// never holds the whole checkpoint. The fixture, .pth and safetensors, picked through an <input type=file>,
// gives logits bit-identical to Node's.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { openModel } from '../runtime/model.ts';
import { compileWasm } from '../targets/wasm/codegen.ts';
import { loadWasmArtifact } from '../targets/wasm/runtime.ts';
import { weightProvider } from '../driver/load.ts';
import { browserSkipReason, launchChromium, startStaticServer, type StaticServer } from './helpers/browser.ts';
import { FIXTURES } from './helpers/golden.ts';

const skip = browserSkipReason();
const tmp = fs.mkdtempSync(join(os.tmpdir(), 'rwkvc-blob-'));

const page = `<!doctype html><meta charset="utf-8"><title>blob load</title>
<input type="file" id="ckpt">
<script type="module">
import { loadWasmArtifact } from '/targets/wasm/runtime.ts';
import { openCheckpointBlob } from '/runtime/checkpoint/blob.ts';
import { checkpointProvider } from '/runtime/checkpoint/provider.ts';
window.go = async (prefix, tokens) => {
  const get = (p) => fetch(p).then((r) => r.ok ? r : Promise.reject(new Error(p + ': ' + r.status)));
  const bytes = async (p) => new Uint8Array(await (await get(p)).arrayBuffer());
  const art = { wasm: await bytes(prefix + 'model.wasm'), layout: await (await get(prefix + 'layout.json')).json() };
  const file = document.getElementById('ckpt').files[0];
  const ckpt = await openCheckpointBlob(file);
  const t0 = performance.now();
  const model = await loadWasmArtifact(art, checkpointProvider(art.layout.plan, ckpt), { threads: 1, relaxed: false });
  const ms = performance.now() - t0;
  ckpt.close();
  const logits = await model.run('prefill', Int32Array.from(tokens));
  model.dispose();
  return { logits: [...logits.subarray(0, 64)], sum: logits.reduce((a, b) => a + b, 0), ms };
};
</script>`;

describe.skipIf(!!skip)(`a picked File loaded with Blob.slice() in headless Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let browser: Browser;
  const servers: StaticServer[] = [];
  beforeAll(async () => { browser = await launchChromium(); });
  afterAll(async () => {
    await browser?.close();
    for (const s of servers) await s.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function inPage(p: Page, prefix: string, file: string, tokens: number[]) {
    await p.setInputFiles('#ckpt', file);
    return p.evaluate(([pre, t]) => (window as unknown as { go(p: string, t: number[]): Promise<{ logits: number[]; sum: number; ms: number }> }).go(pre, t), [prefix, tokens] as const);
  }

  async function inNode(plan: KernelPlan, file: string, tokens: number[]) {
    const m = openModel(file);
    const model = await loadWasmArtifact(compileWasm(plan, { relaxed: false }), weightProvider(plan, m), { threads: 1, relaxed: false });
    const logits = await model.run('prefill', Int32Array.from(tokens));
    model.dispose();
    m.close();
    return [...logits.subarray(0, 64)];
  }

  test('the fixture as .safetensors and .pth, bf16 and int8: logits bit-identical to Node', async () => {
    const m = openModel(join(FIXTURES, 'finch-tiny', 'model.safetensors'));
    const plans = new Map<string, KernelPlan>();
    const pages: Record<string, string | Uint8Array> = { '/index.html': page };
    for (const weights of ['bf16', 'int8'] as WeightDType[]) {
      const { plan } = compileGraph(finch(m.config), m.config, { weights, logits: 'last' });
      const art = compileWasm(plan, { relaxed: false });
      plans.set(weights, plan);
      pages[`/${weights}/model.wasm`] = art.wasm;
      pages[`/${weights}/layout.json`] = JSON.stringify(art.layout);
    }
    m.close();
    const s = await startStaticServer({ pages, crossOriginIsolated: false });
    servers.push(s);
    const p = await browser.newPage();
    const log = { lines: [] as string[] };
    p.on('console', (m) => log.lines.push(`${m.type()}: ${m.text()}`));
    p.on('pageerror', (e) => log.lines.push(`pageerror: ${e.message}`));
    await p.goto(`${s.url}/index.html`, { timeout: 120_000 }); // the server transpiles each module on first request: slow on a busy machine
    await p.waitForFunction(() => typeof (window as unknown as { go?: unknown }).go === 'function', null, { timeout: 90_000 });
    const tokens = [3, 17, 200, 5];
    for (const name of ['model.safetensors', 'model.pth'])
      for (const [weights, plan] of plans) {
        const file = join(FIXTURES, 'finch-tiny', name);
        const r = await inPage(p, `/${weights}/`, file, tokens).catch((e: Error) => { throw new Error(`${e.message}\n${log.lines.join('\n')}`); });
        expect(r.logits, `${name} ${weights}`).toEqual(await inNode(plan, file, tokens));
      }
    await p.close();
  }, 240_000);
});
