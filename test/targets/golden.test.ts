/**
 * Conformance on the official fixtures: every registered plan target (hidden ones too, and the plan
 * target itself) runs the fixture models compiled by the real compiler (logits of every position,
 * prefill chunk 6, a batch program of 3) and must give:
 *
 * - f32 weights: the official logits and state within 1e-4 in step, seq and chunks:4 modes, the modes
 *   agreeing within 1e-5, both for the model loaded back from its artifact's files (as a package or
 *   `rwkvc compile -o` output is; 1 thread) and for one loaded as codegen hands it over (2 threads where
 *   the target takes threads), and those two bit for bit the same;
 * - the batch program (3 sequences, then 2 for the last calls): sequence 0 the official numbers, the
 *   others what step mode gives them alone (1e-5 of their scale), all of them the plan target's batch
 *   numbers (PER_TARGET.model), and the model's own state untouched;
 * - writeState/readState round trip exactly; an id outside the vocabulary and a call longer than the
 *   program are refused;
 * - each weight format: the plan target's numbers on the same plan and weights (f64, so only the
 *   target's f32 arithmetic differs: PER_TARGET.model), in step and seq modes; bf16 / f16 / int8 the same
 *   bits at 1 and 2 threads where the target takes threads, and within the README's Accuracy bounds
 *   (REDUCED_FORMAT_BOUNDS) of the same target's f32 run.
 *
 * One model per (target, fixture, format, way of loading), and each run of the fixture's tokens once,
 * shared by the tests. A target that cannot run here skips with the reason printed.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import finch from '../../examples/finch.ts';
import { compileGraph } from '../../compiler/index.ts';
import type { KernelPlan, WeightDType } from '../../kernels/plan.ts';
import { materializeWeight } from '../../kernels/weights.ts';
import { openModel } from '../../runtime/model.ts';
import { parseMode, runTokens } from '../../runtime/run-tokens.ts';
import type { StateTensors, TargetModel } from '../../targets/backend.ts';
import {
  expectClose, ORACLE, perTarget, releaseTargets, sameBits, suiteTargets, takesThreads, tryLoad, type LoadOptions, type Skip,
} from '../helpers/conformance.ts';
import {
  compareRun, FIXTURE_NAMES, FIXTURES, maxAbsDiff, readGolden, REDUCED_FORMAT_BOUNDS, top1Agreement, zeroState,
} from '../helpers/golden.ts';

const B = 3; // sequences of the batch program
const PARTIAL = 4; // the batch test's last calls with B − 1 sequences
const MODES = ['step', 'seq', 'chunks:4'];
const WEIGHT_FORMATS = ['f32', 'bf16', 'f16', 'int8', 'q4_0', 'q4_1'] as const;

interface Fixture { plans: Map<WeightDType, KernelPlan>; vocab: number; path: string }
const fixtures = new Map<string, Fixture>();
function fixture(name: string): Fixture {
  let f = fixtures.get(name);
  if (!f) {
    const path = join(FIXTURES, name, 'model.pth'), ckpt = openModel(path);
    const plans = new Map(WEIGHT_FORMATS.map((weights) => [weights, compileGraph(finch(ckpt.config), ckpt.config, { weights, logits: 'all', chunk: 6, batch: B }).plan]));
    fixtures.set(name, (f = { plans, vocab: ckpt.config.vocabSize, path }));
    ckpt.close();
  }
  return f;
}

/** How the f32 model every test shares is loaded: back from its artifact's files, on 1 thread. */
const FILES: LoadOptions = { threads: 1, viaFiles: true };
const DIRECT: LoadOptions = { threads: 1 };

const models = new Map<string, Promise<TargetModel | Skip>>();
/** The fixture on a target in a format, loaded once per way of loading. */
function model(target: string, name: string, weights: WeightDType, load: LoadOptions): Promise<TargetModel | Skip> {
  const id = `${target}/${name}/${weights}/${JSON.stringify(load)}`;
  let m = models.get(id);
  if (!m) {
    const f = fixture(name), ckpt = openModel(f.path);
    m = tryLoad(target, f.plans.get(weights)!, (d) => materializeWeight(d.source, ckpt.read), load).finally(() => ckpt.close());
    models.set(id, m);
  }
  return m;
}
/** The f32 model is FILES unless asked otherwise; the others are loaded directly. */
async function modelOrSkip(ctx: TestContext, target: string, name: string, weights: WeightDType, load = weights === 'f32' ? FILES : DIRECT): Promise<TargetModel> {
  const m = await model(target, name, weights, load);
  if ('skip' in m) ctx.skip(m.skip);
  return m;
}

afterAll(async () => {
  for (const m of models.values()) {
    const x = await m.catch(() => null);
    if (x && !('skip' in x)) x.dispose();
  }
  await releaseTargets();
});

