/**
 * gpu.js as "what a JavaScript developer writes by hand": a matvec and a WKV step at the model's sizes
 * (bench-0.1b: C = 768, 12 heads of 64), written as gpu.js kernels, timed with benchmark.js beside our
 * kernels in `rwkvc bench --kernels`. In Node only gpu.js's CPU mode runs here: its GPU mode in Node
 * needs headless-gl (the `gl` package, a native addon), which npm did not install (`npm ls gl` is
 * empty: no prebuilt binary for this Node/platform and no toolchain fetch), so gpu.js reports
 * 'A requested mode of "headlessgl" and is not supported'.
 *
 * The WKV step (per head h, value column j): y[j] = Σ_i r[i]·(u[i]·k[i]·v[j] + S[i][j]); then
 * S[i][j] = w[i]·S[i][j] + k[i]·v[j] — two kernels (output, then state), as a hand-written port would.
 */
import Benchmark from 'benchmark';
import type { ModelConfig } from '../kernels/config.ts';
import type { KernelPlan } from '../kernels/plan.ts';
import type { WeightProvider } from '../targets/backend.ts';
import { seededRandom } from '../runtime/random-model.ts';

export interface GpuJsRow { kernel: string; mode: string; meanMs: number; rmePct: number; samples: number; gbs?: number }

export async function benchGpuJs(cfg: ModelConfig, maxTime = 1): Promise<GpuJsRow[] | { unavailable: string }> {
  let GPU: typeof import('gpu.js').GPU;
  try { ({ GPU } = await import('gpu.js')); } catch (e) { return { unavailable: `gpu.js does not load: ${(e as Error).message.split('\n')[0]}` }; }
  const gpu = new GPU({ mode: 'cpu' });
  const C = cfg.nEmbd, H = cfg.nHead, N = cfg.headSize, rnd = seededRandom(3);
  const vec = (n: number) => Float32Array.from({ length: n }, () => rnd() - 0.5);
  const rows: GpuJsRow[] = [];
  const time = (name: string, fn: () => unknown) => {
    const b = new Benchmark(name, fn, { maxTime, minSamples: 5 });
    b.run({ async: false });
    return { meanMs: b.stats.mean * 1e3, rmePct: b.stats.rme, samples: b.stats.sample.length };
  };
  try {
    // matvec: y = W x, W [C][C] f32 (one of the four r/k/v/g matrices of the fused linear)
    const W = Array.from({ length: C }, () => vec(C)), x = vec(C);
    const mv = gpu.createKernel(function (this: { thread: { x: number }; constants: { n: number } }, w: number[][], v: number[]) {
      let s = 0;
      for (let i = 0; i < this.constants.n; i++) s += w[this.thread.x][i] * v[i];
      return s;
    }, { constants: { n: C }, output: [C] });
    const t = time('gpu.js matvec', () => mv(W as unknown as number[][], x as unknown as number[]));
    rows.push({ kernel: `matvec ${C}×${C} f32`, mode: 'gpu.js cpu', ...t, gbs: (C * C * 4) / t.meanMs / 1e6 });

    // WKV step over all heads: state [H·N][N]
    const r = vec(C), k = vec(C), v = vec(C), w = Float32Array.from({ length: C }, () => 0.5 + 0.5 * rnd()), u = vec(C);
    const S = Array.from({ length: C }, () => vec(N));
    const out = gpu.createKernel(function (this: { thread: { x: number }; constants: { n: number } }, s: number[][], rr: number[], kk: number[], vv: number[], uu: number[]) {
      const j = this.thread.x, base = Math.floor(j / this.constants.n) * this.constants.n, jj = j - base;
      let y = 0;
      for (let i = 0; i < this.constants.n; i++) y += rr[base + i] * (uu[base + i] * kk[base + i] * vv[j] + s[base + i][jj]);
      return y;
    }, { constants: { n: N }, output: [C] });
    const next = gpu.createKernel(function (this: { thread: { x: number; y: number }; constants: { n: number } }, s: number[][], kk: number[], vv: number[], ww: number[]) {
      const i = this.thread.y, j = this.thread.x, base = Math.floor(i / this.constants.n) * this.constants.n;
      return ww[i] * s[i][j] + kk[i] * vv[base + j];
    }, { constants: { n: N }, output: [N, C] });
    const tw = time('gpu.js wkv step', () => { out(S as unknown as number[][], r as unknown as number[], k as unknown as number[], v as unknown as number[], u as unknown as number[]); next(S as unknown as number[][], k as unknown as number[], v as unknown as number[], w as unknown as number[]); });
    rows.push({ kernel: `wkv step ${H}×${N}×${N}`, mode: 'gpu.js cpu', ...tw });
    return rows;
  } finally {
    gpu.destroy();
  }
}

