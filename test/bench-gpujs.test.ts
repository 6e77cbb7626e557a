/**
 * gpu.js as the hand-written peer beyond Node's CPU mode (bench/gpujs.ts): its WebGL2 mode in headless
 * Chromium (SwiftShader) runs the same matvec and WKV step — the page checks the matvec against a plain
 * loop before timing it — and our WGSL kernels of the same sizes are cut out of the compiled plan and
 * timed beside it. Speeds are not asserted.
 */
import { describe, expect, it } from 'vitest';
import { benchGpuJsChromium, benchWgslBeside } from '../bench/gpujs.ts';
import { modelPlan } from '../bench/model-plan.ts';
import { PRESETS } from '../runtime/presets.ts';
import { randomWeights } from '../runtime/random-model.ts';
import { browserSkipReason } from './helpers/browser.ts';

describe('gpu.js beside rwkvc wgsl', () => {
  it('without a browser, one line saying so', async () => {
    expect(await benchGpuJsChromium(PRESETS['finch-tiny'], 0.01, '/nonexistent/chromium')).toEqual({ unavailable: 'gpu.js in Chromium: no Chromium at /nonexistent/chromium (apt-get install chromium)' });
  });

  describe.skipIf(browserSkipReason())('in headless Chromium (WebGL2) and on the WGSL target', () => {
    it('times the same matvec and WKV step in both, at the model\'s sizes', async () => {
      const g = await benchGpuJsChromium(PRESETS['finch-tiny'], 0.05);
      if ('unavailable' in g) throw new Error(g.unavailable);
      const plan = modelPlan({ ...PRESETS['finch-tiny'], dtype: 'f32', prefillT: 16 });
      const w = await benchWgslBeside(plan, (p) => randomWeights(p.config, 1), 0.05);
      if ('unavailable' in w) throw new Error(w.unavailable);
      for (const rows of [g, w]) {
        expect(rows.map((r) => r.kernel)).toEqual(['matvec 128×128 f32', 'wkv step 2×64×64']);
        for (const r of rows) {
          expect(r.samples).toBeGreaterThanOrEqual(30);
          expect(r.meanMs).toBeGreaterThan(0);
          expect(Number.isFinite(r.rmePct)).toBe(true);
        }
        expect(rows[0].gbs).toBeCloseTo((128 * 128 * 4) / rows[0].meanMs / 1e6, 9);
      }
      expect(g[0].mode).toMatch(/^gpu\.js webgl2 \(/);
      expect(w[0].mode).toMatch(/^rwkvc wgsl \(Dawn, /);
    }, 180_000);
  });
});
