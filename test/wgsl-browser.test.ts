// The WGSL runtime in headless Chromium (WebGPU on SwiftShader): the same targets/wgsl/runtime.ts that the
// Node tests run, served as transpiled TypeScript, loading a compiled plan with shaders pre-rendered in
// Node (the WGSL codegen) and weights fetched as one binary. It must match the plan target computed here, and the
// page must not need the compiler (codegen.ts, Handlebars, node:fs).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { loadPlanTarget } from '../targets/plan/runtime.ts';
import { codegen } from '../targets/wgsl/codegen.ts';
import { browserSkipReason, launchChromium, openPage, startStaticServer, type StaticServer } from './helpers/browser.ts';
import { maxAbsDiff } from './helpers/golden.ts';
import { tinyConfig } from './helpers/models.ts';
import { randomTensors } from '../runtime/random-model.ts';

const skip = browserSkipReason();
const TOKENS = [5, 17, 200, 3, 99, 42];

const page = `<!doctype html><meta charset="utf-8"><title>wgsl runtime</title>
<script type="module">
import { loadWgslArtifact } from '/targets/wgsl/runtime.ts';
window.result = (async () => {
  const get = (p) => fetch(p).then((r) => r.ok ? r : Promise.reject(new Error(p + ': ' + r.status)));
  const plan = await (await get('/plan.json')).json();
  const index = await (await get('/index.json')).json();
  const artifact = await (await get('/wgsl.json')).json();
  const bin = new Float32Array(await (await get('/weights.bin')).arrayBuffer());
  const model = await loadWgslArtifact(artifact, (d) => bin.subarray(index[d.name], index[d.name] + d.shape.reduce((a, b) => a * b, 1)));
  const tokens = ${JSON.stringify(TOKENS)};
  const prefill = await model.run('prefill', Int32Array.from(tokens.slice(0, 5)));
  const decode = await model.run('decode', Int32Array.from(tokens.slice(5)));
  const state = await model.readState();
  const out = {
    prefill: Array.from(prefill), decode: Array.from(decode),
    state: Object.fromEntries(Object.entries(state).map(([k, v]) => [k, Array.from(v)])),
    messages: model.shaders.flatMap((s) => s.messages), dispatches: model.stats.last.dispatches,
  };
  model.dispose();
  return out;
})().catch((e) => ({ error: String(e && e.stack || e) }));
</script>`;

describe.skipIf(!!skip)(`WGSL runtime in headless Chromium${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let server: StaticServer;
  let browser: Browser;
  const cfg = tinyConfig({ nLayer: 2 });
  const read = randomTensors(cfg, 9);
  const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f16', logits: 'all', chunk: 5 });
  const values = plan.weights.map((d) => materializeWeight(d.source, read));

  beforeAll(async () => {
    const index: Record<string, number> = {};
    let at = 0;
    plan.weights.forEach((d, i) => { index[d.name] = at; at += values[i].length; });
    const bin = new Float32Array(at);
    plan.weights.forEach((d, i) => bin.set(values[i], index[d.name]));
    const artifact = codegen.emit(plan);
    server = await startStaticServer({
      pages: {
        '/index.html': page,
        '/plan.json': JSON.stringify(plan),
        '/index.json': JSON.stringify(index),
        '/wgsl.json': JSON.stringify(artifact),
        '/weights.bin': new Uint8Array(bin.buffer),
      },
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('prefill, decode and state match the plan target; no compiler in the page', async () => {
    const { page: p, log } = await openPage(browser, `${server.url}/index.html`);
    const r = (await p.evaluate(() => (window as unknown as { result: Promise<unknown> }).result)) as {
      error?: string; prefill: number[]; decode: number[]; state: Record<string, number[]>; messages: string[]; dispatches: number;
    };
    expect(r.error, log.lines.join('\n')).toBeUndefined();
    const ref = await loadPlanTarget(plan, (d) => values[plan.weights.indexOf(d)]);
    const rel = (a: ArrayLike<number>, b: Float32Array) => maxAbsDiff(a, b) / Math.max(1, ...b.map(Math.abs));
    expect(rel(r.prefill, await ref.run('prefill', Int32Array.from(TOKENS.slice(0, 5))))).toBeLessThan(1e-5);
    expect(rel(r.decode, await ref.run('decode', Int32Array.from(TOKENS.slice(5))))).toBeLessThan(1e-5);
    const state = await ref.readState();
    for (const [k, v] of Object.entries(state)) expect(rel(r.state[k], v), k).toBeLessThan(1e-5);
    expect(r.messages).toEqual([]);
    expect(r.dispatches).toBe(1 + 7 * cfg.nLayer + 2);
    expect(server.requests).toContain('/targets/wgsl/runtime.ts');
    expect(server.requests.filter((u) => /codegen|handlebars/.test(u))).toEqual([]);
    await p.close();
  });
});
