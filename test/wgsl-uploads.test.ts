/**
 * Weight uploads (targets/wgsl/uploads.ts) go through queue.writeBuffer in chunks, waiting for the queue
 * every so many bytes, so an implementation's staging copies never hold a whole model (issue 14: Chromium's
 * GPU process on SwiftShader). Writes of 12 bytes with a wait every 40 cross every chunk boundary of every
 * buffer: the model computes the very same logits as one loaded with the default sizes. On Dawn
 * (SwiftShader when there is no GPU).
 */
import { afterAll, describe, expect, it } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import type { WgslModel, WgslOptions } from '../targets/wgsl/runtime.ts';
import type { WeightProvider } from '../targets/backend.ts';
import { loadPlan, type PlanLoadOptions } from '../driver/targets.ts';
import { randomTensors } from '../runtime/random-model.ts';
import { acquireTestGpu } from './helpers/gpu.ts';
import { tinyConfig } from './helpers/models.ts';

const { gpu, skip } = await acquireTestGpu();

describe.skipIf(skip)('WebGPU weight uploads in chunks', () => {
  afterAll(() => gpu?.release());

  it('12-byte writes with a wait every 40 bytes load the same weights as the default sizes (int8)', async () => {
    const cfg = tinyConfig({ nLayer: 1 });
    const read = randomTensors(cfg, 3);
    const weights: WeightProvider = (d) => materializeWeight(d.source, read);
    // one token per call: matvec shaders only, quick to build on SwiftShader
    const { plan } = compileGraph(finch(cfg), cfg, { weights: 'int8', logits: 'last', chunk: 1 });
    const load = (o: WgslOptions) => loadPlan('wgsl', plan, weights, { device: gpu!.device, ...o } as PlanLoadOptions) as Promise<WgslModel>;
    const small = await load({ upload: { chunk: 12, flush: 40 } });
    const usual = await load({});
    try {
      expect(small.weightBytes).toBe(usual.weightBytes);
      expect(small.weightBytes).toBeGreaterThan(0);
      for (const t of [1, 5]) {
        const a = await small.run('decode', Int32Array.of(t));
        const b = await usual.run('decode', Int32Array.of(t));
        expect(a).toEqual(b);
        expect(a.some((v) => v !== 0)).toBe(true);
      }
    } finally {
      small.dispose();
      usual.dispose();
    }
  }, 600_000);

  it('a chunk that is not a positive multiple of 4 bytes is refused', async () => {
    const cfg = tinyConfig({ nLayer: 1 });
    const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f32', logits: 'last', chunk: 1 });
    const read = randomTensors(cfg, 3);
    await expect(loadPlan('wgsl', plan, (d) => materializeWeight(d.source, read), { device: gpu!.device, upload: { chunk: 6 } } as PlanLoadOptions))
      .rejects.toThrow(/upload chunk 6: a positive multiple of 4 bytes/);
  }, 600_000);
});
