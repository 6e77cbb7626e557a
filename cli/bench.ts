/**
 * `rwkvc bench`: end-to-end speed of a target on a real compiled model, against limits measured in
 * the same run (WASM: streaming-read bandwidth and f32x4 multiply-add throughput) and, for the
 * bench-0.1b shape, against rwkv.cpp. `--plot` sweeps formats, threads and lengths into an SVG.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { count, oneOf, targetOption, threads as threadCount } from './args.ts';
import { loadPlan } from '../driver/targets.ts';
import { getTarget } from '../targets/registry.ts';
import { Command, Option, type OptionValues } from 'commander';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { compileGraph } from '../compiler/index.ts';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { UserError } from '../kernels/errors.ts';
import { weightProvider } from '../driver/load.ts';
import { buildGraph, DEFAULT_DSL, QRWKV6_DSL } from '../driver/dsl.ts';
import { openModel, type OpenModel } from '../runtime/model.ts';
import { PRESETS } from '../runtime/presets.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import { writeQrwkv6Model } from '../runtime/random-qrwkv6.ts';
import { familyOf } from '../kernels/config.ts';
import { RWKV_CPP_BENCH_01B as PEER } from '../bench/peers.ts';
import { machineLine } from '../bench/bandwidth.ts';
import { barSpec, concatSpec, lineSpec, renderSvg, type Bar, type Point } from '../bench/plot.ts';

const DTYPES: WeightDType[] = ['f32', 'bf16', 'f16', 'int8', 'q4_0', 'q4_1'];

const PEERS = ['llama.cpp', 'wllama', 'onnxruntime-node', 'onnxruntime-web'] as const;
type PeerName = (typeof PEERS)[number];

/** `--peer`: a comma-separated list of PEERS (onnxruntime: both of its runtimes), all, or none. */
export function parsePeers(v: string): PeerName[] {
  const out = new Set<PeerName>();
  for (const x of v.split(',').map((s) => s.trim())) {
    if (x === 'all') PEERS.forEach((p) => out.add(p));
    else if (x === 'onnxruntime') { out.add('onnxruntime-node'); out.add('onnxruntime-web'); }
    else if ((PEERS as readonly string[]).includes(x)) out.add(x as PeerName);
    else if (x !== 'none') throw new UserError(`--peer: '${x}' is not one of ${PEERS.join(', ')}, onnxruntime, all, none`);
  }
  return [...out];
}

interface Ctx { model: OpenModel; preset?: string; dsl: string; progress: MultiBar; peers: PeerName[] }

/**
 * One line per start-up phase on stderr (building the checkpoint, compiling, loading): above the bars on a
 * terminal, alone when piped, where cli-progress draws nothing and the start was silent for minutes.
 */
function status(progress: MultiBar | undefined, line: string): void {
  if (progress && process.stderr.isTTY) progress.log(`rwkvc bench: ${line}\n`);
  else process.stderr.write(`rwkvc bench: ${line}\n`);
}

async function planFor(ctx: Ctx, weights: WeightDType, chunk: number): Promise<KernelPlan> {
  status(ctx.progress, `compiling ${ctx.dsl} for ${ctx.preset ?? ctx.model.path} (${weights} weights)`);
  const graph = await buildGraph(ctx.dsl, ctx.model.config);
  return compileGraph(graph, ctx.model.config, { weights, logits: 'last', chunk }).plan;
}

function bar(ctx: Ctx, name: string): (phase: string, done: number, total: number) => void {
  let b: SingleBar | undefined;
  return (phase, done, total) => {
    b ??= ctx.progress.create(total, 0, { phase: `${name} ${phase}` });
    b.setTotal(total);
    b.update(done, { phase: `${name} ${phase}` });
    if (done >= total) { ctx.progress.remove(b); b = undefined; }
  };
}

/** The compute limit for `threads`: the best of `repeat` probes (steal time only ever lowers it). */
async function measureComputeLimit(threads: number, repeat: number): Promise<number> {
  const { measureCompute } = await import('../bench/wasm-roofline.ts');
  let best = 0;
  for (let i = 0; i < repeat; i++) best = Math.max(best, (await measureCompute(threads)).gflops);
  return best;
}

/**
 * One WASM measurement. Its bandwidth limit is probed in turns with the decode steps (bench/wasm-bench.ts);
 * its compute limit is the better of `compute` (else measured here) and a probe right after.
 */
