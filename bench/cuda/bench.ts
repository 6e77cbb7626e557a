/**
 * The CUDA target's benchmark (`rwkvc bench --target cuda`, and the device check's table): decode and
 * prefill through the real runtime, against the HBM bandwidth a 16-byte-vector copy kernel measures on the
 * same device in the same run. Decode rounds take turns with copy passes (as the WASM bench does with its
 * read probe), so the limit and the speed come from the same minutes of the device's clocks and neighbours.
 */
import type { KernelPlan } from '../../kernels/plan.ts';
import type { WeightProvider } from '../../targets/backend.ts';
import type { CudaArtifact } from '../../targets/cuda/artifact.ts';
import { emitCuda } from '../../targets/cuda/codegen.ts';
import { ptrArg, type CudaDriver } from '../../targets/cuda/ffi.ts';
import { compilePtx } from '../../targets/cuda/nvcc.ts';
import { loadCuda, type CudaModel } from '../../targets/cuda/runtime.ts';
import { loadCudaSim } from '../../targets/cuda/sim/runtime.ts';

const COPY_CU = `
extern "C" __global__ void copy16(const uint4* __restrict__ a, uint4* __restrict__ b, unsigned long long n) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n; i += (unsigned long long)gridDim.x * blockDim.x) b[i] = a[i];
}`;

/** A device-to-device copy of 1 GiB, `reps` times: bytes read + written per second. */
export async function copyBandwidth(d: CudaDriver, reps = 20): Promise<number> {
  d.retainContext(0);
  const bytes = 1 << 30, n = bytes / 16;
  const fn = d.getFunction(d.loadModule(await compilePtx(COPY_CU, 'sm_80')), 'copy16');
  const a = d.alloc(bytes), b = d.alloc(bytes);
  try {
    d.memset(a, 1, bytes);
    const nArg = new Uint8Array(8);
    new DataView(nArg.buffer).setBigUint64(0, BigInt(n), true);
    const launch = () => d.launch(fn, { grid: [132 * 8, 1, 1], block: [512, 1, 1], sharedBytes: 0, args: [ptrArg(a), ptrArg(b), nArg] }, null);
    launch();
    d.synchronize(null);
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) launch();
    d.synchronize(null);
    return (2 * bytes * reps) / ((performance.now() - t0) / 1000);
  } finally {
    d.free(a);
    d.free(b);
    d.releaseContext(0);
  }
}

/** Bytes of weights one decode token reads: every decode weight buffer, of the embedding one row only. */
export function decodeWeightBytes(art: CudaArtifact): number {
  const used = new Set(art.programs.decode.steps.flatMap((s) => (s.kind === 'launch' ? s.weights : [])));
  const embed = art.programs.decode.steps.find((s) => s.kind === 'launch' && art.functions[s.fn].name.includes('embed'));
  const embedW = embed?.kind === 'launch' ? embed.weights[0] : -1;
  let total = 0;
  for (const i of used) {
    const w = art.weights[i];
    total += i === embedW && w.kind === 'rows' ? w.bytes / w.rows : w.bytes;
  }
  return total;
}

export interface CudaBenchOptions {
  plan: KernelPlan;
  weights: WeightProvider;
  /** Timed decode tokens (median of per-token times; at least 64). */
  decodeTokens?: number;
  prefillTokens?: number;
  /** Decode rounds, each after a copy pass (default 8). */
  rounds?: number;
  /** Run on the CPU emulator (no bandwidth limit: what the CLI path does, checked without a GPU). */
  sim?: boolean;
}

export interface CudaBenchResult {
  adapter: string;
  decode: { tokensPerSecond: number; msPerToken: number; weightBytesPerToken: number; achievedGBs: number; bandwidthFraction?: number; graphLaunchesPerToken: number };
  prefill: { tokens: number; tokensPerSecond: number; launchesPerCall: number };
  limits: { bandwidthGBs?: number };
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];

export async function benchCuda(o: CudaBenchOptions): Promise<CudaBenchResult> {
  const art = emitCuda(o.plan, o.sim ? {} : { ptx: ['sm_80'] });
  const m: CudaModel = o.sim ? await loadCudaSim(art, o.weights) : await loadCuda(art, o.weights);
  try {
    const V = o.plan.config.vocabSize;
    let next = 0;
    const tok = (n: number) => Int32Array.from({ length: n }, () => (next++ * 7919) % V);
    const rounds = o.rounds ?? 8, perRound = Math.max(8, Math.ceil(Math.max(64, o.decodeTokens ?? 64) / rounds));
    for (let i = 0; i < 4; i++) await m.run('decode', tok(1));
    const times: number[] = [], bandwidth: number[] = [];
    let graphLaunches = 0;
    for (let r = 0; r < rounds; r++) {
      if (!o.sim) bandwidth.push(await copyBandwidth(m.driver, 4));
      for (let i = 0; i < perRound; i++) {
        const t0 = performance.now();
        await m.run('decode', tok(1));
        times.push(performance.now() - t0);
        graphLaunches += m.stats.last.graphLaunches;
      }
    }
    const ms = median(times), bytes = decodeWeightBytes(art), bw = bandwidth.length ? median(bandwidth) : undefined;
    const achieved = bytes / (ms / 1000);
    const P = Math.min(o.prefillTokens ?? 512, 1 << 20);
    const prompt = tok(P);
    const prefillOnce = async () => {
      const t0 = performance.now();
      let launches = 0;
      for (let i = 0; i < P; i += m.maxTokens) {
        await m.run('prefill', prompt.subarray(i, Math.min(P, i + m.maxTokens)));
        launches += m.stats.last.launches;
      }
      return { s: (performance.now() - t0) / 1000, launches };
    };
    await prefillOnce();
    const p = await prefillOnce();
    return {
      adapter: m.adapter,
      decode: {
        tokensPerSecond: 1000 / ms, msPerToken: ms, weightBytesPerToken: bytes, achievedGBs: achieved / 1e9,
        ...(bw ? { bandwidthFraction: achieved / bw } : {}), graphLaunchesPerToken: graphLaunches / times.length,
      },
      prefill: { tokens: P, tokensPerSecond: P / p.s, launchesPerCall: p.launches / Math.ceil(P / m.maxTokens) },
      limits: bw ? { bandwidthGBs: bw / 1e9 } : {},
    };
  } finally {
    m.dispose();
  }
}
