/**
 * The CUDA device check (issue 12, item 5), run by bench/cuda/device-check.sh on a machine with an NVIDIA
 * GPU: the fixture goldens through the CUDA runtime (step, seq, chunks, batch), then one table:
 *
 *   - the HBM bandwidth this run measures (a 16-byte-vector copy kernel, 1 GiB each way);
 *   - decode tok/s of bench-0.1b and finch-1b6 (random weights) in f16 / bf16 / int8, and the fraction of
 *     the measured bandwidth that is (tok/s × weight bytes one token reads);
 *   - prefill tok/s at 512 and 4096 tokens (chunk 512);
 *   - the WKV kernel alone at B 8 × T 4096 × C 4096, head 64 (RWKV-LM's benchmark shape): serial vs
 *     chunked, with their max |Δ| on these random inputs (realistic decays);
 *   - llama.cpp's CUDA build (node-llama-cpp) on the same weights as GGUF, and our speed-up per cell.
 *
 * `--sim` runs the same code on the CPU emulator with tiny shapes (no bandwidth, no llama.cpp): the check
 * of this script itself where there is no GPU.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import finch from '../../examples/finch.ts';
import { compileGraph } from '../../compiler/index.ts';
import type { ModelConfig } from '../../kernels/config.ts';
import type { WeightDType } from '../../kernels/plan.ts';
import { materializeWeight } from '../../kernels/weights.ts';
import { readGoldenFile } from '../../runtime/golden.ts';
import { writeGguf } from '../../runtime/checkpoint/gguf-write.ts';
import { openModel } from '../../runtime/model.ts';
import { parseMode, runTokens } from '../../runtime/run-tokens.ts';
import { PRESETS } from '../../runtime/presets.ts';
import type { StateTensors, WeightProvider } from '../../targets/backend.ts';
import { gridAt, type CudaArtifact, type LaunchKernelStep } from '../../targets/cuda/artifact.ts';
import { emitCuda } from '../../targets/cuda/codegen.ts';
import { ptrArg, u32Arg } from '../../targets/cuda/ffi.ts';
import { cudaDriver, loadCuda, type CudaModel } from '../../targets/cuda/runtime.ts';
import { UserError } from '../../kernels/errors.ts';
import { loadCudaSim } from '../../targets/cuda/sim/runtime.ts';
import { GGUF_WEIGHTS, openLlamaCpp } from '../llama-cpp.ts';
import { copyBandwidth, decodeWeightBytes } from './bench.ts';
import { randomTensors, randomWeights, seededRandom as rng } from '../../runtime/random-model.ts';

const SIM = process.argv.includes('--sim');
const OUT = join(import.meta.dirname, '..', '..', 'out', 'cache', 'cuda-device-check');

const load = (art: CudaArtifact, w: WeightProvider): Promise<CudaModel> => (SIM ? loadCudaSim(art, w) : loadCuda(art, w));
const emit = (plan: Parameters<typeof emitCuda>[0]) => emitCuda(plan, SIM ? {} : { ptx: ['sm_80'] });
const log = (s: string) => process.stdout.write(`${s}\n`);
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '—');
let failed = false;

// ---- 1. goldens ----------------------------------------------------------------------------------------------
// The official numbers of each fixture (test/fixtures/*/golden.safetensors), read here with the runtime's
// checkpoint reader: test/cuda-sim.test.ts checks the same on the emulator (and, with RWKVC_CUDA_DEVICE=1,
// on a GPU where vitest is installed); this script needs nothing but node, koffi, handlebars and tsx.
const FIXTURES = join(process.cwd(), 'test', 'fixtures');
const readGolden = (fixture: string) => readGoldenFile(join(FIXTURES, fixture, 'golden.safetensors'));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const stateDiff = (a: StateTensors, b: StateTensors) => Math.max(...Object.keys(b).map((k) => (a[k] ? maxAbsDiff(a[k], b[k]) : Infinity)));

