/**
 * QRWKV6 end to end (docs/qrwkv6.md): seeded random checkpoints in the Hugging Face layout (config.json +
 * model.safetensors, and sharded with an index), several shapes including k/v heads < heads, through
 * - the reference interpreter on the unfused graph (examples/qrwkv6.ts) against the fused plan;
 * - every plan target here (wasm, wgsl, cuda-sim, cuda where they run) against the interpreter;
 * - llama.cpp (node-llama-cpp's prebuilt ggml) on the exported `rwkv6qwen2` GGUF, an implementation we did
 *   not write: log-probabilities within 1e-4, one token per call (step) and all in one batch (seq).
 * node-llama-cpp hands out probabilities (softmax of its logits), so the comparison is of log-softmax rows:
 * the logits up to one constant per row. Our own `rwkvc logits --target llama.cpp` was not there when this
 * was written, so the helper below drives node-llama-cpp directly.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { openCheckpoint } from '../runtime/checkpoint/index.ts';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnyModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { PRESETS } from '../runtime/presets.ts';
import { openModel } from '../runtime/model.ts';
import { writeQrwkv6Model } from '../runtime/random-qrwkv6.ts';
import { writeGguf } from '../runtime/checkpoint/gguf-write.ts';
import { runTokens, type Mode } from '../runtime/run-tokens.ts';
import { weightProvider } from '../driver/load.ts';
import { buildGraph, DEFAULT_DSL } from '../driver/dsl.ts';
import { loadGraph, loadPlan } from '../driver/targets.ts';
import { compileGraph } from '../compiler/index.ts';
import type { TargetModel } from '../targets/backend.ts';
import { expectClose, perTarget, releaseTargets, suiteTargets, tryLoad } from './helpers/conformance.ts';

const dir = mkdtempSync(join(tmpdir(), 'rwkvc-qrwkv6-'));
afterAll(async () => {
  await releaseTargets();
  rmSync(dir, { recursive: true, force: true });
});

const tiny = PRESETS['qrwkv6-tiny'] as AnyModelConfig;
const SHAPES: Record<string, AnyModelConfig> = {
  'tiny: 3 layers, 4 heads of 32, 2 k/v heads': tiny,
  '2 layers, 3 heads of 32, 1 k/v head, eps 1e-5': { ...tiny, nLayer: 2, nEmbd: 96, nHead: 3, headSize: 32, nKvHead: 1, dimFfn: 160, vocabSize: 300, normEps: 1e-5 },
  '2 layers, 2 heads of 64, no grouping': { ...tiny, nLayer: 2, nEmbd: 128, nHead: 2, headSize: 64, nKvHead: 2, dimFfn: 256, vocabSize: 200 },
};
const folder = (i: number) => join(dir, `m${i}`);
Object.values(SHAPES).forEach((cfg, i) => writeQrwkv6Model(folder(i), cfg, 11 + i, 'f32'));
const tokensFor = (V: number) => Int32Array.from({ length: 11 }, (_, t) => (t * 7919 + 13) % V);
const MODES: Mode[] = [{ kind: 'seq' }, { kind: 'step' }];

async function run(model: TargetModel, tokens: Int32Array, mode: Mode, V: number) {
  try {
    return { logits: await runTokens(model, tokens, mode, V), state: await model.readState() };
  } finally {
    model.dispose();
  }
}

/** The interpreter's logits and state for each shape and mode (the reference the rest are held to). */
const refs = new Map<string, Awaited<ReturnType<typeof run>>>();
async function reference(i: number, mode: Mode) {
  const key = `${i}/${mode.kind}`;
  if (!refs.has(key)) {
    const m = openModel(folder(i));
    const graph = await buildGraph(DEFAULT_DSL, m.config); // the family's default: examples/qrwkv6.ts
    refs.set(key, await run(await loadGraph('ref', graph, m.read), tokensFor(m.config.vocabSize), mode, m.config.vocabSize));
    m.close();
  }
  return refs.get(key)!;
}

