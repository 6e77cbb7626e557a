/**
 * The CUDA target's generated kernels, run on the CPU: the artifact's model.cu compiled unchanged with the
 * emulator header (targets/cuda/sim/) and loaded through the CUDA runtime in place of libcuda (the hidden
 * cuda-sim target). What only the CUDA runtime and the emulator have: bad calls, decode with and without
 * CUDA graphs, blocks and threads run in reverse and as OS threads, and the emulator's byte counts (a decode
 * token reads every weight byte exactly once (the embedding: its one row), and no launch writes a byte twice).
 *
 * The official numbers are test/targets/golden.test.ts's, which runs every registered target, cuda-sim and
 * (where libcuda is) cuda among them, on the same plans (logits of every position, chunk 6, batch 3): f32 in
 * step, seq and chunks:4 within 1e-4 of the official logits and state, the batch program, and each weight
 * format against the plan target and within the README's bounds of the f32 run.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import finch from '../examples/finch.ts';
import { compileGraph } from '../compiler/index.ts';
import { materializeWeight } from '../kernels/weights.ts';
import type { WeightDecl, WeightDType } from '../kernels/plan.ts';
import { openModel } from '../runtime/model.ts';
import type { StateTensors } from '../targets/backend.ts';
import { matrixBytes } from '../targets/gpu/formats.ts';
import { loadKoffi } from '../targets/cuda/ffi.ts';
import { loadCuda, type CudaModel } from '../targets/cuda/runtime.ts';
import { simUnavailable } from '../targets/cuda/sim/build.ts';
import { loadCudaSim } from '../targets/cuda/sim/runtime.ts';
import { FIXTURES, readGolden } from './helpers/golden.ts';

const codegen = await import('../targets/cuda/codegen.ts').catch(() => null);
/**
 * RWKVC_CUDA_DEVICE=1 (on a GPU machine): the same checks through the real driver (--target cuda, PTX from
 * nvcc); the emulator-only checks (run order, byte counts, OS threads) are skipped.
 */
const ON_GPU = process.env.RWKVC_CUDA_DEVICE === '1';
const skip = !loadKoffi()
  ? 'koffi is not installed'
  : (ON_GPU ? null : simUnavailable()) ?? (codegen ? null : 'the CUDA code generator (targets/cuda/codegen.ts) is missing');
if (skip) console.log(`cuda-sim tests skipped: ${skip}`);

const B = 3; // the batch program's sequences
const models = new Map<string, Promise<{ model: CudaModel; vocab: number }>>();

/** One model per fixture and format (plan with decode, prefill (chunk 6) and batch programs), shared by the tests. */
function simModel(fixture: string, weights: WeightDType) {
  const id = `${fixture}/${weights}`;
  let m = models.get(id);
  if (!m) {
    m = (async () => {
      const ckpt = openModel(join(FIXTURES, fixture, 'model.pth'));
      const { plan } = compileGraph(finch(ckpt.config), ckpt.config, { weights, logits: 'all', chunk: 6, batch: B });
      const provider = (d: WeightDecl) => materializeWeight(d.source, ckpt.read);
      const model = ON_GPU
        ? await loadCuda(codegen!.emitCuda(plan, { ptx: ['sm_80'] }), provider)
        : await loadCudaSim(codegen!.emitCuda(plan), provider);
      ckpt.close();
      return { model, vocab: ckpt.config.vocabSize };
    })();
    models.set(id, m);
  }
  return m;
}

afterAll(async () => {
  for (const m of models.values()) (await m.catch(() => null))?.model.dispose();
});

const zeroState = (s: StateTensors): StateTensors => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, new Float32Array(v.length)]));

describe.skipIf(!!skip)('CUDA runtime behaviour (finch-tiny, f32)', () => {
  it('bad calls are UserErrors; decode without graphs launches each step and gives the same numbers', async () => {
    const { model, vocab } = await simModel('finch-tiny', 'f32');
    await expect(model.run('decode', Int32Array.from([vocab]))).rejects.toThrow(/token id 256 is outside the vocabulary \(0\.\.255\)/);
    await expect(model.run('prefill', new Int32Array(7))).rejects.toThrow(/the prefill program takes 1\.\.6 tokens, got 7/);
    await expect(model.writeState({ 'state.0.att_shift': new Float32Array(3) })).rejects.toThrow(/state state\.0\.att_shift: expected 128 values, got 3/);
    const ckpt = openModel(join(FIXTURES, 'finch-tiny', 'model.pth'));
    const plain = await (ON_GPU ? loadCuda : loadCudaSim)(model.artifact, (d) => materializeWeight(d.source, ckpt.read), { graphs: false });
    ckpt.close();
    try {
      const zero = zeroState(await model.readState());
      for (const m of [model, plain]) await m.writeState(zero);
      for (const t of [5, 17, 200]) {
        const tok = Int32Array.from([t]);
        expect(await plain.run('decode', tok)).toEqual(await model.run('decode', tok));
      }
      const steps = model.artifact.programs.decode.steps.length;
      expect(plain.stats.last).toEqual({ launches: steps, graphLaunches: 0, copies: 2 });
      expect(model.stats.last).toEqual({ launches: 0, graphLaunches: 1, copies: 2 });
      expect(await plain.readState()).toEqual(await model.readState());
    } finally {
      plain.dispose();
    }
  });
});