/** Why gpu.js's GPU mode is not measured in Node here (one line). */
export async function gpuJsGpuModeInNode(): Promise<string> {
  try {
    const { GPU } = await import('gpu.js');
    const g = new GPU({ mode: 'headlessgl' });
    g.destroy();
    return 'headlessgl available';
  } catch (e) {
    return `gpu.js GPU mode in Node: ${(e as Error).message.split('\n')[0]} (headless-gl, the \`gl\` native addon gpu.js uses in Node, is not installed)`;
  }
}

const GPUJS_PAGE = `<!doctype html><script src="/gpu.js"></script><script>
window.run = (C, H, N, maxTime) => {
  let seed = 3;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
  const vec = (n) => Float32Array.from({ length: n }, () => rnd() - 0.5);
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return { unavailable: 'this Chromium gives the page no WebGL2 context' };
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER);
  const gpu = new GPU.GPU({ mode: 'webgl2' });
  if (gpu.mode !== 'webgl2') return { unavailable: 'gpu.js chose mode ' + gpu.mode + ', not webgl2' };
  // mean and relative margin of error at 95 % (normal quantile: ≥ 30 samples) of calls for maxTime seconds
  const time = (fn) => {
    for (let i = 0; i < 3; i++) fn();
    const t = [], end = performance.now() + 1000 * maxTime;
    while (performance.now() < end || t.length < 30) { const t0 = performance.now(); fn(); t.push(performance.now() - t0); }
    const mean = t.reduce((a, b) => a + b, 0) / t.length, sd = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / (t.length - 1));
    return { meanMs: mean, rmePct: 100 * 1.96 * sd / Math.sqrt(t.length) / mean, samples: t.length };
  };
  const rows = [];
  // matvec: W [C][C] uploaded once as a texture (a pipeline kernel's output), x in and y read back every call
  const W = Array.from({ length: C }, () => vec(C)), x = vec(C);
  const upload = gpu.createKernel(function (w) { return w[this.thread.y][this.thread.x]; }, { output: [C, C], pipeline: true });
  const Wt = upload(W);
  const mv = gpu.createKernel(function (w, v) {
    let s = 0;
    for (let i = 0; i < this.constants.n; i++) s += w[this.thread.x][i] * v[i];
    return s;
  }, { constants: { n: C }, output: [C] });
  const y = mv(Wt, x);
  let err = 0;
  for (let j = 0; j < C; j += 97) { let s = 0; for (let i = 0; i < C; i++) s += W[j][i] * x[i]; err = Math.max(err, Math.abs(s - y[j])); }
  if (!(err < 1e-3)) return { unavailable: 'gpu.js matvec on WebGL2 is off by ' + err };
  const t = time(() => mv(Wt, x));
  rows.push({ kernel: 'matvec ' + C + '×' + C + ' f32', ...t, gbs: C * C * 4 / t.meanMs / 1e6 });
  // WKV step over all heads, the state [H·N][N] kept in a texture: y read back, the next state stays
  const r = vec(C), k = vec(C), v = vec(C), u = vec(C), w = Float32Array.from({ length: C }, () => 0.5 + 0.5 * rnd());
  const init = gpu.createKernel(function (s) { return s[this.thread.y][this.thread.x]; }, { output: [N, C], pipeline: true, immutable: true });
  let S = init(Array.from({ length: C }, () => vec(N)));
  const out = gpu.createKernel(function (s, rr, kk, vv, uu) {
    const j = this.thread.x, base = Math.floor(j / this.constants.n) * this.constants.n, jj = j - base;
    let y = 0;
    for (let i = 0; i < this.constants.n; i++) y += rr[base + i] * (uu[base + i] * kk[base + i] * vv[j] + s[base + i][jj]);
    return y;
  }, { constants: { n: N }, output: [C] });
  const next = gpu.createKernel(function (s, kk, vv, ww) {
    const i = this.thread.y, j = this.thread.x, base = Math.floor(i / this.constants.n) * this.constants.n;
    return ww[i] * s[i][j] + kk[i] * vv[base + j];
  }, { constants: { n: N }, output: [N, C], pipeline: true, immutable: true });
  const tw = time(() => { out(S, r, k, v, u); const S2 = next(S, k, v, w); S.delete(); S = S2; });
  rows.push({ kernel: 'wkv step ' + H + '×' + N + '×' + N, ...tw });
  gpu.destroy();
  return { renderer, rows };
};
window.ready = true;
</script><script type="module">
import { loadWgslArtifact } from '/targets/wgsl/runtime.ts';
// our kernels, each a plan of its own, on the page's WebGPU device: the same timing loop as gpu.js's
window.runWgsl = async (maxTime) => {
  const list = await (await fetch('/wgsl.json')).json();
  const bin = new Float32Array(await (await fetch('/weights.bin')).arrayBuffer());
  const rows = [];
  let adapter = '';
  for (const k of list) {
    const m = await loadWgslArtifact(k.artifact, (d) => bin.subarray(k.index[d.name], k.index[d.name] + d.shape.reduce((a, b) => a * b, 1)));
    try {
      const info = m.device.adapterInfo || {};
      adapter = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
      const tok = Int32Array.of(1);
      for (let i = 0; i < 3; i++) await m.run('decode', tok);
      const t = [], end = performance.now() + 1000 * maxTime;
      while (performance.now() < end || t.length < 30) { const t0 = performance.now(); await m.run('decode', tok); t.push(performance.now() - t0); }
      const mean = t.reduce((a, b) => a + b, 0) / t.length, sd = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / (t.length - 1));
      rows.push({ kernel: k.kernel, meanMs: mean, rmePct: 100 * 1.96 * sd / Math.sqrt(t.length) / mean, samples: t.length, ...(k.bytes ? { gbs: k.bytes / mean / 1e6 } : {}) });
    } finally {
      m.dispose();
    }
  }
  return { adapter, rows };
};
window.wgslReady = true;
</script>`;