describe('QRWKV6 checkpoints in the Hugging Face layout', () => {
  it('config.json gives the config; a sharded copy with an index reads the same tensors', () => {
    const sharded = join(dir, 'sharded');
    writeQrwkv6Model(sharded, tiny, 11, 'f32', 150_000);
    const files = JSON.parse(readFileSync(join(sharded, 'model.safetensors.index.json'), 'utf8')).weight_map as Record<string, string>;
    expect(new Set(Object.values(files)).size).toBeGreaterThan(2);
    const a = openModel(folder(0)), b = openModel(sharded);
    try {
      const { family, nLayer, nEmbd, nHead, nKvHead, headSize, dimFfn, vocabSize, loraMix, loraDecay, normEps } = a.config as AnyModelConfig;
      expect({ family, nLayer, nEmbd, nHead, nKvHead, headSize, dimFfn, vocabSize, loraMix, loraDecay, normEps }).toEqual(tiny);
      expect(b.config).toEqual(a.config);
      expect(b.ckpt.names().sort()).toEqual(a.ckpt.names().sort());
      for (const n of a.ckpt.names()) expect(b.read(n)).toEqual(a.read(n));
    } finally {
      a.close();
      b.close();
    }
  });

  it('bad folders are refused in one line naming the file and field or tensor', () => {
    const bad = (edit: (cfg: Record<string, unknown>) => void, what: RegExp) => {
      const d = join(dir, `bad-${Math.random().toString(36).slice(2)}`);
      cpSync(folder(1), d, { recursive: true });
      const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
      edit(cfg);
      writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
      let err: unknown;
      try { openModel(d).close(); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toMatch(what);
    };
    bad((c) => { c.architectures = ['LlamaForCausalLM']; }, /config\.json: architectures: \["LlamaForCausalLM"\] is not a family rwkvc runs/);
    bad((c) => { c.attention_bias = true; }, /config\.json: attention_bias: true: q\/k\/v biases are not implemented/);
    bad((c) => { c.num_key_value_heads = 2; }, /config\.json: num_key_value_heads: 2 does not divide num_attention_heads 3/);
    bad((c) => { c.intermediate_size = 161; }, /model\.safetensors: \d+ problem\(s\) with this QRWKV6 checkpoint: model\.layers\.0\.mlp\.gate_proj\.weight: wrong shape \[160, 96\] \(expected \[161, 96\] from config\.json\)/);
    bad((c) => { c.num_hidden_layers = 3; }, /model\.layers\.2\.input_layernorm\.weight: missing/);
  });
});

describe('QRWKV6: interpreter, fused plan and every target', () => {
  Object.entries(SHAPES).forEach(([name, cfg], i) => {
    for (const mode of MODES) {
      it(`${name}, ${mode.kind}: the fused plan equals the interpreter`, async () => {
        const want = await reference(i, mode);
        const m = openModel(folder(i));
        const { plan } = compileGraph(await buildGraph(DEFAULT_DSL, m.config), m.config, { weights: 'f32', logits: 'all' });
        expect(plan.decode.kernels.filter((k) => k.layer === 0).length).toBe(7);
        const got = await run(await loadPlan('plan', plan, weightProvider(plan, m)), tokensFor(cfg.vocabSize), mode, cfg.vocabSize);
        m.close();
        expectClose(got.logits, want.logits, 1e-9, 'logits');
        for (const [s, v] of Object.entries(want.state)) expectClose(got.state[s], v, 1e-9, s);
      });
    }
  });

  // every target on the tiny shape (2 k/v heads for 4): the other shapes differ in the compiler's
  // input, not in the kernels a target runs (the interpreter-vs-plan cases above cover them)
  for (const target of suiteTargets({ withOracle: false }))
    for (const i of [0])
      for (const mode of MODES)
        it(`${target}: ${Object.keys(SHAPES)[i]}, ${mode.kind}: logits and state match the interpreter`, async (ctx) => {
          const want = await reference(i, mode);
          const m = openModel(folder(i));
          const { plan } = compileGraph(await buildGraph(DEFAULT_DSL, m.config), m.config, { weights: 'f32', logits: 'all' });
          const model = await tryLoad(target, plan, weightProvider(plan, m));
          m.close();
          if ('skip' in model) return ctx.skip(model.skip);
          const got = await run(model, tokensFor(m.config.vocabSize), mode, m.config.vocabSize);
          const tol = perTarget(target).model;
          expectClose(got.logits, want.logits, tol, `${target} logits`);
          for (const [s, v] of Object.entries(want.state)) expectClose(got.state[s], v, tol, `${target} ${s}`);
        }, 300_000); // a GPU target's first case opens the device and compiles its pipelines
});

const llama = await import('node-llama-cpp').catch((e: Error) => {
  console.log(`skipping the llama.cpp comparison: node-llama-cpp does not load (${e.message.split('\n')[0]})`);
  return null;
});

/** llama.cpp's log-probabilities for every position, one token per call (step) or all in one batch (seq). */
async function llamaLogProbs(gguf: string, tokens: Int32Array, V: number, mode: Mode): Promise<Float64Array> {
  const l = await llama!.getLlama({ gpu: false, build: 'never', logLevel: llama!.LlamaLogLevel.error });
  const model = await l.loadModel({ modelPath: gguf });
  const ctx = await model.createContext({ contextSize: 64, batchSize: 64, threads: 1 });
  const out = new Float64Array(tokens.length * V);
  try {
    const seq = ctx.getSequence();
    const opts = { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } } as const;
    const calls = mode.kind === 'step' ? Array.from(tokens, (t) => [t]) : [Array.from(tokens)];
    let t0 = 0;
    for (const call of calls) {
      const res = await seq.controlledEvaluate(call.map((t) => [t as never, opts] as const));
      res.forEach((r, k) => {
        const p = r?.next?.probabilities;
        if (!p) throw new Error(`llama.cpp gave no probabilities at position ${t0 + k}`);
        for (let i = 0; i < V; i++) out[(t0 + k) * V + i] = Math.log(p.get(i as never) ?? 0);
      });
      t0 += call.length;
    }
  } finally {
    await ctx.dispose(); await model.dispose(); await l.dispose();
  }
  return out;
}

