/**
 * The WGSL load's long silent phases report progress (issue 16): the runtime counts shaders compiled and
 * pipelines created through `onProgress`, and benchWgsl (what `rwkvc bench --target wgsl` runs) names
 * each phase as it starts. On Dawn (SwiftShader when there is no GPU).
 */
import { afterAll, describe, expect, it } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { benchWgsl } from '../bench/wgsl-bench.ts';
import { randomTensors } from '../runtime/random-model.ts';
import { acquireTestGpu } from './helpers/gpu.ts';
import { tinyConfig } from './helpers/models.ts';

const { gpu, skip } = await acquireTestGpu();

describe.skipIf(!gpu)(`WGSL load progress${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(() => gpu?.release());

  it('counts every shader and every pipeline up to the number the model uses; the bench names its phases in order', async () => {
    const cfg = tinyConfig({ nLayer: 1 });
    const read = randomTensors(cfg, 5);
    const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f32', logits: 'last', chunk: 4 });
    const events: [string, number, number][] = [];
    const phases: string[] = [];
    const r = await benchWgsl({
      plan, weights: (d) => materializeWeight(d.source, read), device: gpu!.device, decodeSteps: 1, prefillRuns: 1, warmup: 0,
      onPhase: (p) => phases.push(p), onProgress: (p, d, t) => events.push([p, d, t]),
    });
    for (const phase of ['shaders', 'pipelines']) {
      const e = events.filter(([p]) => p === phase);
      // 1, 2, …, N of N, N the pipelines the loaded model has
      expect(e.map(([, d]) => d), phase).toEqual(Array.from({ length: r.pipelines }, (_, i) => i + 1));
      expect(new Set(e.map(([, , t]) => t)), phase).toEqual(new Set([r.pipelines]));
    }
    expect(r.pipelines).toBeGreaterThan(3);
    expect(phases.map((p) => p.split(/[: ]/)[0])).toEqual(['loading', 'loaded', 'decode', 'prefill']);
    expect(phases[1]).toMatch(new RegExp(`^loaded in \\d+\\.\\d s \\(${r.pipelines} pipelines\\)$`));
  }, 900_000); // SwiftShader creates a pipeline in ~1 s on an idle core; on this shared 2-core machine (load 26) 14 took 155–400 s
});