async function goldens(): Promise<void> {
  log('## fixture goldens through the CUDA runtime: max |Δlogit| / |Δstate| against the official numbers (≤ 1e-4)');
  for (const fixture of ['finch-tiny', 'finch-tiny-bf16']) {
    const ckpt = openModel(join(FIXTURES, fixture, 'model.pth'));
    const { plan } = compileGraph(finch(ckpt.config), ckpt.config, { weights: 'f32', logits: 'all', chunk: 6, batch: 2 });
    const m = await load(emit(plan), (d) => materializeWeight(d.source, ckpt.read));
    const golden = readGolden(fixture);
    const V = ckpt.config.vocabSize, N = golden.tokens.length;
    const zero = (s: StateTensors) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, new Float32Array(v.length)]));
    const cells: string[] = [];
    const check = (mode: string, logits: Float32Array, state: StateTensors) => {
      const dl = maxAbsDiff(logits, golden.logits), ds = stateDiff(state, golden.state), ok = dl <= 1e-4 && ds <= 1e-4;
      failed ||= !ok;
      cells.push(`${mode} ${dl.toExponential(1)}/${ds.toExponential(1)}${ok ? '' : ' FAIL'}`);
    };
    for (const mode of ['step', 'seq', 'chunks:4']) {
      await m.writeState(zero(await m.readState()));
      check(mode, await runTokens(m, golden.tokens, parseMode(mode), V), await m.readState());
    }
    // batch: sequence 0 the golden tokens, sequence 1 other tokens
    const own = await m.readState();
    let st: StateTensors[] = [zero(own), zero(own)];
    const got = new Float32Array(N * V);
    for (let t = 0; t < N; t++) {
      const r = await m.runBatch!(Int32Array.from([golden.tokens[t], (golden.tokens[t] + 1) % V]), st);
      got.set(r.logits.subarray(0, V), t * V);
      st = r.states;
    }
    check('batch', got, st[0]);
    log(`${fixture.padEnd(16)} ${cells.join('  ')}  (${m.adapter})`);
    m.dispose();
    ckpt.close();
  }
}

// ---- 2. bandwidth: bench/cuda/bench.ts copyBandwidth ------------------------------------------------------

// ---- 3. decode / prefill per model and format ---------------------------------------------------------------
interface Cell { model: string; fmt: WeightDType; decode: number; bytesPerToken: number; prefill512: number; prefill4096: number; llama?: { decode: number; prefill512: number; prefill4096: number } | string }

async function cell(name: string, cfg: ModelConfig, read: (n: string) => Float32Array, fmt: WeightDType, llama: boolean): Promise<Cell> {
  const { plan } = compileGraph(finch(cfg), cfg, { weights: fmt, logits: 'last', chunk: SIM ? 8 : 512 });
  const art = emit(plan);
  const m = await load(art, (d) => materializeWeight(d.source, read));
  const r = rng(7), tok = () => Math.floor(r() * cfg.vocabSize);
  const steps = SIM ? 4 : 128;
  for (let i = 0; i < 4; i++) await m.run('decode', Int32Array.from([tok()]));
  let t0 = performance.now();
  for (let i = 0; i < steps; i++) await m.run('decode', Int32Array.from([tok()]));
  const decode = steps / ((performance.now() - t0) / 1000);
  const prefill = async (n: number) => {
    const tokens = Int32Array.from({ length: n }, tok);
    await m.run('prefill', tokens.subarray(0, Math.min(n, m.maxTokens))); // warm
    t0 = performance.now();
    for (let i = 0; i < n; i += m.maxTokens) await m.run('prefill', tokens.subarray(i, Math.min(n, i + m.maxTokens)));
    return n / ((performance.now() - t0) / 1000);
  };
  const c: Cell = { model: name, fmt, decode, bytesPerToken: decodeWeightBytes(art), prefill512: await prefill(SIM ? 8 : 512), prefill4096: await prefill(SIM ? 16 : 4096) };
  m.dispose();
  if (llama) c.llama = await llamaCell(name, cfg, read, fmt);
  return c;
}