async function measureWasm(ctx: Ctx, weights: WeightDType, threads: number, decode: number, prefill: number, repeat: number, compute?: number) {
  const { benchWasm } = await import('../bench/wasm-bench.ts');
  const plan = await planFor(ctx, weights, prefill);
  const { sessions, skipped } = await openPeers(ctx, weights, threads, Math.max(prefill, decode) + 16);
  try {
    const r = await benchWasm({
      plan, weights: weightProvider(plan, ctx.model, bar(ctx, `load ${weights}`)), threads, decodeTokens: decode, prefillTokens: prefill,
      computeGflops: compute ?? await measureComputeLimit(threads, repeat), repeats: repeat, peers: sessions,
    });
    return { ...r, skipped };
  } finally {
    for (const s of sessions) await s.dispose();
  }
}

/**
 * Each of ctx.peers on the same checkpoint in the same format: llama.cpp (bench/llama-cpp.ts) and wllama in headless
 * Chromium (bench/wllama.ts) on its GGUF export, onnxruntime-node and -web on its ONNX export (bench/onnxruntime.ts);
 * one that cannot run this format is skipped with why, the others still run. `nCtx`: the longest prompt or decode
 * round wllama must hold.
 */
async function openPeers(ctx: Ctx, weights: WeightDType, threads: number, nCtx: number) {
  const sessions: import('../bench/llama-cpp.ts').PeerSession[] = [], skipped: { name: PeerName; skipped: string }[] = [];
  const { GGUF_WEIGHTS, ggufFor, openLlamaCpp } = await import('../bench/llama-cpp.ts');
  const g = GGUF_WEIGHTS[weights];
  const gguf = () => {
    const progress = bar(ctx, `GGUF ${g}`);
    return ggufFor(ctx.model.path, ctx.model.config, ctx.model.read, g, resolve('out', 'cache'), (d, n) => progress('layers', d, n));
  };
  for (const name of ctx.peers) {
    let s;
    if (name === 'llama.cpp') s = await openLlamaCpp(gguf(), g, threads, ctx.model.config.vocabSize);
    else if (name === 'wllama') {
      status(ctx.progress, `wllama: loading the ${g} GGUF in headless Chromium`);
      s = await (await import('../bench/wllama.ts')).openWllama(gguf(), g, threads, { nCtx });
    } else {
      status(ctx.progress, `${name}: loading the ONNX export (${weights})`);
      s = await (await import('../bench/onnxruntime.ts')).openOrtPeer(name === 'onnxruntime-node' ? 'node' : 'web', ctx.model, ctx.dsl, weights, threads, resolve('out', 'cache'));
    }
    if ('unavailable' in s) {
      skipped.push({ name, skipped: s.unavailable });
      process.stderr.write(`bench: no ${name} peer: ${s.unavailable}\n`);
    } else sessions.push(s);
  }
  return { sessions, skipped };
}

type WasmResult = Awaited<ReturnType<typeof measureWasm>>;

type PeerReport = { name: string; skipped: string } | {
  name: string; weights: string; note?: string; decode: { tokensPerSecond: number; msPerToken: number; tokens: number }; prefill: { tokensPerSecond: number; tokens?: number };
  decodeSpeedup: number; prefillSpeedup: number;
};

/** A measurement in the shape `--json` promises: decode against its own bandwidth probes, prefill against `computeGflops`. */
function wasmReport(ctx: Ctx, weights: WeightDType, repeat: number, r: WasmResult, computeGflops = r.compute.rooflineGflops) {
  const limits = { bandwidthGBs: r.bandwidth.rooflineGBs, computeGflops };
  const threads = r.threads;
  const peerMs = ctx.preset === 'bench-0.1b' ? PEER.decodeMsPerToken[weights]?.[threads] : undefined;
  const peerPrefill = ctx.preset === 'bench-0.1b' ? PEER.prefillTokensPerSecond[weights]?.[threads] : undefined;
  return {
    target: 'wasm', model: ctx.preset ?? ctx.model.path, weights, threads, variant: r.variant, repeat, machine: machineLine(),
    decode: {
      tokensPerSecond: r.decode.tokensPerS, msPerToken: r.decode.msPerToken, tokens: r.decode.tokens,
      weightBytesPerToken: r.weightBytesPerToken, achievedGBs: r.bandwidth.achievedGBs, bandwidthFraction: r.bandwidth.achievedGBs / limits.bandwidthGBs,
      nativeBandwidthFraction: r.bandwidth.nativeFraction,
      // decode is memory-bound, so tokens/s per GB/s of each machine's streaming bandwidth compares the
      // implementations apart from the machines (rwkv.cpp's was measured at 30 / 59 GB/s)
      ...(peerMs ? {
        rwkvCppMsPerToken: peerMs, speedupVsRwkvCpp: peerMs / r.decode.msPerToken,
        speedupVsRwkvCppPerGBs: (peerMs * PEER.bandwidthGBs[threads]) / (r.decode.msPerToken * limits.bandwidthGBs),
      } : {}),
    },
    prefill: {
      tokens: r.prefill.tokens, tokensPerSecond: r.prefill.tokensPerS, matmulGFLOPs: r.prefill.matmulGflops, computeFraction: r.prefill.matmulGflops / limits.computeGflops,
      ...(peerPrefill ? { rwkvCppTokensPerSecond: peerPrefill, ratioVsRwkvCpp: r.prefill.tokensPerS / peerPrefill } : {}),
    },
    // bandwidthGBs: the WASM read probe; nativeBandwidthGBs: glibc memchr over 1 GiB (Buffer.indexOf), in the same rounds
    limits: { bandwidthGBs: limits.bandwidthGBs, nativeBandwidthGBs: r.bandwidth.nativeGBs, computeGFLOPs: limits.computeGflops },
    // measured in the same rounds as ours: speedup > 1 means rwkvc is faster
    peers: [...r.peers.map((p) => ({
      name: p.name, weights: p.weights,
      decode: { tokensPerSecond: p.decode.tokensPerS, msPerToken: p.decode.msPerToken, tokens: p.decode.tokens },
      prefill: { tokensPerSecond: p.prefill.tokensPerS, tokens: p.prefill.tokens, oursTokensPerSecond: p.prefill.oursTokensPerS },
      decodeSpeedup: p.decode.msPerToken / r.decode.msPerToken,
      // against ours on a prompt of the same length (a capped peer's is shorter than ours above)
      prefillSpeedup: p.prefill.oursTokensPerS / p.prefill.tokensPerS,
    })), ...r.skipped] as PeerReport[],
  };
}

