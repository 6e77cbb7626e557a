/**
 * gpu.js as the hand-written peer beyond Node's CPU mode (bench/gpujs.ts): its WebGL2 mode in headless
 * Chromium (SwiftShader) runs the same matvec and WKV step — the page checks the matvec against a plain
 * loop before timing it — and our WGSL kernels of the same sizes, cut out of the compiled plan, are timed
 * the same way in the same page on its WebGPU device. Speeds are not asserted.
 */
import { describe, expect, it } from 'vitest';
import { benchGpuJsChromium } from '../bench/gpujs.ts';
import { modelPlan } from '../bench/model-plan.ts';
import { PRESETS } from '../runtime/presets.ts';
import { randomWeights } from '../runtime/random-model.ts';
import { browserSkipReason } from './helpers/browser.ts';

describe('gpu.js beside rwkvc wgsl', () => {
  it('without a browser, one line saying so', async () => {
    expect(await benchGpuJsChromium(PRESETS['finch-tiny'], 0.01, { chromium: '/nonexistent/chromium' }))
      .toEqual({ rows: [], unavailable: ['gpu.js in Chromium: no Chromium at /nonexistent/chromium (apt-get install chromium)'] });
  });

  describe.skipIf(browserSkipReason())('in headless Chromium: WebGL2 and WebGPU', () => {
    it('times the same matvec and WKV step in both, at the model\'s sizes', async () => {
      const plan = modelPlan({ ...PRESETS['finch-tiny'], dtype: 'f32', prefillT: 16 });
      const r = await benchGpuJsChromium(PRESETS['finch-tiny'], 0.05, { wgsl: { plan, weights: (p) => randomWeights(p.config, 1) } });
      expect(r.unavailable).toEqual([]);
      expect(r.rows.map((x) => `${x.mode.split(' (')[0]}: ${x.kernel}`)).toEqual([
        'gpu.js webgl2: matvec 128×128 f32', 'gpu.js webgl2: wkv step 2×64×64', 'rwkvc wgsl: matvec 128×128 f32', 'rwkvc wgsl: wkv step 2×64×64']);
      for (const x of r.rows) {
        expect(x.samples).toBeGreaterThanOrEqual(30);
        expect(x.meanMs).toBeGreaterThan(0);
        expect(Number.isFinite(x.rmePct)).toBe(true);
        if (x.kernel.startsWith('matvec')) expect(x.gbs).toBeCloseTo((128 * 128 * 4) / x.meanMs / 1e6, 9);
      }
    }, 180_000);
  });
});
