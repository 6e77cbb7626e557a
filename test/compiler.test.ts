/**
 * The compiler: the fused plan against the unfused graph and the official numbers, each pass alone
 * before/after on random models, the kernel-count and memory targets, and compile errors.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { PASSES, type CompileOptions } from '../compiler/pipeline.ts';
import { rewrite } from '../compiler/rewrite.ts';
import { interpret } from '../ir/interp.ts';
import { verifyGraph } from '../ir/verify.ts';
import { CompilerBug, UserError } from '../kernels/errors.ts';
import { Builder } from '../ir/builder.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { openModel } from '../runtime/model.ts';
import { PRESETS } from '../runtime/presets.ts';
import { parseMode, runTokens } from '../runtime/run-tokens.ts';
import { loadPlanTarget } from '../targets/plan/runtime.ts';
import { loadRefTarget } from '../targets/ref/runtime.ts';
import { compareRun, FIXTURE_NAMES, FIXTURES, maxAbsDiff, readGolden } from './helpers/golden.ts';
import { randomInputs, tinyConfig } from './helpers/models.ts';
import { randomTensors } from '../runtime/random-model.ts';
import { summarizePlan } from '../cli/plan-summary.ts';

const opts: CompileOptions = { weights: 'f32', logits: 'all' };

describe.each(FIXTURE_NAMES)('fused plan on %s', (fixture) => {
  it('matches the unfused graph within 1e-5 and the official numbers within 1e-4, in every mode', async () => {
    const model = openModel(join(FIXTURES, fixture, 'model.pth'));
    const golden = readGolden(fixture);
    const graph = finch(model.config);
    const { plan } = compileGraph(graph, model.config, { ...opts, chunk: 6 });
    const ref = loadRefTarget(graph, model.read);
    const refLogits = await runTokens(ref, golden.tokens, parseMode('seq'), model.config.vocabSize);
    const refState = await ref.readState();
    for (const mode of ['step', 'seq', 'chunks:4']) {
      const t = await loadPlanTarget(plan, (d) => materializeWeight(d.source, model.read));
      const logits = await runTokens(t, golden.tokens, parseMode(mode), model.config.vocabSize);
      const state = await t.readState();
      const vsRef = compareRun(logits, state, { logits: refLogits, state: refState });
      expect(vsRef.logits, mode).toBeLessThanOrEqual(1e-5);
      expect(vsRef.state, mode).toBeLessThanOrEqual(1e-5);
      const vsGolden = compareRun(logits, state, golden);
      expect(vsGolden.logits, mode).toBeLessThanOrEqual(1e-4);
      expect(vsGolden.state, mode).toBeLessThanOrEqual(1e-4);
    }
    model.close();
  });
});

describe('broken IR: whose mistake it is', () => {
  it('is a UserError (one line, exit 2) from the DSL and a CompilerBug (stack kept) after a pass', () => {
    const g = finch(tinyConfig({ nLayer: 1, nEmbd: 64, headSize: 32, loraMix: 8, loraDecay: 16, vocabSize: 50 }));
    const n = g.nodes.find((x) => x.op === 'matmul')!;
    const broken = { ...g, nodes: g.nodes.map((x) => (x === n ? { ...x, types: [{ ...x.types[0], shape: [1, 1] }] } : x)) } as typeof g;
    expect(() => verifyGraph(broken, 'the DSL')).toThrow(UserError);
    expect(() => verifyGraph(broken, 'pass fuse-wkv', 'compiler')).toThrow(CompilerBug);
    expect(() => verifyGraph(broken, 'pass fuse-wkv', 'compiler')).toThrow(/rwkvc compiler bug: .*finch\.ts:\d+:\d+: IR verification failed after pass fuse-wkv/);
    expect(() => verifyGraph(broken, 'pass fuse-wkv', 'compiler')).not.toThrow(UserError);
  });
});

describe('each pass alone preserves meaning', () => {
  const configs = [
    tinyConfig({ nLayer: 1, nEmbd: 64, headSize: 32, loraMix: 8, loraDecay: 16, vocabSize: 50 }),
    tinyConfig({ nLayer: 2, nEmbd: 96, headSize: 32, loraMix: 16, loraDecay: 8, vocabSize: 77, dimFfn: 160 }),
  ];
  it.each(configs.map((c, i) => [i, c] as const))('random model %i: outputs before and after every pass agree', (i, cfg) => {
    const read = randomTensors(cfg, 100 + i);
    let g = finch(cfg);
    for (const T of [1, 3]) {
      const inputs = randomInputs(g, T, cfg.vocabSize, 7 + T);
      let gi = g;
      let before = interpret(gi, T, inputs, read);
      for (const p of PASSES) {
        const next = rewrite(gi, p.rules(gi, { weights: 'f32', logits: T === 1 ? 'last' : 'all' }));
        verifyGraph(next, p.name);
        const after = interpret(next, T, inputs, read);
        for (const [name, v] of Object.entries(before)) {
          expect(after[name], `${p.name}: ${name}`).toBeDefined();
          // fold-ln0 stores the normalised table in f32 (as the official package does): f32 rounding
          // of the embedding rows, ~1e-7 relative, is the one expected change; every other pass is exact.
          const tol = p.name === 'fold-ln0' ? 1e-6 : 1e-9;
          expect(maxAbsDiff(after[name].data, v.data), `${p.name}: ${name}`).toBeLessThan(tol);
        }
        gi = next;
        before = after;
      }
    }
  });

  it('epilogue and prologue fusion, CSE and folding on random elementwise chains', () => {
    const ops = ['tanh', 'sigmoid', 'silu', 'relu', 'square', 'neg'] as const;
    const rnd = (() => { let s = 11; return () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32); })();
    for (let trial = 0; trial < 25; trial++) {
      const b = new Builder('chain');
      const x = b.input('x', 'state', 'f32', ['T', 16]);
      const y = b.input('y', 'state', 'f32', ['T', 8]);
      let pre = x;
      if (rnd() < 0.5) pre = pre.mul(x.sigmoid()); // a prologue candidate
      let v = b.linear(pre, b.weight('w', [8, 16]));
      const steps = 1 + Math.floor(rnd() * 4);
      for (let s = 0; s < steps; s++) {
        const r = rnd();
        if (r < 0.4) v = b.unary(ops[Math.floor(rnd() * ops.length)], v);
        else if (r < 0.6) v = v.add(y);
        else if (r < 0.8) v = v.mul(b.const(rnd() < 0.3 ? 1 : 0.5)).add(0);
        else v = y.sub(v);
      }
      b.output('out', v);
      const g = b.build();
      const { graph } = compileGraph(g, tinyConfig(), opts, { verifyEach: true });
      const T = 3;
      const inputs = { x: Float64Array.from({ length: T * 16 }, () => rnd() - 0.5), y: Float64Array.from({ length: T * 8 }, () => rnd() - 0.5) };
      const w = Float32Array.from({ length: 128 }, () => rnd() - 0.5);
      const want = interpret(g, T, inputs, () => w).out.data;
      const got = interpret(graph, T, inputs, () => w).out.data;
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-12);
      // everything became one linear kernel
      expect(graph.nodes.filter((n) => !['input', 'weight', 'const'].includes(n.op)).map((n) => n.op)).toEqual(['linear']);
    }
  });
});

describe('plan targets', () => {
  it('Finch decode: at most 10 kernels per layer; memory independent of context, prefill linear in the chunk', () => {
    const cfg = PRESETS['finch-1b6'];
    const g = finch(cfg);
    const t0 = performance.now();
    const a = compileGraph(g, cfg, { weights: 'f16', logits: 'last', chunk: 64 }).plan;
    const ms = performance.now() - t0;
    const b = compileGraph(g, cfg, { weights: 'f16', logits: 'last', chunk: 256 }).plan;
    const s = summarizePlan(a);
    console.log(`finch-1b6 compile (passes + lowering): ${ms.toFixed(0)} ms; decode ${s.decodeKernelsPerLayer} kernels/layer`);
    expect(s.decodeKernelsPerLayer).toBeLessThanOrEqual(10);
    expect(s.decodeKernelsOutsideLayers).toBeLessThanOrEqual(3);
    expect(a.decode.activationPeakBytes).toBe(b.decode.activationPeakBytes);
    expect(b.prefill.activationPeakBytes / a.prefill.activationPeakBytes).toBeCloseTo(4, 1);
    expect(s.weightBytes.f16).toBeGreaterThan(s.weightBytes.f32);
  });

  it('a graph that cannot be compiled names the DSL line', () => {
    const b = new Builder('bad');
    const x = b.input('x', 'state', 'f32', ['T', 8]);
    b.output('out', x.tanh().add(x)); // elementwise with no matmul to fuse into
    expect(() => compileGraph(b.build(), tinyConfig(), opts)).toThrow(/compiler\.test\.ts:\d+:\d+: cannot compile 'tanh'/);
  });

  it('the QRWKV6 k/v head repeat folds into its projection (rows repeated at load), so the time-mix compiles', async () => {
    const { default: qrwkv } = await import('../examples/qrwkv6-timemix.ts');
    const g = qrwkv({ nEmbd: 64, nHead: 4, nKvHead: 2, headSize: 16, loraMix: 8, loraDecay: 8 });
    const { plan } = compileGraph(g, tinyConfig(), opts);
    const rep = plan.weights.filter((w) => w.source.repeat);
    expect(rep.map((w) => [w.source.tensor, w.shape, w.source.stored, w.source.repeat])).toEqual([
      ['key.weight', [64, 64], [32, 64], { group: 16, times: 2 }], ['value.weight', [64, 64], [32, 64], { group: 16, times: 2 }],
    ]);
    expect(plan.decode.kernels.map((k) => k.kind)).not.toContain('repeat');
  });

  it('DSL type errors name the DSL line', () => {
    const b = new Builder('bad');
    const x = b.input('x', 'state', 'f32', ['T', 8]);
    expect(() => b.linear(x, b.weight('w', [4, 9]))).toThrow(/compiler\.test\.ts:\d+:\d+: matmul: input width 8 does not match weight \[4, 9\]/);
  });
});