async function benchWgslOnce(ctx: Ctx, weights: WeightDType, threads: number, decode: number, prefill: number) {
  const { benchWgsl } = await import('../bench/wgsl-bench.ts');
  const plan = await planFor(ctx, weights, prefill);
  const shaders = bar(ctx, 'wgsl'), pipelines = bar(ctx, 'wgsl');
  const r = await benchWgsl({
    plan, weights: weightProvider(plan, ctx.model, bar(ctx, `load ${weights}`)), decodeSteps: decode, prefillTokens: prefill,
    onPhase: (p) => status(ctx.progress, `wgsl ${p}`), onProgress: (p, d, n) => (p === 'shaders' ? shaders : pipelines)(p, d, n),
  });
  return {
    target: 'wgsl', model: ctx.preset ?? ctx.model.path, weights, adapter: r.adapter,
    decode: { tokensPerSecond: r.decode.tokPerS, msPerToken: r.decode.msPerToken, dispatchesPerToken: r.decode.dispatchesPerToken, commandBuffersPerToken: r.decode.commandBuffersPerToken },
    prefill: { tokens: r.prefill.tokensPerCall, tokensPerSecond: r.prefill.tokPerS, dispatchesPerToken: r.prefill.dispatchesPerToken },
    pipelines: r.pipelines,
    ...(ctx.peers.includes('llama.cpp') ? { peer: await vulkanPeer(ctx, weights, threads, decode, r) } : {}),
  };
}

/** llama.cpp's Vulkan build on the same GGUF and the device the wgsl run used (bench/llama-cpp-vulkan.ts), measured after it. */
async function vulkanPeer(ctx: Ctx, weights: WeightDType, threads: number, decode: number, r: Awaited<ReturnType<typeof import('../bench/wgsl-bench.ts').benchWgsl>>) {
  const { GGUF_WEIGHTS, ggufFor } = await import('../bench/llama-cpp.ts');
  const { benchVulkanPeer } = await import('../bench/llama-cpp-vulkan.ts');
  const g = GGUF_WEIGHTS[weights], progress = bar(ctx, `GGUF ${g} for llama.cpp`);
  const gguf = ggufFor(ctx.model.path, ctx.model.config, ctx.model.read, g, resolve('out', 'cache'), (d, n) => progress('layers', d, n));
  status(ctx.progress, `llama.cpp Vulkan on ${r.adapter}`);
  return benchVulkanPeer(gguf, g, threads, ctx.model.config.vocabSize, r.adapter, decode, r.prefill.tokensPerCall,
    { msPerToken: r.decode.msPerToken, prefillTokensPerSecond: r.prefill.tokPerS });
}

/** The CUDA target (or its CPU emulator, `cuda-sim`, which has no bandwidth limit to report). */
async function benchCudaOnce(ctx: Ctx, target: string, weights: WeightDType, decode: number, prefill: number, repeat: number) {
  const { benchCuda } = await import('../bench/cuda/bench.ts');
  const plan = await planFor(ctx, weights, Math.min(prefill, 512));
  const r = await benchCuda({
    plan, weights: weightProvider(plan, ctx.model, bar(ctx, `load ${weights}`)), decodeTokens: decode, prefillTokens: prefill,
    rounds: 8 * repeat, sim: target === 'cuda-sim',
  });
  return { target, model: ctx.preset ?? ctx.model.path, weights, adapter: r.adapter, decode: r.decode, prefill: r.prefill, limits: r.limits };
}

