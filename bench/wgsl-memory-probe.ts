/**
 * Where a WebGPU load's memory goes, in Node (Dawn; SwiftShader when there is no GPU, in this process, so
 * this process's RSS is what Chromium's GPU process would hold): a preset's shapes with fewer layers
 * (--layers), seeded random weights, RSS against the weight bytes uploaded as they go, then the time of
 * each decode step. Per-layer numbers extrapolate to the full preset (layers dominate a 3B's bytes).
 *
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json \
 *     node --expose-gc --import tsx bench/wgsl-memory-probe.ts [--preset finch-3b] [--layers 2] [--weights int8]
 *       [--steps 1] [--cheap] [--profile]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import type { WeightDecl, WeightDType } from '../kernels/plan.ts';
import type { WeightProvider } from '../targets/backend.ts';
import { randomTensors } from '../runtime/random-model.ts';
import { PRESETS } from '../runtime/presets.ts';
import { acquireGpu } from '../targets/wgsl/device.ts';
import { loadPlan } from '../driver/targets.ts';
import type { WgslModel } from '../targets/wgsl/runtime.ts';

const MiB = 2 ** 20;
const rss = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    preset: { type: 'string', default: 'finch-3b' }, layers: { type: 'string', default: '2' },
    weights: { type: 'string', default: 'int8' }, steps: { type: 'string', default: '1' },
    // constant weights instead of seeded random ones: memory and time do not depend on the values, and
    // generating a 3B's random values costs minutes of CPU
    cheap: { type: 'boolean', default: false }, profile: { type: 'boolean', default: false },
  } });
  const cfg = { ...PRESETS[values.preset]!, nLayer: Number(values.layers) };
  const { plan } = compileGraph(finch(cfg), cfg, { weights: values.weights as WeightDType, logits: 'last', chunk: 16 });
  const read = randomTensors(cfg, 1);
  const gpu = await acquireGpu();
  const base = rss();
  console.log(`${values.preset} with ${cfg.nLayer} layers, ${values.weights}; adapter ${gpu.info.description} (software ${gpu.info.isSoftware}); RSS before load ${(base / MiB).toFixed(0)} MiB`);
  let peak = base;
  const timer = setInterval(() => { peak = Math.max(peak, rss()); }, 50);
  let lastPrint = 0;
  const t0 = performance.now();
  // Like the browser's File provider: rows of one weight at a time, nothing kept (one weight cached here).
  let last: { name: string; v: Float32Array } | undefined;
  const whole = (d: WeightDecl) => {
    const now = performance.now();
    if (now - lastPrint > 3000) { lastPrint = now; console.log(`  ${((now - t0) / 1000).toFixed(1)} s: reading ${d.name}, RSS ${(rss() / MiB).toFixed(0)} MiB`); }
    if (last?.name !== d.name) {
      last = undefined;
      last = { name: d.name, v: values.cheap ? new Float32Array(d.shape.reduce((a, b) => a * b, 1)).fill(0.01) : materializeWeight(d.source, read) };
    }
    return last.v;
  };
  const provider: WeightProvider = Object.assign((d: WeightDecl) => whole(d), {
    rows: (d: WeightDecl, row0: number, rows: number) => { const c = d.shape[d.shape.length - 1]; return whole(d).slice(row0 * c, (row0 + rows) * c); },
  });
  const model = await loadPlan('wgsl', plan, provider, { device: gpu.device }) as WgslModel;
  last = undefined;
  const loadMs = performance.now() - t0;
  last = undefined;
  (globalThis as { gc?: () => void }).gc?.();
  const uploaded = model.weightBytes;
  console.log(`loaded in ${(loadMs / 1000).toFixed(1)} s; RSS ${(rss() / MiB).toFixed(0)} MiB (peak ${(peak / MiB).toFixed(0)}, +${((peak - base) / MiB).toFixed(0)} over the start)${uploaded ? `, ${(uploaded / MiB).toFixed(0)} MiB of weights uploaded` : ''}`);
  for (let i = 0; i < Number(values.steps); i++) {
    const t = performance.now(), c = process.cpuUsage();
    await model.run('decode', Int32Array.of(i + 1));
    const cpu = process.cpuUsage(c);
    console.log(`decode step ${i + 1}: ${(performance.now() - t).toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU (all threads), RSS ${(rss() / MiB).toFixed(0)} MiB`);
  }
  // each dispatch alone: where a step's time goes, by shader (summed over the layers)
  if (!values.profile) { clearInterval(timer); console.log(`peak RSS ${(peak / MiB).toFixed(0)} MiB`); model.dispose(); gpu.release(); return; }
  const prof = await model.profile('decode', Int32Array.of(7));
  const byKey = new Map<string, { n: number; ms: number }>();
  for (const p of prof) { const k = `${p.kernel.replace(/\d+/g, '#')} ${p.key.slice(0, 80)}`; const e = byKey.get(k) ?? { n: 0, ms: 0 }; e.n++; e.ms += p.ms; byKey.set(k, e); }
  console.log(`profiled decode: ${prof.reduce((a, p) => a + p.ms, 0).toFixed(0)} ms in ${prof.length} steps; the slowest kinds:`);
  for (const [k, e] of [...byKey].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12)) console.log(`  ${e.ms.toFixed(0).padStart(7)} ms  ${String(e.n).padStart(3)}×  ${k}`);
  clearInterval(timer);
  console.log(`peak RSS ${(peak / MiB).toFixed(0)} MiB`);
  model.dispose();
  gpu.release();
}

main().catch((e) => { console.error(e); process.exit(1); });
