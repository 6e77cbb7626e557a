/**
 * onnxruntime-web's WebGPU execution provider beside `--target wgsl`, in one headless Chromium page on one
 * WebGPU device (here SwiftShader, a software rasteriser: the ratio means something, the absolute speed
 * does not). The page loads our WGSL runtime (transpiled TypeScript, shaders pre-rendered here) and
 * onnxruntime-web's WebGPU bundle from node_modules, both served by examples/browser/static-server.ts;
 * decode rounds take turns (ours n tokens, then ORT n tokens), prefills alternate. ORT decodes with the step
 * model and keeps the state on the GPU between calls (preferredOutputLocation 'gpu-buffer' for next.state.*,
 * fed back as inputs), reading back only the logits, as our runtime does; prefill runs the Scan model.
 * What ORT's partitioner left on the CPU (its warnings) is reported as it logged it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { KernelPlan } from '../kernels/plan.ts';
import type { WeightProvider } from '../targets/backend.ts';
import { codegen } from '../targets/wgsl/codegen.ts';
import { startStaticServer } from '../examples/browser/static-server.ts';
import { stateShapes } from '../driver/onnx/ort-model.ts';

export interface WebGpuPeerResult {
  adapter: string;
  software: boolean;
  engines: { name: string; loadMs: number; decodeMsPerToken: number; prefillTokensPerS: number }[];
  /** rwkvc against ORT WebGPU: > 1 means rwkvc is faster. */
  speedup: { decode: number; prefill: number; load: number };
  ortLog: string[];
  error?: string;
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>wgsl vs onnxruntime-web webgpu</title>
<script type="module">
import * as ort from '/ort/ort.webgpu.bundle.min.mjs';
import { loadWgslArtifact } from '/targets/wgsl/runtime.RUNTIME_EXT';
window.result = (async () => {
  const get = (p) => fetch(p).then((r) => r.ok ? r : Promise.reject(new Error(p + ': ' + r.status)));
  const cfg = await (await get('/cfg.json')).json();
  const index = await (await get('/index.json')).json();
  const artifact = await (await get('/wgsl.json')).json();
  const bin = new Float32Array(await (await get('/weights.bin')).arrayBuffer());
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  let seed = 7;
  const tok = () => (seed = (seed * 1103515245 + 12345) >>> 0) % cfg.V;
  let t0 = performance.now();
  const ours = await loadWgslArtifact(artifact, (d) => bin.subarray(index[d.name], index[d.name] + d.shape.reduce((a, b) => a * b, 1)));
  const oursLoad = performance.now() - t0;
  const info = ours.device.adapterInfo || {};
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.logLevel = 'warning';
  const stateNames = Object.keys(cfg.shapes);
  const opts = { executionProviders: ['webgpu'], preferredOutputLocation: Object.fromEntries(stateNames.map((n) => ['next.' + n, 'gpu-buffer'])) };
  t0 = performance.now();
  const step = await ort.InferenceSession.create('/step.onnx', opts);
  const ortLoad = performance.now() - t0;
  const prefillS = await ort.InferenceSession.create('/prefill.onnx', opts);
  const zero = () => Object.fromEntries(stateNames.map((n) => [n, new ort.Tensor('float32', new Float32Array(cfg.shapes[n].reduce((a, b) => a * b, 1)), cfg.shapes[n])]));
  let state = zero();
  const ortRun = async (s, name, ids) => {
    const out = await s.run({ ...state, [name]: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [ids.length]) });
    for (const n of stateNames) if (state[n].location === 'gpu-buffer') state[n].dispose();
    state = Object.fromEntries(stateNames.map((n) => [n, out['next.' + n]]));
    return out.logits.data;
  };
  for (let i = 0; i < 2; i++) { await ours.run('decode', Int32Array.of(tok())); await ortRun(step, 'token', [tok()]); }
  const tOurs = [], tOrt = [];
  for (let r = 0; r < cfg.rounds; r++) {
    for (let i = 0; i < cfg.perRound; i++) { const t = performance.now(); await ours.run('decode', Int32Array.of(tok())); tOurs.push(performance.now() - t); }
    for (let i = 0; i < cfg.perRound; i++) { const t = performance.now(); await ortRun(step, 'token', [tok()]); tOrt.push(performance.now() - t); }
  }
  const prompt = Array.from({ length: cfg.prefill }, tok);
  const pOurs = [], pOrt = [];
  for (let r = 0; r < 2; r++) {
    let t = performance.now(); await ours.run('prefill', Int32Array.from(prompt)); pOurs.push(performance.now() - t);
    state = zero();
    t = performance.now(); await ortRun(prefillS, 'tokens', prompt); pOrt.push(performance.now() - t);
  }
  ours.dispose();
  return {
    adapter: [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' / '),
    ours: { loadMs: oursLoad, decode: median(tOurs), prefill: Math.min(...pOurs) },
    ort: { loadMs: ortLoad, decode: median(tOrt), prefill: Math.min(...pOrt) },
  };
})().catch((e) => ({ error: String(e && e.stack || e) }));
</script>`;

export interface WebGpuPeerOptions {
  /** the plan for --target wgsl (logits last, chunk ≥ prefill tokens) and its weights */
  plan: KernelPlan;
  weights: WeightProvider;
  /** the ONNX step and Scan prefill models of the same checkpoint */
  stepOnnx: Uint8Array;
  prefillOnnx: Uint8Array;
  decodeTokens: number;
  prefillTokens: number;
  chromium?: string;
}

/** onnxruntime-web's WebGPU bundle and the WASM build its WebGPU EP loads (asyncify, in 1.30), by URL path under /ort/. */
function ortWebGpuFiles(): Record<string, Uint8Array> {
  const dist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  const files = ['ort.webgpu.bundle.min.mjs', 'ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm'];
  return Object.fromEntries(files.map((f) => [`/ort/${f}`, new Uint8Array(readFileSync(join(dist, f)))]));
}

export async function benchOrtWebGpu(o: WebGpuPeerOptions): Promise<WebGpuPeerResult> {
  const chromium = o.chromium ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find(existsSync);
  if (!chromium) throw new Error('no Chromium (apt-get install chromium)');
  const index: Record<string, number> = {};
  let at = 0;
  const values = o.plan.weights.map((d) => { index[d.name] = at; const v = o.weights(d); at += v.length; return v; });
  const bin = new Float32Array(at);
  o.plan.weights.forEach((d, i) => bin.set(values[i], index[d.name]));
  const rounds = 4, perRound = Math.max(4, Math.ceil(o.decodeTokens / rounds));
  const server = await startStaticServer({
    pages: {
      // the page's modules: our WGSL runtime from the served root (the checkout's .ts, transpiled, or a build's
      // .js: the root is then dist/, which holds no node_modules), onnxruntime-web's WebGPU files from memory
      '/index.html': PAGE.replace('RUNTIME_EXT', import.meta.url.endsWith('.ts') ? 'ts' : 'js'),
      ...ortWebGpuFiles(),
      '/cfg.json': JSON.stringify({ V: o.plan.config.vocabSize, shapes: stateShapes(o.plan.config), rounds, perRound, prefill: o.prefillTokens }),
      '/index.json': JSON.stringify(index),
      '/wgsl.json': JSON.stringify(codegen.emit(o.plan)),
      '/weights.bin': new Uint8Array(bin.buffer),
      '/step.onnx': o.stepOnnx,
      '/prefill.onnx': o.prefillOnnx,
    },
  });
  const { chromium: pw } = await import('playwright-core');
  const browser = await pw.launch({
    executablePath: chromium, headless: true,
    args: ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader', '--no-sandbox', '--disable-background-networking', '--no-first-run'],
  });
  const log: string[] = [];
  try {
    const page = await browser.newPage();
    page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
    page.setDefaultTimeout(0);
    await page.goto(`${server.url}/index.html`);
    const r = (await page.evaluate(() => (window as unknown as { result: Promise<unknown> }).result)) as {
      error?: string; adapter: string; ours: { loadMs: number; decode: number; prefill: number }; ort: { loadMs: number; decode: number; prefill: number };
    };
    const ortLog = log.filter((l) => /onnxruntime|\bort\b|execution provider|fallback|not assigned/i.test(l)).slice(0, 20);
    if (r.error) return { adapter: '', software: true, engines: [], speedup: { decode: NaN, prefill: NaN, load: NaN }, ortLog: [...ortLog, ...log.slice(-5)], error: r.error.split('\n')[0] };
    const T = o.prefillTokens;
    return {
      adapter: r.adapter, software: /swiftshader|llvmpipe|software/i.test(r.adapter),
      engines: [
        { name: 'rwkvc wgsl', loadMs: r.ours.loadMs, decodeMsPerToken: r.ours.decode, prefillTokensPerS: T / (r.ours.prefill / 1000) },
        { name: 'onnxruntime-web WebGPU EP', loadMs: r.ort.loadMs, decodeMsPerToken: r.ort.decode, prefillTokensPerS: T / (r.ort.prefill / 1000) },
      ],
      speedup: { decode: r.ort.decode / r.ours.decode, prefill: r.ort.prefill / r.ours.prefill, load: r.ort.loadMs / r.ours.loadMs },
      ortLog,
    };
  } finally {
    await browser.close();
    await server.close();
  }
}

export function formatWebGpu(r: WebGpuPeerResult): string {
  if (r.error) return `onnxruntime-web WebGPU EP: could not run: ${r.error}${r.ortLog.length ? `\n  ${r.ortLog.join('\n  ')}` : ''}`;
  const lines = [`WebGPU, same page and device: ${r.adapter}${r.software ? ' (a software rasteriser: compare the ratio, not the speed)' : ''}`];
  for (const e of r.engines)
    lines.push(`${e.name.padEnd(28)} decode ${e.decodeMsPerToken.toFixed(2).padStart(9)} ms/token   prefill ${e.prefillTokensPerS.toFixed(1).padStart(8)} tok/s   load ${(e.loadMs / 1000).toFixed(1)} s`);
  lines.push(`rwkvc wgsl vs onnxruntime-web WebGPU: decode ${r.speedup.decode.toFixed(2)}×, prefill ${r.speedup.prefill.toFixed(2)}×, load ${r.speedup.load.toFixed(2)}× (> 1: rwkvc faster)`);
  if (r.ortLog.length) lines.push(`onnxruntime log: ${r.ortLog.join(' | ')}`);
  return lines.join('\n');
}