const runs = new Map<string, Promise<{ logits: Float32Array; state: StateTensors }>>();
/** The fixture's tokens from a zero state on a model of model(), in a mode (run once). */
async function fixtureRun(ctx: TestContext, target: string, name: string, weights: WeightDType, mode: string, load = weights === 'f32' ? FILES : DIRECT) {
  const m = await modelOrSkip(ctx, target, name, weights, load);
  const id = `${target}/${name}/${weights}/${JSON.stringify(load)}/${mode}`;
  let r = runs.get(id);
  if (!r) runs.set(id, (r = runFrom0(m, readGolden(name).tokens, mode, fixture(name).vocab)));
  return r;
}

/** Tokens from a zero state, in a mode; the logits of every position and the state after. */
async function runFrom0(m: TargetModel, tokens: Int32Array, mode: string, vocab: number): Promise<{ logits: Float32Array; state: StateTensors }> {
  await m.writeState(zeroState(await m.readState()));
  const logits = await runTokens(m, tokens, parseMode(mode), vocab);
  return { logits, state: await m.readState() };
}

describe.each(suiteTargets({ withOracle: true }))('%s on the official fixtures', (target) => {
  const per = perTarget(target);

  describe.each(FIXTURE_NAMES)('%s', (name) => {
    const golden = readGolden(name);

    it('f32 weights: official logits and state within 1e-4 in step, seq and chunks:4 (agreeing within 1e-5); loaded from files and directly (at 2 threads where it takes threads), bit for bit the same', async (ctx) => {
      const threads = (await takesThreads(target, await modelOrSkip(ctx, target, name, 'f32'))) ? 2 : 1;
      for (const load of [FILES, { threads }]) {
        let step: Float32Array | undefined;
        for (const mode of MODES) {
          const what = `${load === FILES ? 'from files' : `direct, ${threads} thread(s)`}, ${mode}`;
          const r = await fixtureRun(ctx, target, name, 'f32', mode, load);
          const d = compareRun(r.logits, r.state, golden);
          expect(d.logits, `${what}: logits`).toBeLessThanOrEqual(1e-4);
          expect(d.state, `${what}: state`).toBeLessThanOrEqual(1e-4);
          step ??= r.logits;
          expect(maxAbsDiff(r.logits, step), `${what} vs step`).toBeLessThanOrEqual(1e-5);
          if (load === FILES) continue;
          const f = await fixtureRun(ctx, target, name, 'f32', mode, FILES);
          expect(sameBits(r.logits, f.logits), `${what}: logits differ from the model loaded from files, 1 thread`).toBe(true);
          for (const k of Object.keys(f.state)) expect(sameBits(r.state[k], f.state[k]), `${what}: ${k} differs from the model loaded from files, 1 thread`).toBe(true);
        }
      }
    });

    it(`f32 batch program (${B} sequences, then ${B - 1}): sequence 0 gives the official numbers, the others what step mode gives them alone; the plan target's batch numbers; the model's own state untouched`, async (ctx) => {
      const { vocab } = fixture(name);
      const N = golden.tokens.length;
      const seq = (b: number) => (b === 0 ? golden.tokens : Int32Array.from(golden.tokens, (t, i) => (t * (2 * b + 1) + 7 * i + b) % vocab));
      const alone = [];
      for (let b = 1; b < B; b++) alone.push(await runFrom0(await modelOrSkip(ctx, target, name, 'f32'), seq(b), 'step', vocab));
      /**
       * The B sequences through runBatch, one token of each per call: `full`, B sequences in every call, and
       * `partial`, the last PARTIAL calls with B − 1 (the last sequence sits them out). The calls before are
       * the same for both: they run once, and each continues from the states they leave.
       */
      const batched = async (m: TargetModel) => {
        expect(m.runBatch, 'a plan with a batch program runs it').toBeDefined();
        type Run = { logits: Float32Array; state: StateTensors }[];
        const calls = async (from: number, to: number, n: number, start: Run): Promise<Run> => {
          const logits = start.map((r) => r.logits.slice());
          let states = start.map((r) => r.state);
          for (let t = from; t < to; t++) {
            const r = await m.runBatch!(Int32Array.from({ length: n }, (_, b) => seq(b)[t]), states.slice(0, n));
            for (let b = 0; b < n; b++) logits[b].set(r.logits.subarray(b * vocab, (b + 1) * vocab), t * vocab);
            states = [...r.states, ...states.slice(n)];
          }
          return logits.map((l, b) => ({ logits: l, state: states[b] }));
        };
        const zero = zeroState(await m.readState());
        const shared = await calls(0, N - PARTIAL, B, Array.from({ length: B }, () => ({ logits: new Float32Array(N * vocab), state: zero })));
        return { full: await calls(N - PARTIAL, N, B, shared), partial: await calls(N - PARTIAL, N, B - 1, shared) };
      };
      const m = await modelOrSkip(ctx, target, name, 'f32');
      const own = await m.readState();
      const runs = await batched(m);
      const wants = target !== ORACLE ? await batched(await modelOrSkip(ctx, ORACLE, name, 'f32')) : null;
      for (const partial of [0, PARTIAL]) {
        const got = partial ? runs.partial : runs.full;
        const what = (b: number) => `${partial ? `last ${partial} calls with ${B - 1} sequences, ` : ''}sequence ${b}`;
        const d = compareRun(got[0].logits, got[0].state, golden);
        expect(d.logits, `${what(0)}: logits`).toBeLessThanOrEqual(1e-4);
        expect(d.state, `${what(0)}: state`).toBeLessThanOrEqual(1e-4);
        // batch rows run the batch program's kernels (another summation order than decode's)
        for (let b = 1; b < B; b++) {
          const n = partial && b === B - 1 ? N - partial : N; // the last sequence sat out the last calls
          if (n < N) continue;
          expectClose(got[b].logits, alone[b - 1].logits, 1e-5, `${what(b)} vs step mode alone: logits`);
          for (const k of Object.keys(own)) expectClose(got[b].state[k], alone[b - 1].state[k], 1e-5, `${what(b)} vs step mode alone: ${k}`);
        }
        if (wants) {
          const want = partial ? wants.partial : wants.full;
          for (let b = 0; b < B; b++) {
            expectClose(got[b].logits, want[b].logits, per.model, `${what(b)} vs the plan target: logits`);
            for (const k of Object.keys(own)) expectClose(got[b].state[k], want[b].state[k], per.model, `${what(b)} vs the plan target: ${k}`);
          }
        }
      }
      expect(await m.readState()).toEqual(own);
    });

    it('writeState/readState round trip exactly; ids outside the vocabulary and calls longer than the program are refused', async (ctx) => {
      const { vocab } = fixture(name);
      const m = await modelOrSkip(ctx, target, name, 'f32');
      await runFrom0(m, golden.tokens.subarray(0, 5), 'seq', vocab);
      const s = await m.readState();
      for (const v of Object.values(s)) v.forEach((_, i) => (v[i] += 0.25 * Math.sin(i))); // not a state the model made
      await m.writeState(s);
      expect(await m.readState()).toEqual(s);
      await expect(m.run('decode', Int32Array.of(vocab))).rejects.toThrow(/vocabulary/);
      await expect(m.run('prefill', new Int32Array(m.maxTokens + 1))).rejects.toThrow(new RegExp(`1\\.\\.${m.maxTokens}\\b`));
    });

    it.for(WEIGHT_FORMATS)('%s weights: the plan target\'s numbers on the same weights (step, seq); reduced formats: 1 and 2 threads alike where it takes threads, within the README\'s bounds of the f32 run', async (weights, ctx) => {
      const { vocab } = fixture(name);
      if (target !== ORACLE)
        for (const mode of ['step', 'seq']) {
          const a = await fixtureRun(ctx, target, name, weights, mode), b = await fixtureRun(ctx, ORACLE, name, weights, mode);
          expectClose(a.logits, b.logits, per.model, `${mode}: logits`);
          for (const k of Object.keys(b.state)) expectClose(a.state[k], b.state[k], per.model, `${mode}: ${k}`);
        }
      if (weights === 'f32') return; // the f32 test above: the official numbers, thread counts
      if (await takesThreads(target, await modelOrSkip(ctx, target, name, weights)))
        for (const mode of ['step', 'seq']) {
          const a = await fixtureRun(ctx, target, name, weights, mode, { threads: 2 }), b = await fixtureRun(ctx, target, name, weights, mode);
          expect(sameBits(a.logits, b.logits), `${mode}: logits at 2 threads differ from 1`).toBe(true);
          for (const k of Object.keys(b.state)) expect(sameBits(a.state[k], b.state[k]), `${mode}: ${k} at 2 threads differs from 1`).toBe(true);
        }
      const f32 = await fixtureRun(ctx, target, name, 'f32', 'seq'), r = await fixtureRun(ctx, target, name, weights, 'seq');
      const range = f32.logits.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      const rel = maxAbsDiff(r.logits, f32.logits) / range, top1 = top1Agreement(r.logits, f32.logits, vocab);
      const bound = REDUCED_FORMAT_BOUNDS[weights];
      expect(rel, 'max |Δlogit| / max |logit| of the f32 run').toBeLessThanOrEqual(bound.rel);
      expect(top1, 'top-1 agreement with the f32 run').toBeGreaterThanOrEqual(bound.top1);
    });
  });
});
