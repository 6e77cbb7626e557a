/**
 * The ONNX export (driver/onnx) run by onnxruntime-node's CPU EP: the official logits and state on the
 * fixtures within 1e-4 through the step model (token by token), the Scan prefill model (all at once, and
 * in chunks with the state carried), f16 matrices within the Accuracy bounds, the model's interface as
 * written in the protobuf, the QRWKV6 variant of the recurrence (update first, no bonus, k ⊙ (1 − w),
 * r/√N, repeated heads) against the reference interpreter, and one-line refusals; then the CLI end to end.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { openModel } from '../runtime/model.ts';
import { openCheckpoint } from '../runtime/checkpoint/index.ts';
import { runTokens, type Mode } from '../runtime/run-tokens.ts';
import { buildGraph, DEFAULT_DSL } from '../driver/dsl.ts';
import { exportModels, exportOnnx } from '../driver/onnx/index.ts';
import { decodeModel, DT } from '../driver/onnx/proto.ts';
import { createOrtModel } from '../driver/onnx/ort-model.ts';
import { compileGraph } from '../compiler/index.ts';
import { interpret } from '../ir/interp.ts';
import { UserError } from '../kernels/errors.ts';
import qrwkv6TimeMix from '../examples/qrwkv6-timemix.ts';
import { onnxCommand } from '../cli/onnx.ts';
import { compareRun, FIXTURES, FIXTURE_NAMES, maxAbsDiff, readGolden, REDUCED_FORMAT_BOUNDS, top1Agreement } from './helpers/golden.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', 'bin', 'rwkvc.js');
const tmp = mkdtempSync(join(tmpdir(), 'rwkvc-onnx-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MODES: [string, Mode][] = [['step', { kind: 'step' }], ['seq', { kind: 'seq' }], ['chunks:3', { kind: 'chunks', size: 3 }]];

describe('ONNX export on onnxruntime-node: the official numbers', () => {
  for (const fx of FIXTURE_NAMES)
    it(`${fx}: logits and state within 1e-4 in step, seq and chunked modes`, async () => {
      const m = openModel(join(FIXTURES, fx, 'model.pth'));
      const gold = readGolden(fx);
      const { step, prefill } = await exportModels(m, DEFAULT_DSL, 'f32', 'all');
      for (const [name, mode] of MODES) {
        const om = await createOrtModel(ort, m.config, step, prefill, { threads: 1 });
        const logits = await runTokens(om, gold.tokens, mode, m.config.vocabSize);
        const d = compareRun(logits, await om.readState(), gold);
        expect(d.logits, `${name} logits`).toBeLessThan(1e-4);
        expect(d.state, `${name} state`).toBeLessThan(1e-4);
        om.dispose();
      }
      m.close();
    });

  it('f16 matrices: FLOAT16 initializers, logits within the f16 bounds of the f32 run', async () => {
    const m = openModel(join(FIXTURES, 'finch-tiny', 'model.safetensors'));
    const gold = readGolden('finch-tiny');
    const V = m.config.vocabSize;
    const runs: Float32Array[] = [];
    for (const w of ['f32', 'f16']) {
      const { step, prefill } = await exportModels(m, DEFAULT_DSL, w, 'all');
      const inits = decodeModel(step).graph.initializer;
      const half = inits.filter((t) => t.dataType === DT.FLOAT16);
      // every matrix (rank ≥ 2) and nothing else is FLOAT16 under f16
      expect(half.length).toBe(w === 'f16' ? inits.filter((t) => (t.dims ?? []).length >= 2).length : 0);
      if (w === 'f16') expect(half.map((t) => t.name)).toContain('head.weight');
      const om = await createOrtModel(ort, m.config, step, prefill);
      runs.push(await runTokens(om, gold.tokens, { kind: 'seq' }, V));
      om.dispose();
    }
    const range = Math.max(...runs[0].map(Math.abs));
    const rel = maxAbsDiff(runs[1], runs[0]) / range;
    expect(rel).toBeGreaterThan(0); // f16 did round something
    expect(rel).toBeLessThan(REDUCED_FORMAT_BOUNDS.f16.rel);
    expect(top1Agreement(runs[1], runs[0], V)).toBeGreaterThanOrEqual(REDUCED_FORMAT_BOUNDS.f16.top1);
    m.close();
  });

  it('the step model\'s interface: token int64 [1] + state in, logits [V] + next.state out, opset 17, standard ops', async () => {
    const m = openModel(join(FIXTURES, 'finch-tiny', 'model.pth'));
    const { nLayer: L, nEmbd: C, nHead: H, headSize: N, vocabSize: V } = m.config;
    const model = decodeModel((await exportModels(m, DEFAULT_DSL, 'f32', 'all')).step);
    m.close();
    expect(model.opsetImport).toEqual([{ version: 17 }]);
    const sig = (vs: typeof model.graph.input) => Object.fromEntries(vs.map((v) =>
      [v.name, [v.type.tensorType.elemType, v.type.tensorType.shape.dim.map((d) => ('dimValue' in d ? d.dimValue : d.dimParam))]]));
    const state: Record<string, [number, number[]]> = {};
    for (let l = 0; l < L; l++)
      Object.assign(state, { [`state.${l}.att_shift`]: [DT.FLOAT, [C]], [`state.${l}.wkv`]: [DT.FLOAT, [H, N, N]], [`state.${l}.ffn_shift`]: [DT.FLOAT, [C]] });
    expect(sig(model.graph.input)).toEqual({ token: [DT.INT64, [1]], ...state });
    expect(sig(model.graph.output)).toEqual({ logits: [DT.FLOAT, [V]], ...Object.fromEntries(Object.entries(state).map(([k, v]) => [`next.${k}`, v])) });
    const ops = new Set(model.graph.node.map((n) => n.opType));
    const allowed = ['Gather', 'Gemm', 'MatMul', 'Add', 'Sub', 'Mul', 'Neg', 'Exp', 'Tanh', 'Sigmoid', 'Relu', 'Reshape', 'LayerNormalization', 'Slice', 'Concat', 'Identity', 'Cast'];
    expect([...ops].filter((o) => !allowed.includes(o))).toEqual([]);
    expect(model.graph.node.every((n) => !(n as { domain?: string }).domain)).toBe(true);
  });
});

describe('external data (what a model over 1.5 GiB of tensors is written as)', () => {
  it('the tensors in a .data file beside the model, 64-byte aligned: onnxruntime-node loads it by path, same logits', async () => {
    const m = openModel(join(FIXTURES, 'finch-tiny', 'model.pth'));
    const gold = readGolden('finch-tiny');
    const graph = await buildGraph(DEFAULT_DSL, m.config);
    const e = exportOnnx(graph, m.config, m.read, { kind: 'prefill', weights: 'f32', logits: 'all', externalData: 'ext.onnx.data' });
    const inits = decodeModel(e.model).graph.initializer.filter((t) => t.dataLocation === 1);
    expect(inits.length).toBeGreaterThan(20);
    for (const t of inits) expect(Number(t.externalData!.find((x) => x.key === 'offset')!.value) % 64).toBe(0);
    writeFileSync(join(tmp, 'ext.onnx'), e.model);
    writeFileSync(join(tmp, 'ext.onnx.data'), Buffer.concat(e.data));
    const om = await createOrtModel(ort, m.config, null, join(tmp, 'ext.onnx'));
    const d = compareRun(await runTokens(om, gold.tokens, { kind: 'seq' }, m.config.vocabSize), await om.readState(), gold);
    expect(Math.max(d.logits, d.state)).toBeLessThan(1e-4);
    om.dispose();
    m.close();
  });
});

describe('the QRWKV6 recurrence (update first, no bonus, k(1 − w), r/√N, repeated k/v heads)', () => {
  it('step and Scan prefill models match the reference interpreter', async () => {
    const cfg = { nEmbd: 64, nHead: 4, nKvHead: 2, headSize: 16, loraMix: 8, loraDecay: 12 };
    const g = qrwkv6TimeMix(cfg);
    let seed = 5;
    const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
    const cache = new Map<string, Float32Array>();
    const shapes: Record<string, number> = {};
    for (const n of g.nodes) if (n.op === 'weight') shapes[n.attrs.name] = (n.attrs.stored ?? n.attrs.shape).reduce((a, b) => a * b, 1);
    const read = (name: string) => {
      if (!cache.has(name)) cache.set(name, Float32Array.from({ length: shapes[name] }, () => rnd() * 0.4));
      return cache.get(name)!;
    };
    const C = cfg.nEmbd, T = 7, S0 = Float32Array.from({ length: cfg.nHead * 256 }, () => rnd() * 0.2), prev = Float32Array.from({ length: C }, rnd);
    const x = Float32Array.from({ length: T * C }, rnd);
    const want = interpret(g, T, { x, 'state.att_shift': prev, 'state.wkv': S0 }, read);
    const fakeConfig = { nLayer: 0, nEmbd: C, nHead: cfg.nHead, headSize: 16, dimFfn: 0, vocabSize: 1, loraMix: 8, loraDecay: 12 } as never;
    const prefill = await ort.InferenceSession.create(exportOnnx(g, fakeConfig, read, { kind: 'prefill', weights: 'f32' }).model);
    const feeds = (xs: Float32Array, rows: number, a: Float32Array, s: Float32Array) => ({
      x: new ort.Tensor('float32', xs, [rows, C]), 'state.att_shift': new ort.Tensor('float32', a, [C]), 'state.wkv': new ort.Tensor('float32', s, [cfg.nHead, 16, 16]),
    });
    const seq = await prefill.run(feeds(x, T, prev, S0));
    expect(maxAbsDiff(seq.out.data as Float32Array, want.out.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(seq['next.state.wkv'].data as Float32Array, want['state.wkv'].data)).toBeLessThan(1e-5);
    const step = await ort.InferenceSession.create(exportOnnx(g, fakeConfig, read, { kind: 'step', weights: 'f32' }).model);
    let a: Float32Array = prev, s: Float32Array = S0;
    for (let t = 0; t < T; t++) {
      const o = await step.run(feeds(x.slice(t * C, (t + 1) * C), 1, a, s));
      expect(maxAbsDiff(o.out.data as Float32Array, want.out.data.subarray(t * C, (t + 1) * C))).toBeLessThan(1e-5);
      a = o['next.state.att_shift'].data as Float32Array;
      s = o['next.state.wkv'].data as Float32Array;
    }
    expect(maxAbsDiff(s, want['state.wkv'].data)).toBeLessThan(1e-5);
  });
});

describe('refusals: one line', () => {
  it('a weight format the export does not store, and a graph after fusion', async () => {
    const m = openModel(join(FIXTURES, 'finch-tiny', 'model.pth'));
    const graph = await buildGraph(DEFAULT_DSL, m.config);
    expect(() => exportOnnx(graph, m.config, m.read, { kind: 'step', weights: 'int8' as never })).toThrow(/--weights: the ONNX export stores f32 or f16 matrices, not 'int8'/);
    const fused = compileGraph(graph, m.config, { weights: 'f32', logits: 'all' }).graph;
    let err: unknown;
    try { exportOnnx(fused, m.config, m.read, { kind: 'step', weights: 'f32' }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/^ONNX export: examples\/finch\.ts:\d+:\d+: op '\w+' has no ONNX form/);
    m.close();
  });
});

describe('rwkvc onnx and rwkvc logits --target onnxruntime', () => {
  const fx = join(FIXTURES, 'finch-tiny-bf16', 'model.pth');
  it('onnx -o writes a step model onnxruntime runs to the official logits; logits --target onnxruntime --mode step too', async () => {
    const gold = readGolden('finch-tiny-bf16');
    const out = join(tmp, 'step.onnx');
    const r = await run('node', [BIN, 'onnx', '--model', fx, '-o', out]);
    expect(r.stderr).toMatch(/wrote .*step\.onnx: step model, 2 layers, width 128, vocab 256, f32 matrices/);
    const m = openModel(fx);
    const om = await createOrtModel(ort, m.config, readFileSync(out), null);
    const d = compareRun(await runTokens(om, gold.tokens, { kind: 'step' }, m.config.vocabSize), await om.readState(), gold);
    expect(Math.max(d.logits, d.state)).toBeLessThan(1e-4);
    om.dispose();
    m.close();

    const st = join(tmp, 'logits.safetensors');
    await run('node', [BIN, 'logits', '--model', fx, '--tokens', Array.from(gold.tokens).join(','), '--mode', 'step', '--target', 'onnxruntime', '--out', st]);
    const f = openCheckpoint(st);
    const state = Object.fromEntries(f.names().filter((n) => n.startsWith('state.')).map((n) => [n, f.readF32(n)]));
    const d2 = compareRun(f.readF32('logits'), state, gold);
    f.close();
    expect(Math.max(d2.logits, d2.state)).toBeLessThan(1e-4);
  });

  it('bad input: one line (exit 2 from the CLI; the option checks in-process)', async () => {
    const e = await run('node', [BIN, 'onnx', '--model', join(FIXTURES, 'finch-tiny', 'golden.json'), '-o', join(tmp, 'x.onnx')]).then(() => null, (x) => x as { code: number; stderr: string });
    expect(e?.code).toBe(2);
    expect(e!.stderr.trim().split('\n')).toHaveLength(1);
    expect(e!.stderr).toMatch(/^rwkvc: .*golden\.json/);
    const parse = async (args: string[]) => {
      let out = '';
      const cmd = onnxCommand().exitOverride().configureOutput({ writeErr: (s) => { out += s; }, writeOut: () => {} });
      try { await cmd.parseAsync(args, { from: 'user' }); } catch (x) { return x instanceof UserError ? x.message : out.trim(); }
      return 'no error';
    };
    expect(await parse(['--model', fx, '--weights', 'int8', '-o', join(tmp, 'x.onnx')])).toMatch(/--weights.*int8.*Allowed choices are f32, f16/);
    expect(await parse(['--model', fx, '-o', join(tmp, 'missing', 'x.onnx')])).toMatch(/cannot write: the folder .*missing does not exist$/);
  });
});