/** The targets rwkvc bench measures, and how. */
const BENCHED = new Set(['wasm', 'wgsl', 'cuda', 'cuda-sim']);

export function benchCommand(): Command {
  return new Command('bench')
    .description('Measure decode and prefill speed of a target against limits measured in the same run')
    .addOption(targetOption('wasm', 'what to measure', (t) => BENCHED.has(t.name)))
    .option('--preset <name>', `a model shape with seeded random weights: ${Object.keys(PRESETS).join(', ')}`, oneOf(Object.keys(PRESETS)), 'bench-0.1b')
    .option('--model <path>', 'a checkpoint instead of a preset')
    .addOption(new Option('--weights <dtype>', 'weight storage').choices(DTYPES).default('f32'))
    .option('--threads <n>', 'WASM worker threads (default: all cores)', threadCount)
    .option('--decode <n>', 'decode tokens timed (median; at least 64 for wasm)', count, 64)
    .option('--prefill <n>', 'prompt tokens for the prefill measurement', count, 512)
    .option('--repeat <n>', 'n× the decode rounds (each a bandwidth probe, then tokens: medians); best of n prefills and compute probes', count, 1)
    .option('--peer <list>', 'other implementations measured in the same rounds (wasm), comma-separated, or all, or none: llama.cpp on a GGUF export of the same checkpoint, same weight format; wllama (llama.cpp in WASM) on that GGUF in headless Chromium (bench/wllama.ts); onnxruntime-node (CPU EP) and onnxruntime-web (WASM EP) on its ONNX export, f32/f16 (bench/onnxruntime.ts). onnxruntime alone: both, in their own table with load time and peak memory', 'llama.cpp')
    .option('--json', 'print one JSON object')
    .option('--plot <file.svg>', 'sweep weight formats × threads, prompt lengths and context lengths; write the charts')
    .option('--dsl <file>', 'model description (default: examples/finch.ts of this package)', DEFAULT_DSL)
    .option('--serve', 'rwkvc serve under --clients concurrent clients: requests/s and aggregate tokens/s against one client in the same run (replies of --decode tokens, 2×--repeat requests per client)')
    .option('--clients <list>', 'concurrent clients for --serve', '1,4,16')
    .option('--context', 'decode ms/token and sequence memory at context positions (--contexts): rwkvc (wasm) beside a random LLaMA of the same shape in llama.cpp, flash attention on and off (bench/context.ts); --plot FILE.svg, or a folder for FOLDER/context.svg')
    .option('--contexts <list>', 'positions for --context (k = 1024)', '1,256,1k,4k,16k')
    .option('--all', 'every table and chart, one part after another (wasm sweep with every peer, onnxruntime load and memory, context, kernels, finch-1b6 int8/q4_0 beside llama.cpp, wgsl with llama.cpp Vulkan and with onnxruntime-web WebGPU), progress on stderr; with --plot DIR writes DIR/RESULTS.md and the SVGs (bench/all.ts)')
    .option('--parts <list>', 'with --all: only these parts (wasm,onnxruntime,context,kernels,real-size,wgsl)')
    .option('--kernels', 'per-kernel micro-benchmarks (benchmark.js: mean, ±RME, samples) of each kernel kind, linear per weight format, on the wasm target, against read and FMA limits of the same run (bench/kernels.ts)')
    .addHelpText('after', `
Examples:
  rwkvc bench --target wasm --preset bench-0.1b --json
  rwkvc bench --target wasm --weights int8 --threads 1 --repeat 3
  rwkvc bench --target wasm --plot out/bench.svg
  rwkvc bench --target wgsl --preset finch-tiny
  rwkvc bench --target cuda --preset finch-1b6 --weights f16`)
    .action(async (o) => {
      // Bars only on a terminal: piped, cli-progress draws nothing but still writes a newline per removed bar.
      const stream = process.stderr.isTTY ? process.stderr : new Writable({ write: (_c, _e, done) => done() });
      const progress = new MultiBar({ format: '{phase} [{bar}] {value}/{total}', clearOnComplete: true, hideCursor: true, stream }, Presets.shades_classic);
      if (o.context) (await import('../bench/context.ts')).parseContexts(o.contexts); // a bad list before any loading
      const peers = parsePeers(o.peer);
      // A target this machine cannot run is one line before anything is built or compiled.
      // (not wgsl: its unavailable() asks a page's navigator.gpu; in Node, Dawn is tried when the model loads)
      const why = o.all || o.serve || o.context || o.target === 'wgsl' ? null : await (await getTarget(o.target).runtime?.())?.unavailable?.();
      if (why) throw new UserError(why);
      if (o.all) {
        const { benchAll, PART_KEYS } = await import('../bench/all.ts');
        const known: readonly string[] = PART_KEYS;
        const parts = o.parts === undefined ? undefined : String(o.parts).split(',').map((x: string) => x.trim());
        for (const x of parts ?? []) if (!known.includes(x)) throw new UserError(`--parts: '${x.slice(0, 40)}' is not one of ${known.join(', ')}`);
        const r = await benchAll({ dir: o.plot ?? 'docs/bench', preset: o.preset, threads: o.threads ?? availableParallelism(), parts, onLine: (l) => process.stderr.write(`rwkvc bench --all ${l}\n`) });
        process.stdout.write(`${r.file}${r.failed.length ? ` (failed: ${r.failed.join('; ')})` : ''}\n`);
        return;
      }
      let path = o.model as string | undefined;
      if (!path) {
        if (!PRESETS[o.preset]) throw new UserError(`--preset: unknown preset '${o.preset}' (${Object.keys(PRESETS).join(', ')})`);
        // a QRWKV6 preset is a Hugging Face folder (config.json written last: it marks a finished one),
        // compiled with examples/qrwkv6.ts (buildGraph picks it for the config's family)
        const qrwkv6 = familyOf(PRESETS[o.preset]) === 'qrwkv6';
        path = resolve('out', 'cache', `${o.preset}-seed1${qrwkv6 ? '' : '.safetensors'}`);
        if (!existsSync(qrwkv6 ? join(path, 'config.json') : path)) {
          mkdirSync(dirname(path), { recursive: true });
          status(progress, `building the ${o.preset} checkpoint (seeded random weights, once) → ${path}`);
          const b = progress.create(1, 0, { phase: `random ${o.preset} checkpoint` });
          const onTensor = (i: number, n: number) => { b.setTotal(n); b.update(i + 1); };
          if (qrwkv6) writeQrwkv6Model(path, PRESETS[o.preset], 1, 'bf16', undefined, onTensor);
          else writeRandomModel(path, PRESETS[o.preset], 1, 'bf16', onTensor);
          progress.remove(b);
        }
      }
      if (o.serve) return serveBench(path, o, progress);
      const model = openModel(path);
      const dsl = o.dsl === DEFAULT_DSL && familyOf(model.config) === 'qrwkv6' ? QRWKV6_DSL : o.dsl; // as buildGraph picks it
      const ctx: Ctx = { model, preset: o.model ? undefined : o.preset, dsl, progress, peers };
      const threads = o.threads ?? availableParallelism();
      try {
        if (o.kernels) {
          await kernelsBench(ctx, threads, Math.min(o.prefill, 512), o.json);
          return;
        }
        if (o.context) {
          await contextBench(ctx, o.weights, threads, o.contexts, o.decode, o.plot, o.json);
          return;
        }
        if (o.plot) {
          if (o.target !== 'wasm') throw new UserError('--plot sweeps the wasm target');
          await sweep(ctx, o.plot, threads, o.decode, o.prefill, o.repeat, o.json);
          return;
        }
        if (o.peer === 'onnxruntime' && (o.target === 'wasm' || o.target === 'wgsl')) {
          await (o.target === 'wasm' ? ortBench : ortWebGpuBench)(ctx, o.weights, threads, o.decode, o.prefill, o.repeat, o.json);
          return;
        }
        let r;
        if (o.target === 'wasm') {
          const m = await measureWasm(ctx, o.weights, threads, o.decode, o.prefill, o.repeat);
          r = wasmReport(ctx, o.weights, o.repeat, m);
        } else if (o.target === 'wgsl') r = await benchWgslOnce(ctx, o.weights, threads, o.decode, o.prefill);
        else r = await benchCudaOnce(ctx, o.target, o.weights, o.decode, o.prefill, o.repeat);
        progress.stop();
        process.stdout.write(o.json ? JSON.stringify(r, null, 1) + '\n' : formatResult(r) + '\n');
      } finally {
        progress.stop();
        ctx.model.close();
      }
    });
}