describe.skipIf(!!skip || ON_GPU)('cuda-sim run order', () => {
  // Blocks and a block's threads run last to first: bitwise the same numbers in every program, so no
  // kernel reads what another block or thread writes in the same launch (or phase) without a barrier.
  it.each(['f32', 'int8'] as const)('%s: reversed blocks and threads give bitwise the same logits and state', async (weights) => {
    const { model } = await simModel('finch-tiny', weights);
    const tokens = readGolden('finch-tiny').tokens;
    const zero = zeroState(await model.readState());
    const once = async () => {
      await model.writeState(zero);
      const pre = await model.run('prefill', tokens.subarray(0, 6));
      const dec = await model.run('decode', tokens.subarray(6, 7));
      const batch = await model.runBatch!(tokens.subarray(7, 7 + B), Array.from({ length: B }, () => zero));
      return { pre, dec, batch, state: await model.readState() };
    };
    const forward = await once();
    model.driver.sim!.order(true);
    try {
      expect(await once()).toEqual(forward);
    } finally {
      model.driver.sim!.order(false);
    }
  });
});

describe.skipIf(!!skip || ON_GPU)('cuda-sim with OS threads (finch-tiny)', () => {
  // The emulator's fibers run a block's threads in one fixed order; its OS-thread build (slower, ~200×)
  // runs them as the OS schedules them. Bitwise the same logits and state: no kernel depends on the order
  // its threads run between barriers.
  it('decode and prefill give bitwise the same numbers as the fiber build', async () => {
    const ckpt = openModel(join(FIXTURES, 'finch-tiny', 'model.pth'));
    const { plan } = compileGraph(finch(ckpt.config), ckpt.config, { weights: 'f32', logits: 'all', chunk: 6, batch: B });
    const threaded = await loadCudaSim(codegen!.emitCuda(plan), (d) => materializeWeight(d.source, ckpt.read), { build: { threads: true } });
    ckpt.close();
    const { model } = await simModel('finch-tiny', 'f32');
    try {
      const tokens = readGolden('finch-tiny').tokens;
      const zero = zeroState(await model.readState());
      for (const m of [model, threaded]) await m.writeState(zero);
      expect(await threaded.run('prefill', tokens.subarray(0, 6))).toEqual(await model.run('prefill', tokens.subarray(0, 6)));
      expect(await threaded.run('decode', tokens.subarray(6, 7))).toEqual(await model.run('decode', tokens.subarray(6, 7)));
      expect(await threaded.readState()).toEqual(await model.readState());
    } finally {
      threaded.dispose();
    }
  });
});

describe.skipIf(!!skip || ON_GPU)('cuda-sim byte counts (finch-tiny)', () => {
  // Every weight byte a decode token needs is read exactly once: the matrices (the weight stream) and the
  // f32 vector packs (LayerNorm, mixes, decay base, bonus…); of the embedding, just the token's row.
  it.each(['f32', 'f16', 'bf16', 'int8'] as const)('%s: a decode token reads each weight byte once and writes no byte twice', async (weights) => {
    const { model } = await simModel('finch-tiny', weights);
    const sim = model.driver.sim!;
    const art = model.artifact;
    await model.run('decode', Int32Array.from([3])); // capture the graph first (capturing runs nothing)
    sim.count(true);
    try {
      await model.run('decode', Int32Array.from([42]));
      const launches = sim.launches();
      const { weights: bufs, mem } = model.buffers();
      const decodeWeights = new Set(art.programs.decode.steps.flatMap((s) => (s.kind === 'launch' ? s.weights : [])));
      const embed = art.programs.decode.steps.find((s) => s.kind === 'launch' && art.functions[s.fn].name.includes('embed'));
      const embedW = embed?.kind === 'launch' ? embed.weights[0] : -1;
      const sum = (a: Uint32Array) => a.reduce((x, y) => x + y, 0);
      const max = (a: Uint32Array) => a.reduce((x, y) => Math.max(x, y), 0);
      let matrixBytes_ = 0, packBytes = 0;
      for (const i of decodeWeights) {
        const b = bufs[i]!, w = art.weights[i];
        const { reads, writes } = sim.byteCounts(b.ptr, b.bytes);
        expect(max(writes), `weight buffer ${i} written`).toBe(0);
        if (i === embedW && w.kind === 'rows') {
          // The embedding: exactly the token's row (and its int8 scales), once each.
          expect(max(reads), `embedding ${w.weight}`).toBe(1);
          expect(sum(reads), `embedding ${w.weight}`).toBe(matrixBytes(w.fmt, 1, w.cols));
        } else if (w.kind === 'rows') {
          const bad = reads.findIndex((x) => x !== 1);
          expect(bad, `${w.weight} rows ${w.row0}..${w.row0 + w.rows}: byte ${bad} of ${b.bytes} read ${reads[bad]} times`).toBe(-1);
          matrixBytes_ += b.bytes;
        } else {
          const bad = reads.findIndex((x) => x !== 1);
          expect(bad, `${w.parts.join('+')}: byte ${bad} of ${b.bytes} read ${reads[bad]} times`).toBe(-1);
          packBytes += b.bytes;
        }
      }
      const memc = sim.byteCounts(mem.ptr, mem.bytes);
      for (const l of launches) expect(l.rewritten, `${l.kernel} rewrote ${l.rewritten} bytes`).toBe(0);
      const read = launches.reduce((a, l) => a + l.read, 0), written = launches.reduce((a, l) => a + l.written, 0);
      expect(written).toBe(sum(memc.writes));
      console.log(
        `cuda-sim decode token (${weights}): ${launches.length} launches; weight matrices ${matrixBytes_} bytes, each read exactly once; ` +
          `vector packs ${packBytes} bytes, each read exactly once; ` +
          `mem read ${sum(memc.reads)}, written ${written} bytes, no byte written twice by a launch; total read ${read} bytes`,
      );
    } finally {
      sim.count(false);
    }
  });
});
