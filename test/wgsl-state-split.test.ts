/**
 * The state in parts (targets/gpu/lower.ts): when the state does not fit one storage binding (QRWKV6-32B:
 * 161 MiB against WebGPU's default 128 MiB), it is kept in several buffers, each a layer's state or a few
 * layers', bound by the kernels that touch it. A tiny Finch model lowered for a small fake binding limit
 * puts its state in two parts; on WebGPU (SwiftShader when there is no GPU) its logits and state equal
 * the plan interpreter's, and a state written in comes back out. A single state buffer too large for a binding is one line naming it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { UserError } from '../kernels/errors.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { DEFAULT_LIMITS, lowerPlan, type Limits } from '../targets/gpu/lower.ts';
import type { WgslModel, WgslOptions } from '../targets/wgsl/runtime.ts';
import type { StateTensors, TargetModel, WeightProvider } from '../targets/backend.ts';
import { loadPlan, type PlanLoadOptions } from '../driver/targets.ts';
import { randomTensors } from '../runtime/random-model.ts';
import { acquireTestGpu } from './helpers/gpu.ts';
import { tinyConfig } from './helpers/models.ts';

const { gpu, skip } = await acquireTestGpu();
const TOL = 1e-5; // the conformance suite's WGSL tolerance (test/helpers/conformance.ts)

const cfg = tinyConfig({ nLayer: 4, nEmbd: 64, headSize: 32, nHead: 2, loraMix: 8, loraDecay: 8 });
const read = randomTensors(cfg, 11);
const weights: WeightProvider = (d) => materializeWeight(d.source, read);
const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f32', logits: 'all', chunk: 1 });

// One token per call (chunk 1, no batch program): only matvec shaders, whose pipelines SwiftShader builds
// in seconds (a tiled matmul's take a minute under load); the kernels at T > 1 and batch calls on state
// parts are the conformance suite's (test/targets/kernels.test.ts). Per layer: two token shifts [C] and
// the wkv state [H, N, N]. A binding of two layers' state: the model's state takes two parts.
const layerBytes = (2 * cfg.nEmbd + cfg.nHead * cfg.headSize ** 2) * 4;
const limits: Partial<Limits> = { maxStorageBufferBindingSize: 2 * layerBytes };

function close(got: Float32Array, want: Float32Array, what: string) {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  expect(worst, what).toBeLessThanOrEqual(TOL);
}
const closeState = (got: StateTensors, want: StateTensors, what: string) => {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const k of Object.keys(want)) close(got[k], want[k], `${what}: ${k}`);
};

describe.skipIf(skip)('WebGPU: the state in several bindings', () => {
  afterAll(() => gpu?.release());

  it('the layout: the state in parts of whole buffers, each within the binding limit; mem without it', () => {
    const L = lowerPlan(plan, plan.decode, { ...DEFAULT_LIMITS, ...limits }).layout;
    const max = limits.maxStorageBufferBindingSize!;
    expect(L.parts.length).toBe(2);
    for (const p of L.parts) expect(p.elems * 4).toBeLessThanOrEqual(max);
    expect(L.memElems * 4).toBeLessThanOrEqual(max);
    for (const s of L.state.values()) {
      const p = L.parts[s.part!];
      expect(s.offset >= p.base && s.offset + s.elems <= p.base + p.elems).toBe(true);
    }
    expect(2 * layerBytes % 256).toBe(0); // buffers end on 256-byte boundaries: no padding between them
    expect(lowerPlan(plan, plan.decode, DEFAULT_LIMITS).layout.parts.length).toBe(1);
  });

  it('decode calls equal the interpreter; a state written in comes back out', async () => {
    const model = await loadPlan('wgsl', plan, weights, { device: gpu!.device, limits } as WgslOptions as PlanLoadOptions) as WgslModel;
    const ref = await loadPlan('plan', plan, weights);
    try {
      // state kernels bind different parts: the split is real
      const parts = new Set(model.steps('decode').flatMap((s) => (s.kind === 'dispatch' && s.statePart !== undefined ? [s.statePart] : [])));
      expect(parts.size).toBe(2);
      const both = async (f: (m: TargetModel) => Promise<Float32Array>, what: string) => close(await f(model), await f(ref), what);
      for (const t of [3, 1, 4]) await both((m) => m.run('decode', Int32Array.of(t)), `decode ${t}`);
      await both((m) => m.run('prefill', Int32Array.of(5)), 'prefill');
      closeState(await model.readState(), await ref.readState(), 'state');
      // a state from elsewhere (seeded, not the one either model holds)
      const st = await ref.readState();
      const written = Object.fromEntries(Object.entries(st).map(([k, v]) => [k, v.map((x, i) => x * 0.5 + Math.sin(i) * 0.1)])) as StateTensors;
      await model.writeState(written);
      closeState(await model.readState(), written, 'written state');
      await ref.writeState(written);
      await both((m) => m.run('decode', Int32Array.of(7)), 'decode from a written state');
      closeState(await model.readState(), await ref.readState(), 'state after it');
    } finally {
      model.dispose();
      ref.dispose();
    }
  }, 300_000);

  it('a state buffer larger than one binding is one line naming it', () => {
    const small = { ...DEFAULT_LIMITS, maxStorageBufferBindingSize: 4096 }; // a wkv state is 8 KiB
    let e: unknown;
    try { lowerPlan(plan, plan.decode, small, { device: 'WebGPU device' }); } catch (x) { e = x; }
    expect(e).toBeInstanceOf(UserError);
    expect(String(e)).toMatch(/WebGPU device limit maxStorageBufferBindingSize = 4096 bytes is too small for state buffer .*wkv.*: it takes 8192 bytes/);
  });
});