/** `--kernels`: bench/kernels.ts over every weight format of the model. */
async function kernelsBench(ctx: Ctx, threads: number, prefill: number, json: boolean) {
  const { benchKernels, formatKernels } = await import('../bench/kernels.ts');
  const plans: Partial<Record<WeightDType, KernelPlan>> = {};
  for (const w of DTYPES) plans[w] = await planFor(ctx, w, prefill);
  const progress = bar(ctx, 'kernel');
  let n = 0;
  const r = await benchKernels({ plans, weights: (p) => weightProvider(p, ctx.model), threads, gpujsBrowser: true, onCase: (name) => progress(name, n++, DTYPES.length + 4) });
  ctx.progress.stop();
  process.stdout.write(json ? JSON.stringify(r, null, 1) + '\n' : formatKernels(r) + '\n');
}

/** `--context`: bench/context.ts on the wasm target (its own module: nothing of it loads otherwise). */
async function contextBench(ctx: Ctx, weights: WeightDType, threads: number, contexts: string, decode: number, plot: string | undefined, json: boolean) {
  const { benchContext, contextSvg, formatContext, parseContexts } = await import('../bench/context.ts');
  const { GGUF_WEIGHTS } = await import('../bench/llama-cpp.ts');
  const list = parseContexts(contexts);
  const g = GGUF_WEIGHTS[weights];
  if (g !== 'f32' && g !== 'f16' && g !== 'bf16' && g !== 'q8_0') throw new UserError(`--context: --weights ${weights}: the random LLaMA is written in f32, bf16, f16 or int8 (Q8_0) only`);
  const plan = await planFor(ctx, weights, 512);
  const progress = bar(ctx, 'context'), t0 = performance.now();
  let said = '';
  // a line per phase with the time so far: a run to 16k takes minutes, and piped there are no bars
  const onProgress = (phase: string, d: number, n: number) => {
    const line = `${phase} ${d}`;
    if (line !== said) status(ctx.progress, `context: ${(said = line)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    progress(phase, d, n);
  };
  const r = await benchContext(plan, weightProvider(plan, ctx.model, bar(ctx, `load ${weights}`)), g, resolve('out', 'cache'), {
    contexts: list, threads, decode: Math.min(decode, 64), onProgress,
  });
  // --plot DIR (as --all takes it) writes DIR/context.svg
  if (plot && !plot.endsWith('.svg')) plot = join(plot, 'context.svg');
  if (plot) { mkdirSync(dirname(resolve(plot)), { recursive: true }); writeFileSync(plot, await contextSvg(r)); }
  ctx.progress.stop();
  process.stdout.write(json ? JSON.stringify({ ...r, ...(plot ? { plot } : {}) }, null, 1) + '\n' : formatContext(r) + (plot ? `\nplot: ${plot}` : '') + '\n');
}

/** `--peer onnxruntime`: rwkvc wasm beside onnxruntime-node and onnxruntime-web on the ONNX export, same run (bench/onnxruntime.ts). */
async function ortBench(ctx: Ctx, weights: WeightDType, threads: number, decode: number, prefill: number, repeat: number, json: boolean) {
  const { benchOnnxruntime, formatOrtBench } = await import('../bench/onnxruntime.ts');
  const plan = await planFor(ctx, weights, prefill);
  const phase = bar(ctx, 'onnxruntime peers');
  let step = 0;
  const r = await benchOnnxruntime({
    plan, weights: weightProvider(plan, ctx.model), model: ctx.model, dsl: ctx.dsl, weightsName: weights, threads,
    decodeTokens: decode, prefillTokens: prefill, repeats: repeat, cacheDir: resolve('out', 'cache'), onPhase: (p) => phase(p, ++step, 7),
  });
  ctx.progress.stop();
  const cpu = `${cpus()[0]?.model ?? '?'}; ${(/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(' ').filter((f) => /^(avx|fma|f16c|sse4)/.test(f)).join(' ')}`;
  process.stdout.write(json ? JSON.stringify({ model: ctx.preset ?? ctx.model.path, cpu, ...r }, null, 1) + '\n' : `${ctx.preset ?? ctx.model.path}\n${formatOrtBench(r, cpu)}\n`);
}

/** `--target wgsl --peer onnxruntime`: our WGSL runtime and onnxruntime-web's WebGPU EP in one Chromium page (bench/onnxruntime-webgpu.ts). */
async function ortWebGpuBench(ctx: Ctx, weights: WeightDType, _threads: number, decode: number, prefill: number, _repeat: number, json: boolean) {
  const { benchOrtWebGpu, formatWebGpu } = await import('../bench/onnxruntime-webgpu.ts');
  const { exportModels } = await import('../driver/onnx/index.ts');
  const plan = await planFor(ctx, weights, prefill);
  const { step, prefill: scan } = await exportModels(ctx.model, ctx.dsl, weights, 'last');
  const r = await benchOrtWebGpu({ plan, weights: weightProvider(plan, ctx.model), stepOnnx: step, prefillOnnx: scan, decodeTokens: decode, prefillTokens: prefill });
  ctx.progress.stop();
  process.stdout.write(json ? JSON.stringify({ model: ctx.preset ?? ctx.model.path, weights, ...r }, null, 1) + '\n' : `${ctx.preset ?? ctx.model.path}, weights ${weights}\n${formatWebGpu(r)}\n`);
}

function formatResult(r: Record<string, unknown>): string {
  const d = r.decode as Record<string, number>, p = r.prefill as Record<string, number>, l = r.limits as Record<string, number> | undefined;
  const lines = [`${r.target} ${r.model} weights ${r.weights}${r.threads ? `, ${r.threads} thread(s)` : ''}${r.variant ? ` (${r.variant === 'relaxed' ? 'relaxed-SIMD FMA' : 'SIMD128'} module)` : ''}${r.adapter ? ` on ${r.adapter}` : ''}${r.machine ? `; ${r.machine}` : ''}`];
  lines.push(`decode:  ${d.tokensPerSecond.toFixed(1)} tok/s (${d.msPerToken.toFixed(2)} ms/token)` +
    (d.bandwidthFraction !== undefined ? `, ${(d.weightBytesPerToken / 1e6).toFixed(1)} MB/token = ${d.achievedGBs.toFixed(1)} GB/s, ${(100 * d.bandwidthFraction).toFixed(0)}% of the measured ${l!.bandwidthGBs.toFixed(1)} GB/s (WASM read)` : '') +
    (d.nativeBandwidthFraction !== undefined ? `, ${(100 * d.nativeBandwidthFraction).toFixed(0)}% of ${l!.nativeBandwidthGBs.toFixed(1)} GB/s (native memchr)` : '') +
    (d.dispatchesPerToken !== undefined ? `, ${d.dispatchesPerToken} dispatches/token` : '') +
    (d.rwkvCppMsPerToken ? `; rwkv.cpp ${d.rwkvCppMsPerToken} ms/token → ${d.speedupVsRwkvCpp.toFixed(2)}× (${d.speedupVsRwkvCppPerGBs.toFixed(2)}× in tokens/s per GB/s of each machine's bandwidth)` : ''));
  lines.push(`prefill: ${p.tokensPerSecond.toFixed(1)} tok/s for ${p.tokens} tokens` +
    (p.computeFraction !== undefined ? `, matmuls ${p.matmulGFLOPs.toFixed(1)} GFLOP/s = ${(100 * p.computeFraction).toFixed(0)}% of the measured ${l!.computeGFLOPs.toFixed(1)} GFLOP/s` : '') +
    (p.rwkvCppTokensPerSecond ? `; rwkv.cpp ${p.rwkvCppTokensPerSecond} tok/s → ${p.ratioVsRwkvCpp.toFixed(2)}×` : ''));
  // wasm: peers; wgsl: llama.cpp's Vulkan build as its one peer
  for (const peer of (r.peers ?? (r.peer ? [r.peer] : [])) as PeerReport[])
    if ('skipped' in peer) lines.push(`peer:    ${peer.name} skipped: ${peer.skipped}`);
    else lines.push(`peer:    ${peer.name}, ${peer.weights}, ${peer.note ?? 'same rounds'}: decode ${peer.decode.msPerToken.toFixed(2)} ms/token → rwkvc ${peer.decodeSpeedup.toFixed(2)}×; ` +
    `prefill ${peer.prefill.tokensPerSecond.toFixed(1)} tok/s${peer.prefill.tokens && peer.prefill.tokens !== p.tokens ? ` (${peer.prefill.tokens}-token prompt, against ours on the same)` : ''} → rwkvc ${peer.prefillSpeedup.toFixed(2)}×`);
  return lines.join('\n');
}

type SweepSummary = { model: string; results: ReturnType<typeof wasmReport>[]; prefillByLength: Point[]; decodeByContext: Point[] };

/** The sweep's charts: decode per format and thread count (with the peers), its share of the bandwidth roofline, prefill and decode by length. */
async function sweepSvg(s: SweepSummary): Promise<string> {
  const decodeBars: Bar[] = [], fracBars: Bar[] = [];
  for (const r of s.results) {
    const { weights: w, threads: t } = r;
    decodeBars.push({ group: w, series: `rwkvc ${t}T`, value: r.decode.tokensPerSecond });
    for (const p of r.peers) if ('decode' in p) decodeBars.push({ group: w, series: `${p.name.split(' ')[0]} ${t}T (same run)`, value: p.decode.tokensPerSecond });
    if (r.decode.rwkvCppMsPerToken) decodeBars.push({ group: w, series: `rwkv.cpp ${t}T (recorded elsewhere)`, value: 1000 / r.decode.rwkvCppMsPerToken });
    fracBars.push({ group: w, series: `${t}T`, value: 100 * r.decode.bandwidthFraction });
  }
  return renderSvg(concatSpec([
    barSpec(`decode tokens/s, ${s.model}`, 'tokens/s', decodeBars),
    barSpec('decode: share of the measured bandwidth roofline', '% of roofline', fracBars),
    lineSpec('prefill tokens/s by prompt length', 'prompt tokens', 'tokens/s', s.prefillByLength),
    lineSpec('decode tokens/s by context length', 'tokens already in context', 'tokens/s', s.decodeByContext),
  ]));
}

async function sweep(ctx: Ctx, file: string, maxThreads: number, decode: number, prefill: number, repeat: number, json: boolean) {
  const threadList = [...new Set([1, maxThreads])];
  const compute = new Map<number, number>();
  for (const t of threadList) compute.set(t, await measureComputeLimit(t, repeat));
  // every measurement first, then the reports against the best compute limit any probe of the sweep saw
  const runs: { w: WeightDType; m: WasmResult }[] = [];
  for (const w of DTYPES)
    for (const t of threadList) {
      const m = await measureWasm(ctx, w, t, decode, prefill, repeat, compute.get(t));
      compute.set(t, Math.max(compute.get(t)!, m.compute.rooflineGflops));
      runs.push({ w, m });
    }
  const results = runs.map(({ w, m }) => wasmReport(ctx, w, repeat, m, compute.get(m.threads)));
  // prefill speed against prompt length, and decode speed against context length (constant: RWKV's state is fixed-size)
  const plan = await planFor(ctx, 'f32', prefill);
  const m = await loadPlan('wasm', plan, weightProvider(plan, ctx.model, bar(ctx, 'load f32')), { threads: maxThreads });
  const prefillPts: Point[] = [], ctxPts: Point[] = [];
  const V = plan.config.vocabSize;
  const toks = (n: number) => Int32Array.from({ length: n }, (_, i) => (i * 7919) % V);
  for (let n = 16; n <= prefill; n *= 2) {
    await m.run('prefill', toks(n));
    const t0 = performance.now();
    await m.run('prefill', toks(n));
    prefillPts.push({ x: n, y: n / ((performance.now() - t0) / 1000), series: `f32 ${maxThreads}T` });
  }
  let fed = 0;
  for (const target of [0, 256, 1024, 4096]) {
    await m.writeState(Object.fromEntries(Object.entries(await m.readState()).map(([k, v]) => [k, new Float32Array(v.length)])));
    for (fed = 0; fed < target; fed += Math.min(prefill, target - fed)) await m.run('prefill', toks(Math.min(prefill, target - fed)));
    const times: number[] = [];
    for (let i = 0; i < 16; i++) { const t0 = performance.now(); await m.run('decode', toks(1)); times.push(performance.now() - t0); }
    times.sort((a, b) => a - b);
    ctxPts.push({ x: Math.max(target, 1), y: 1000 / times[8], series: `f32 ${maxThreads}T` });
  }
  m.dispose();
  const summary = { model: ctx.preset ?? ctx.model.path, results, prefillByLength: prefillPts, decodeByContext: ctxPts, plot: file };
  mkdirSync(dirname(resolve(file)), { recursive: true });
  writeFileSync(file, await sweepSvg(summary));
  ctx.progress.stop();
  if (json) process.stdout.write(JSON.stringify(summary, null, 1) + '\n');
  else {
    for (const r of results) process.stdout.write(formatResult(r) + '\n');
    process.stdout.write(`plot: ${file}\n`);
  }
}

/** `--serve`: bench/serve-bench.ts (its own module: nothing of the server loads otherwise). */
async function serveBench(path: string, o: OptionValues, progress: MultiBar): Promise<void> {
  const { benchServe, formatServe, parseClients, serveSvg } = await import('../bench/serve-bench.ts');
  const clients = parseClients(o.clients);
  let b: SingleBar | undefined;
  const r = await benchServe({
    checkpoint: path, model: o.model ?? o.preset, target: o.target, weights: o.weights, threads: o.threads, clients,
    maxTokens: o.decode, promptTokens: 16, requestsPerClient: 2 * o.repeat,
    onProgress: (phase, done, total) => { (b ??= progress.create(total, 0, { phase })).update(done, { phase }); b.setTotal(total); },
  });
  if (o.plot) { mkdirSync(dirname(resolve(o.plot)), { recursive: true }); writeFileSync(o.plot, await serveSvg(r)); }
  progress.stop();
  process.stdout.write(o.json ? JSON.stringify(r, null, 1) + '\n' : formatServe(r) + (o.plot ? `\nplot: ${o.plot}` : '') + '\n');
}