const logSoftmax = (x: Float32Array, V: number) => {
  const out = new Float64Array(x.length);
  for (let t = 0; t < x.length / V; t++) {
    const row = x.subarray(t * V, (t + 1) * V), mx = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - mx);
    for (let i = 0; i < V; i++) out[t * V + i] = row[i] - mx - Math.log(z);
  }
  return out;
};

describe.skipIf(!llama)('QRWKV6 against llama.cpp (rwkv6qwen2)', () => {
  Object.entries(SHAPES).forEach(([name, cfg], i) => {
    it(`${name}: log-probabilities within 1e-4 of llama.cpp's, step and seq`, async () => {
      const m = openModel(folder(i)), gguf = join(dir, `m${i}.gguf`);
      writeGguf(gguf, m.config, m.read, 'f32');
      m.close();
      for (const mode of MODES) {
        const ours = logSoftmax((await reference(i, mode)).logits, cfg.vocabSize);
        const theirs = await llamaLogProbs(gguf, tokensFor(cfg.vocabSize), cfg.vocabSize, mode);
        let worst = 0;
        for (let k = 0; k < ours.length; k++) worst = Math.max(worst, Math.abs(ours[k] - theirs[k]));
        console.log(`llama.cpp vs rwkvc, ${name}, ${mode.kind}: max |Δ log p| = ${worst.toExponential(2)}`);
        expect(worst).toBeLessThan(1e-4);
      }
    }, 120_000);
  });
});

describe('rwkvc random-model --family qrwkv6 and rwkvc logits on the folder', () => {
  const rwkvc = (...args: string[]) => spawnSync('node', ['bin/rwkvc.js', ...args], { encoding: 'utf8', timeout: 300_000 });
  it('writes the HF layout a --model takes, and the logits equal the interpreter\'s on the same folder', async () => {
    const d = join(dir, 'cli'), out = join(dir, 'cli.safetensors');
    const w = rwkvc('random-model', '--family', 'qrwkv6', '--preset', 'qrwkv6-tiny', '--layers', '2', '--kv-heads', '1', '--dtype', 'f32', '--seed', '5', '-o', d);
    expect(w.status, w.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'))).toMatchObject({ architectures: ['RWKV6Qwen2ForCausalLM'], num_hidden_layers: 2, num_key_value_heads: 1, num_attention_heads: 4 });
    const l = rwkvc('logits', '--model', d, '--tokens', '5,17,3,200,9', '--target', 'wasm', '--mode', 'step', '--out', out);
    expect(l.status, l.stderr).toBe(0);
    const m = openModel(d);
    const ref = await run(await loadGraph('ref', await buildGraph(DEFAULT_DSL, m.config), m.read), Int32Array.of(5, 17, 3, 200, 9), { kind: 'step' }, 256);
    m.close();
    expectClose(openCheckpoint(out).readF32('logits'), ref.logits, perTarget('wasm').model, 'rwkvc logits --target wasm');
  }, 300_000);

  it('refuses in one line: kv heads that do not divide the heads, a family the preset is not, a folder path that is a file', () => {
    const f = join(dir, 'a-file');
    writeFileSync(f, 'x');
    for (const [args, want] of [
      [['--kv-heads', '3'], /rwkvc: --kv-heads 3 does not divide the 4 heads/],
      [['--preset', 'finch-tiny'], /rwkvc: --preset finch-tiny is a finch shape, not --family qrwkv6/],
      [['-o', join(f, 'sub')], /cannot make the model folder: (ENOTDIR|EEXIST)/],
    ] as [string[], RegExp][]) {
      const r = rwkvc('random-model', '--family', 'qrwkv6', '--preset', 'qrwkv6-tiny', '-o', join(dir, 'unused'), ...args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(want);
    }
  }, 120_000);
});