/**
 * gpu.js's WebGL2 mode in headless Chromium (WebGL2 through ANGLE on SwiftShader, a software rasteriser:
 * compare ratios, not speeds): the same matvec and WKV step as the CPU mode above, with what stays on
 * the device kept there as gpu.js's documentation shows (the matrix and the WKV state in textures,
 * `pipeline: true`), the output read back every call. Beside it, in the same page on its WebGPU device
 * (SwiftShader too), our kernels of the same sizes (`wgsl`: wgslCases). Each call is timed in the page
 * the same way (mean, ±RME at 95 %, ≥ 30 samples); what cannot run is one line in `unavailable`.
 */
export async function benchGpuJsChromium(cfg: ModelConfig, maxTime = 1, o: { chromium?: string; wgsl?: { plan: KernelPlan; weights: (p: KernelPlan) => WeightProvider } } = {}): Promise<{ rows: GpuJsRow[]; unavailable: string[] }> {
  const { existsSync, readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const exe = o.chromium ?? process.env.RWKVC_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
  if (!exe || !existsSync(exe)) return { rows: [], unavailable: [`gpu.js in Chromium: no Chromium at ${exe ?? '/usr/bin/chromium'} (apt-get install chromium)`] };
  let bundle: string;
  try { bundle = readFileSync(fileURLToPath(new URL('../dist/gpu-browser.min.js', import.meta.resolve('gpu.js'))), 'utf8'); } catch (e) { return { rows: [], unavailable: [`gpu.js in Chromium: no browser bundle (${(e as Error).message.split('\n')[0]})`] }; }
  const pages: Record<string, string | Uint8Array> = { '/gpujs.html': GPUJS_PAGE, '/gpu.js': bundle };
  const unavailable: string[] = [];
  const cases = o.wgsl ? await wgslCases(o.wgsl.plan, o.wgsl.weights) : undefined;
  if (cases && 'unavailable' in cases) unavailable.push(cases.unavailable);
  else if (cases) { pages['/wgsl.json'] = JSON.stringify(cases.list); pages['/weights.bin'] = cases.bin; }
  const { chromium: pw } = await import('playwright-core');
  const { startStaticServer } = await import('../examples/browser/static-server.ts');
  const srv = await startStaticServer({ pages });
  const rows: GpuJsRow[] = [];
  try {
    const browser = await pw.launch({ executablePath: exe, args: ['--no-sandbox', '--enable-unsafe-swiftshader', '--use-angle=swiftshader', '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--disable-background-networking', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(0);
      await page.goto(`${srv.url}/gpujs.html`);
      await page.waitForFunction('window.ready === true', null, { timeout: 60_000 });
      const r = await page.evaluate(([C, H, N, t]) => (window as unknown as { run(...a: number[]): unknown }).run(C, H, N, t), [cfg.nEmbd, cfg.nHead, cfg.headSize, maxTime] as const) as
        { unavailable: string } | { renderer: string; rows: Omit<GpuJsRow, 'mode'>[] };
      if ('unavailable' in r) unavailable.push(`gpu.js in Chromium: ${r.unavailable}`);
      else rows.push(...r.rows.map((x) => ({ ...x, mode: `gpu.js webgl2 (${/SwiftShader/i.test(r.renderer) ? 'SwiftShader' : r.renderer})` })));
      if (cases && !('unavailable' in cases)) {
        try {
          await page.waitForFunction('window.wgslReady === true', null, { timeout: 60_000 });
          const w = await page.evaluate((t) => (window as unknown as { runWgsl(t: number): Promise<{ adapter: string; rows: Omit<GpuJsRow, 'mode'>[] }> }).runWgsl(t), maxTime);
          rows.push(...w.rows.map((x) => ({ ...x, mode: `rwkvc wgsl (${/swiftshader/i.test(w.adapter) ? 'SwiftShader' : w.adapter || 'WebGPU'})` })));
        } catch (e) {
          unavailable.push(`rwkvc wgsl in Chromium: ${(e as Error).message.split('\n')[0]}`);
        }
      }
    } finally {
      await browser.close();
    }
  } catch (e) {
    unavailable.push(`gpu.js in Chromium: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    await srv.close();
  }
  return { rows, unavailable };
}

/**
 * Our kernels at gpu.js's sizes: layer 0's C×C output projection (the one linear of one C×C matrix; the
 * r/k/v/g matrices are fused into one call) and its WKV step, each cut out of the compiled decode program
 * into a plan of its own (bench/model-plan.ts's singleKernelPlan), rendered to WGSL here, with its weights in
 * one buffer. A call of such a plan is one command buffer and the readback of the plan's output (the V
 * logits: the runtime always returns them), against gpu.js's C outputs read back.
 */
async function wgslCases(plan: KernelPlan, weights: (p: KernelPlan) => WeightProvider): Promise<{ list: unknown[]; bin: Uint8Array } | { unavailable: string }> {
  const { singleKernelPlan } = await import('./model-plan.ts');
  const { codegen } = await import('../targets/wgsl/codegen.ts');
  const C = plan.config.nEmbd, shape = new Map(plan.weights.map((w) => [w.name, w.shape.join('×')]));
  const lin = plan.decode.kernels.find((k) => k.kind === 'linear' && k.layer === 0 && k.groups.length === 1 && shape.get(k.groups[0].w) === `${C}×${C}`);
  const wkv = plan.decode.kernels.find((k) => k.kind === 'wkv' && k.layer === 0);
  if (!lin || !wkv) return { unavailable: 'rwkvc wgsl: the plan has no single C×C linear or no WKV kernel in layer 0' };
  const parts: Float32Array[] = [], list: unknown[] = [];
  let at = 0;
  for (const [k, kernel] of [[lin, `matvec ${C}×${C} f32`], [wkv, `wkv step ${plan.config.nHead}×${plan.config.headSize}×${plan.config.headSize}`]] as const) {
    const one = singleKernelPlan(plan, k, k), w = weights(one), index: Record<string, number> = {};
    for (const d of one.weights) { const v = w(d); index[d.name] = at; at += v.length; parts.push(v); }
    list.push({ kernel, artifact: codegen.emit(one), index, ...(k === lin ? { bytes: C * C * 4 } : {}) });
  }
  const bin = new Float32Array(at);
  let o = 0;
  for (const p of parts) { bin.set(p, o); o += p.length; }
  return { list, bin: new Uint8Array(bin.buffer) };
}