async function llamaCell(name: string, cfg: ModelConfig, read: (n: string) => Float32Array, fmt: WeightDType): Promise<Cell['llama']> {
  mkdirSync(OUT, { recursive: true });
  const gguf = join(OUT, `${name}.${GGUF_WEIGHTS[fmt]}.gguf`);
  if (!existsSync(gguf)) writeGguf(gguf, cfg, read, GGUF_WEIGHTS[fmt], { name });
  const peer = await openLlamaCpp(gguf, GGUF_WEIGHTS[fmt], 8, cfg.vocabSize, 'cuda');
  if ('unavailable' in peer) return peer.unavailable;
  try {
    await peer.decodeRound(8);
    const times = await peer.decodeRound(128);
    const med = [...times].sort((a, b) => a - b)[times.length >> 1];
    await peer.prefill(512);
    return { decode: 1000 / med, prefill512: 512 / ((await peer.prefill(512)) / 1000), prefill4096: 4096 / ((await peer.prefill(4096)) / 1000) };
  } finally {
    await peer.dispose();
  }
}

// ---- 4. the WKV kernel alone: serial vs chunked ------------------------------------------------------------
async function wkvAlone(): Promise<{ shape: string; serialMs: number; chunkedMs: number; maxDiff: number }> {
  const B = SIM ? 2 : 8, T = SIM ? 64 : 4096, C = SIM ? 128 : 4096, N = 64, H = C / N;
  const cfg: ModelConfig = { ...PRESETS['finch-tiny'], nLayer: 1, nEmbd: C, nHead: H, headSize: N, dimFfn: 64, vocabSize: 64 };
  const { plan } = compileGraph(finch(cfg), cfg, { weights: 'f32', logits: 'last', chunk: 64 });
  const art = emit(plan);
  const m = await load(art, randomWeights(cfg, 3));
  const d = m.driver;
  const find = (prog: 'decode' | 'prefill') => {
    const s = art.programs[prog].steps.find((x) => x.kind === 'launch' && JSON.parse(art.functions[x.fn].key).kind === 'wkv') as LaunchKernelStep;
    return { step: s, fn: art.functions[s.fn] };
  };
  const serial = find('decode'), chunked = find('prefill');
  if (!JSON.parse(chunked.fn.key).cuda?.chunk) throw new Error('the prefill WKV kernel is not the chunked one');
  const D = plan.config.loraDecay;
  // Inputs: r, k, v, gate [T, C], z [T, D] in [-0.5, 0.5); state [H, N, N]; two outputs.
  const at = { r: 0, k: T * C, v: 2 * T * C, gate: 3 * T * C, z: 4 * T * C } as Record<string, number>;
  at.state = at.z + T * D;
  at.out = at.state + H * N * N;
  at.out2 = at.out + T * C;
  const total = at.out2 + T * C;
  const mem = d.alloc(total * 4);
  const r = rng(11);
  const host = Float32Array.from({ length: at.state }, () => r() - 0.5);
  d.upload(mem, host);
  // Weights: the pack [base, u, norm w, norm b] with decay bases spread so w = exp(−e^base) spans
  // 0.998 … 0.07, and the decay LoRA's B small.
  const parts = JSON.parse(JSON.stringify(art.weights[serial.step.weights[0]])) as { parts: string[] };
  const pack = new Float32Array(parts.parts.length * C);
  for (let c = 0; c < C; c++) {
    pack[c] = -6 + (7 * c) / C;
    pack[C + c] = 0.3 * (r() - 0.5);
    pack[2 * C + c] = 1;
    pack[3 * C + c] = 0;
  }
  const wPack = d.alloc(pack.byteLength), wB = d.alloc(C * D * 4);
  d.upload(wPack, pack);
  d.upload(wB, Float32Array.from({ length: C * D }, () => 0.05 * (r() - 0.5)));
  const args = (s: typeof serial, out: number) => {
    const words = [...s.step.params];
    s.fn.paramFields.forEach((f, i) => {
      const v = { r: at.r, k: at.k, v: at.v, gate: at.gate, z: at.z, state: at.state, out }[f.name];
      if (v !== undefined) words[i] = v;
    });
    const p = new Uint8Array(Math.max(4, s.fn.paramBytes));
    const dv = new DataView(p.buffer);
    words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
    return [ptrArg(mem), p, u32Arg(T), ptrArg(wPack), ptrArg(wB)].slice(0, 3 + s.fn.weightArgs);
  };
  const time = (s: typeof serial, out: number) => {
    const run = () => {
      for (let b = 0; b < B; b++) {
        d.memset(mem + BigInt(at.state * 4), 0, H * N * N * 4);
        d.launch(fns.get(s.fn.name), { grid: gridAt(s.step.grid, T), block: s.fn.block, sharedBytes: s.fn.sharedBytes, args: args(s, out) }, null);
      }
      d.synchronize(null);
    };
    run();
    const reps = SIM ? 1 : 3, t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    return (performance.now() - t0) / reps;
  };
  const mod = d.loadModule(art.ptx?.sm_80 ?? '// rwkvc-sim');
  const fns = new Map([serial.fn.name, chunked.fn.name].map((n) => [n, d.getFunction(mod, n)]));
  const serialMs = time(serial, at.out), chunkedMs = time(chunked, at.out2);
  const a = new Float32Array(T * C), b2 = new Float32Array(T * C);
  d.download(a, mem + BigInt(at.out * 4));
  d.download(b2, mem + BigInt(at.out2 * 4));
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b2[i]));
  d.free(mem);
  d.free(wPack);
  d.free(wB);
  m.dispose();
  return { shape: `B${B} T${T} C${C} head ${N}`, serialMs, chunkedMs, maxDiff };
}

