/**
 * The WASM target on the official fixtures: f32 weights against the official numbers (≤ 1e-4) in
 * every mode with 1 and 2 threads; f16 / bf16 / int8 storage against the f32 run, with the tolerances
 * the README justifies (max |Δlogit| and top-1 agreement, measured here).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import type { WeightDType } from '../kernels/plan.ts';
import { openModel } from '../runtime/model.ts';
import { parseMode, runTokens } from '../runtime/run-tokens.ts';
import { loadPlan } from '../driver/targets.ts';
import { compareRun, FIXTURE_NAMES, FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';

async function runWasm(fixture: string, weights: WeightDType, threads: number, mode: string) {
  const model = openModel(join(FIXTURES, fixture, 'model.pth'));
  const { plan } = compileGraph(finch(model.config), model.config, { weights, logits: 'all', chunk: 6 });
  const t = await loadPlan('wasm', plan, (d) => materializeWeight(d.source, model.read), { threads });
  const golden = readGolden(fixture);
  const logits = await runTokens(t, golden.tokens, parseMode(mode), model.config.vocabSize);
  const state = await t.readState();
  t.dispose();
  model.close();
  return { logits, state, golden };
}

function top1Agreement(a: Float32Array, b: Float32Array, V: number): number {
  let same = 0;
  for (let t = 0; t < a.length / V; t++) {
    const am = (x: Float32Array) => { let m = 0; for (let i = 1; i < V; i++) if (x[t * V + i] > x[t * V + m]) m = i; return m; };
    if (am(a) === am(b)) same++;
  }
  return same / (a.length / V);
}

describe.each(FIXTURE_NAMES)('wasm target on %s', (fixture) => {
  it.each([1, 2])('f32 weights, %i thread(s): official logits and state within 1e-4 in step, seq and chunked modes', async (threads) => {
    let first: Float32Array | undefined;
    for (const mode of ['step', 'seq', 'chunks:4']) {
      const r = await runWasm(fixture, 'f32', threads, mode);
      const d = compareRun(r.logits, r.state, r.golden);
      expect(d.logits, mode).toBeLessThanOrEqual(1e-4);
      expect(d.state, mode).toBeLessThanOrEqual(1e-4);
      first ??= r.logits;
      expect(maxAbsDiff(r.logits, first), `${mode} vs step`).toBeLessThanOrEqual(1e-5);
    }
  });

  // Tolerances (README, "Accuracy"), relative to the largest |logit| of the f32 run: a weight's rounding
  // error is 2^-9 of it for bf16 (8 bits), 2^-12 for f16 (11 bits), and up to 1/254 of its 32-block's
  // largest weight for int8; through 2 layers and a C-long dot product these grow to ~1% (bf16),
  // ~0.1% (f16) and ~3% (int8) of the logit range on these random models. Bounds leave ~1.5× room.
  const bounds: Record<string, { rel: number; top1: number }> = {
    bf16: { rel: 0.02, top1: 0.9 }, f16: { rel: 0.002, top1: 0.95 }, int8: { rel: 0.05, top1: 0.9 },
  };
  it.each(['bf16', 'f16', 'int8'] as const)('%s weights against the f32 run', async (dtype) => {
    const ref = await runWasm(fixture, 'f32', 2, 'seq');
    const r = await runWasm(fixture, dtype, 2, 'seq');
    const d = maxAbsDiff(r.logits, ref.logits), top1 = top1Agreement(r.logits, ref.logits, 256);
    const range = ref.logits.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    console.log(`${fixture} ${dtype}: max |Δlogit| ${d.toExponential(2)} (${((d / range) * 100).toFixed(2)}% of max |logit| ${range.toFixed(2)}), top-1 agreement ${(top1 * 100).toFixed(0)}%`);
    expect(d / range).toBeLessThanOrEqual(bounds[dtype].rel);
    expect(top1).toBeGreaterThanOrEqual(bounds[dtype].top1);
  });
});