// ---- the run ------------------------------------------------------------------------------------------------
try {
  if (!SIM) cudaDriver(); // no driver or no GPU: one line, before any work
  log(SIM ? '# rwkvc CUDA device check on the CPU emulator (--sim: tiny shapes, no bandwidth, no llama.cpp)' : '# rwkvc CUDA device check');
  await goldens();
  let bw = NaN;
  const cells: Cell[] = [];
  const models: [string, ModelConfig][] = SIM
    ? [['finch-tiny', PRESETS['finch-tiny']]]
    : [['bench-0.1b', PRESETS['bench-0.1b']], ['finch-1b6', PRESETS['finch-1b6']]];
  for (const [name, cfg] of models) {
    const read = randomTensors(cfg, 1); // generated once per model, shared by its formats and the GGUF copies
    for (const f of ['f16', 'bf16', 'int8'] as const) {
      cells.push(await cell(name, cfg, read, f, !SIM));
      if (!SIM && Number.isNaN(bw)) {
        bw = await copyBandwidth(cudaDriver());
      }
    }
  }
  const wkv = await wkvAlone();

  log('');
  log(`## measured copy bandwidth: ${SIM ? 'n/a (emulator)' : `${fmt(bw / 1e9, 0)} GB/s`}`);
  log('| model | weights | decode tok/s | bytes/token | % of bandwidth | prefill 512 tok/s | prefill 4096 tok/s | llama.cpp CUDA decode / 512 / 4096 | speed-up decode / 512 / 4096 |');
  log('|---|---|---|---|---|---|---|---|---|');
  for (const c of cells) {
    const l = c.llama;
    const peer = !l ? '—' : typeof l === 'string' ? `unavailable: ${l}` : `${fmt(l.decode)} / ${fmt(l.prefill512, 0)} / ${fmt(l.prefill4096, 0)}`;
    const up = !l || typeof l === 'string' ? '—' : `${fmt(c.decode / l.decode, 2)}× / ${fmt(c.prefill512 / l.prefill512, 2)}× / ${fmt(c.prefill4096 / l.prefill4096, 2)}×`;
    log(`| ${c.model} | ${c.fmt} | ${fmt(c.decode)} | ${(c.bytesPerToken / 2 ** 20).toFixed(1)} MiB | ${fmt((100 * c.decode * c.bytesPerToken) / bw, 0)}% | ${fmt(c.prefill512, 0)} | ${fmt(c.prefill4096, 0)} | ${peer} | ${up} |`);
  }
  log('');
  log(`## WKV alone (${wkv.shape}; B sequences launched one after another): serial ${fmt(wkv.serialMs, 2)} ms, chunked ${fmt(wkv.chunkedMs, 2)} ms ` +
    `(${fmt(wkv.serialMs / wkv.chunkedMs, 2)}×); max |serial − chunked| ${wkv.maxDiff.toExponential(2)}${wkv.maxDiff <= 1e-4 ? '' : ' FAIL (> 1e-4)'}`);
  failed ||= !(wkv.maxDiff <= 1e-4);
} catch (e) {
  if (!(e instanceof UserError)) throw e;
  process.stderr.write(`device-check: ${e.message}\n`);
  process.exit(2);
}
process.exit(failed ? 1 : 0);
