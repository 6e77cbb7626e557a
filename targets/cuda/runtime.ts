/**
 * The CUDA target's runtime: runs a CUDA artifact (model.cu's kernels as PTX + launch.json) through the
 * CUDA driver API (ffi.ts, koffi). No compiler is needed: the driver JITs the PTX for the GPU present.
 *
 * At load: the primary context of the device, the module from PTX, one device buffer `mem` (the f32
 * layout of targets/gpu/lower.ts: state | tokens | logits | activation arena) and one per weight buffer of
 * the artifact (encoded as the WGSL target encodes them: targets/gpu/encode.ts), one stream. A call
 * writes the tokens into mem (as f32), launches the program's steps in order on the stream (the grid of
 * each from T, the parameter words by value, T, mem and the weight pointers as arguments), and copies the
 * logits out. Decode (T = 1, every argument fixed) is captured once as a CUDA graph and replayed.
 *
 * The same code runs the CPU emulator: `library` names a libcuda-shaped library (targets/cuda/sim/ builds
 * one with the artifact's kernels compiled in; targets/cuda/sim/runtime.ts is the `cuda-sim` target).
 */
import { elems } from '../../kernels/program.ts';
import { UserError } from '../../kernels/errors.ts';
import type { KernelPlan } from '../../kernels/plan.ts';
import type { StateTensors, TargetModel, TargetOptions, WeightProvider } from '../backend.ts';
import { decodeRow } from '../gpu/formats.ts';
import { WeightEncoder } from '../gpu/encode.ts';
import {
  callQueue, guardDisposed, lifetime, checkCall, checkStateWrite, packBatchStates, unpackBatchStates, vocabOf, type ProgramName,
} from '../model-base.ts';
import type { TargetRuntime } from '../target.ts';
import {
  gridAt, openArtifact, paramBytes, type CudaArtifact, type CudaProgram, type HostEmbedLaunchStep, type LaunchKernelStep,
} from './artifact.ts';
import {
  ATTR, CudaError, FUNC_MAX_DYNAMIC_SHARED, openDriver, ptrArg, u32Arg, type CudaDriver, type DevicePtr,
} from './ffi.ts';

export interface CudaOptions extends TargetOptions {
  /** The driver library (default libcuda.so.1); the emulator's library for cuda-sim. */
  library?: string;
  /** Device ordinal (default 0). */
  ordinal?: number;
  /** Capture decode as a CUDA graph and replay it (default true). */
  graphs?: boolean;
}

export interface CudaRunStats {
  /** Kernel launches issued by the host (a graph replay counts once, as a graph launch). */
  launches: number;
  graphLaunches: number;
  /** Host-side copies (tokens in, logits out, host-gathered embeddings). */
  copies: number;
}

export interface CudaModel extends TargetModel {
  readonly driver: CudaDriver;
  readonly artifact: CudaArtifact;
  /** The device, in words (name, compute capability, memory). */
  readonly adapter: string;
  readonly stats: { last: CudaRunStats; total: CudaRunStats & { runs: number } };
  /** Device buffers: mem, and each artifact weight (index as in artifact.weights; null if kept on the host). */
  buffers(): { mem: { ptr: DevicePtr; bytes: number }; weights: ({ ptr: DevicePtr; bytes: number } | null)[] };
  /** Tests and debugging: any buffer a program declares, by name (activations at T rows). */
  readBuffer(program: ProgramName, name: string, T: number): Promise<Float32Array>;
  writeBuffer(program: ProgramName, name: string, data: Float32Array): Promise<void>;
}

/** Drivers by library path: loaded and initialised once per process. */
const drivers = new Map<string, CudaDriver>();

/** The driver, initialised, with a device: or a UserError saying which is missing. */
export function cudaDriver(library = 'libcuda.so.1'): CudaDriver {
  let d = drivers.get(library);
  if (d) return d;
  d = openDriver(library);
  try {
    d.init();
  } catch (e) {
    if (e instanceof CudaError) {
      const what = e.code === 100 ? 'no CUDA GPU' : e.code === 35 ? 'the CUDA driver is older than the runtime needs' : 'the CUDA driver failed to initialise';
      throw new UserError(`${what}: ${e.message}`);
    }
    throw e;
  }
  if (d.deviceCount() < 1) throw new UserError(`no CUDA GPU: ${library} reports no devices`);
  drivers.set(library, d);
  return d;
}

function describeDevice(d: CudaDriver, dev: number): string {
  const cc = `${d.attribute(dev, ATTR.COMPUTE_CAPABILITY_MAJOR)}.${d.attribute(dev, ATTR.COMPUTE_CAPABILITY_MINOR)}`;
  return `${d.deviceName(dev)} (sm ${cc}, ${(d.totalMem(dev) / 2 ** 30).toFixed(1)} GiB)`;
}

/** The PTX to load: the newest arch the device runs (the driver JITs older PTX forward). */
function pickPtx(art: CudaArtifact, major: number, minor: number): string | null {
  const have = Object.entries(art.ptx ?? {})
    .map(([arch, code]) => ({ sm: Number(/^sm_(\d+)$/.exec(arch)?.[1] ?? NaN), code }))
    .filter((p) => Number.isFinite(p.sm) && p.sm <= major * 10 + minor)
    .sort((a, b) => b.sm - a.sm);
  return have[0]?.code ?? null;
}

interface PreparedLaunch {
  step: LaunchKernelStep;
  fn: unknown;
  block: [number, number, number];
  sharedBytes: number;
  /** mem, params, T (patched per call), weights */
  args: Uint8Array[];
  T: Uint8Array;
}
interface PreparedProgram {
  program: CudaProgram;
  maxT: number;
  steps: (PreparedLaunch | HostEmbedLaunchStep)[];
  graph: { graph: unknown; exec: unknown } | null;
}

export async function loadCuda(art: CudaArtifact, weights: WeightProvider, opts: CudaOptions = {}): Promise<CudaModel> {
  const d = cudaDriver(opts.library);
  const dev = d.device(opts.ordinal ?? 0);
  const plan: KernelPlan = art.plan;
  const major = d.attribute(dev, ATTR.COMPUTE_CAPABILITY_MAJOR), minor = d.attribute(dev, ATTR.COMPUTE_CAPABILITY_MINOR);
  const adapter = describeDevice(d, dev);
  let image = pickPtx(art, major, minor);
  if (!image) {
    if (!d.sim)
      throw new UserError(
        `this CUDA artifact has no PTX the GPU (sm_${major}${minor}) can run (${Object.keys(art.ptx ?? {}).join(', ') || 'none: compiled without nvcc'}); compile it again where nvcc is installed`,
      );
    image = '// rwkvc-sim: the emulator runs the kernels compiled into its library\n';
  }

  const ctx = d.retainContext(dev);
  const owned: DevicePtr[] = [];
  let module: unknown = null, stream: unknown = null;
  const programs: Partial<Record<ProgramName, PreparedProgram>> = {};
  const release = () => {
    for (const p of Object.values(programs)) if (p?.graph) { d.destroyGraphExec(p.graph.exec); d.destroyGraph(p.graph.graph); }
    for (const p of owned.splice(0)) d.free(p);
    if (stream) d.destroyStream(stream);
    if (module) d.unloadModule(module);
    d.releaseContext(dev);
  };
  const alloc = (bytes: number, what: string) => {
    try {
      const p = d.alloc(Math.max(bytes, 4));
      owned.push(p);
      return p;
    } catch (e) {
      if (e instanceof CudaError && e.code === 2)
        throw new UserError(`the CUDA device ran out of memory loading the model (${what}, ${bytes} bytes): ${adapter}`);
      throw e;
    }
  };

  const weightBufs: ({ ptr: DevicePtr; bytes: number } | null)[] = art.weights.map(() => null);
  const hostTables = new Map<number, Uint8Array>();
  let mem: DevicePtr;
  const layout = art.layout;
  try {
    try {
      module = d.loadModule(image);
    } catch (e) {
      // 222: the PTX is newer than the driver can JIT (nvcc's CUDA version > the driver's)
      if (e instanceof CudaError && (e.code === 222 || e.code === 218))
        throw new UserError(`the CUDA driver cannot load this artifact's PTX (${e.codeName}): it was made by a newer nvcc than the driver supports; update the driver or compile with an older CUDA`);
      throw e;
    }
    const fns = art.functions.map((f) => {
      const h = d.getFunction(module, f.name);
      if (f.sharedBytes > 48 << 10) d.setFunctionAttribute(h, FUNC_MAX_DYNAMIC_SHARED, f.sharedBytes);
      return h;
    });
    stream = d.createStream();

    // Weights: device buffers for the ones launches read, host copies for host-gathered tables.
    const names: ProgramName[] = art.programs.batch ? ['decode', 'prefill', 'batch'] : ['decode', 'prefill'];
    const onDevice = new Set<number>(), onHost = new Set<number>();
    for (const n of names)
      for (const s of art.programs[n]!.steps) {
        if (s.kind === 'launch') s.weights.forEach((w) => onDevice.add(w));
        else onHost.add(s.table);
      }
    const enc = new WeightEncoder(plan, weights);
    for (const [i, w] of art.weights.entries()) {
      if (!onDevice.has(i) && !onHost.has(i)) continue;
      const bytes = enc.encode(w);
      if (bytes.byteLength !== w.bytes) throw new Error(`weight buffer ${i} encodes to ${bytes.byteLength} bytes, the artifact says ${w.bytes}`);
      if (onHost.has(i)) hostTables.set(i, bytes);
      if (onDevice.has(i)) {
        const p = alloc(bytes.byteLength, w.kind === 'rows' ? `weight ${w.weight}` : `vectors ${w.parts.join(', ')}`);
        d.upload(p, bytes);
        weightBufs[i] = { ptr: p, bytes: bytes.byteLength };
      }
    }
    enc.release();
    mem = alloc(layout.elems * 4, 'f32 state, logits and activations');
    d.memset(mem, 0, layout.elems * 4);

    const memArg = ptrArg(mem);
    for (const n of names) {
      const program = art.programs[n]!;
      const steps = program.steps.map((s): PreparedLaunch | HostEmbedLaunchStep => {
        if (s.kind !== 'launch') return s;
        const f = art.functions[s.fn];
        if (s.weights.length !== f.weightArgs) throw new Error(`${s.kernel}: ${s.weights.length} weights for ${f.name}, which takes ${f.weightArgs}`);
        const params = new Uint8Array(Math.max(4, f.paramBytes));
        params.set(paramBytes(s.params).subarray(0, params.length));
        const T = new Uint8Array(4);
        return {
          step: s, fn: fns[s.fn], block: f.block, sharedBytes: f.sharedBytes, T,
          args: [memArg, params, T, ...s.weights.map((w) => ptrArg(weightBufs[w]!.ptr))],
        };
      });
      programs[n] = { program, maxT: plan[n]!.maxT, steps, graph: null };
    }
  } catch (e) {
    release();
    throw e;
  }

  const zero = (): CudaRunStats => ({ launches: 0, graphLaunches: 0, copies: 0 });
  const stats = { last: zero(), total: { ...zero(), runs: 0 } };
  const vocab = vocabOf(plan);
  const life = lifetime();
  const serial = callQueue(life);
  const useGraphs = opts.graphs ?? true;
  const f32 = (n: number) => new Float32Array(n);

  const launch = (L: PreparedLaunch, T: number, last: CudaRunStats) => {
    new DataView(L.T.buffer).setUint32(0, T, true);
    d.launch(L.fn, { grid: gridAt(L.step.grid, T), block: L.block, sharedBytes: L.sharedBytes, args: L.args }, stream);
    last.launches++;
  };

  /** One call: tokens in, steps launched (decode: the graph), logits out. Callers hold `serial`. */
  const exec = (which: ProgramName, tokens: Int32Array): Float32Array => {
    checkCall(plan, which, tokens, vocab);
    const P = programs[which]!;
    const T = tokens.length;
    const last = zero();
    d.upload(mem + BigInt(layout.tokens * 4), Float32Array.from(tokens));
    last.copies++;
    const graphable = which === 'decode' && useGraphs && P.steps.every((s) => !('kind' in s));
    if (graphable) {
      if (!P.graph) {
        d.beginCapture(stream);
        const scratch = zero();
        try {
          for (const s of P.steps) launch(s as PreparedLaunch, 1, scratch);
        } catch (e) {
          try { d.endCapture(stream); } catch { /* the capture is void anyway */ }
          throw e;
        }
        const graph = d.endCapture(stream);
        P.graph = { graph, exec: d.instantiate(graph) };
      }
      d.graphLaunch(P.graph.exec, stream);
      last.graphLaunches++;
    } else {
      for (const s of P.steps) {
        if ('kind' in s) {
          // Gather the rows on the host, then copy them in at this point of the stream.
          d.synchronize(stream);
          const rows = f32(T * s.cols);
          const w = art.weights[s.table];
          if (w.kind !== 'rows') throw new Error(`${s.kernel}: host table is not a rows weight`);
          for (let t = 0; t < T; t++) decodeRow(w.fmt, hostTables.get(s.table)!, s.cols, w.rows, tokens[t], rows, t * s.cols);
          d.upload(mem + BigInt(s.out * 4), rows);
          last.copies++;
        } else launch(s, T, last);
      }
    }
    d.synchronize(stream);
    const out = P.program.output;
    let logits = f32(0);
    if (out) {
      logits = f32((out.rows === 'T' ? T : out.rows) * out.cols);
      d.download(logits, mem + BigInt(out.offset * 4));
      last.copies++;
    }
    stats.last = last;
    stats.total.launches += last.launches;
    stats.total.graphLaunches += last.graphLaunches;
    stats.total.copies += last.copies;
    stats.total.runs++;
    return logits;
  };

  const readRegion = (offset: number, n: number) => {
    const v = f32(n);
    d.synchronize(stream);
    d.download(v, mem + BigInt(offset * 4));
    return v;
  };
  const writeRegion = (offset: number, v: Float32Array) => {
    d.synchronize(stream);
    d.upload(mem + BigInt(offset * 4), v);
  };
  const bufferAt = (p: ProgramName, name: string) => {
    const P = programs[p];
    const o = P?.program.offsets[name];
    const decl = plan[p]?.buffers.find((b) => b.name === name);
    if (o === undefined || !decl) throw new Error(`the ${p} program has no buffer ${name}`);
    return { o, decl };
  };

  const batchSlots = Object.entries(layout.batchState).map(([name, r]) => ({ name, offset: r.offset, per: r.elems / (plan.batch?.maxT ?? 1) }));
  const model: CudaModel = {
    target: d.sim ? 'cuda-sim' : 'cuda',
    plan,
    maxTokens: plan.prefill.maxT,
    driver: d,
    artifact: art,
    adapter,
    stats,
    run: (which, tokens) => serial(() => exec(which, tokens)),
    ...(art.programs.batch
      ? {
          runBatch: (tokens: Int32Array, states: StateTensors[]) => serial(() => {
            packBatchStates(tokens, states, batchSlots, (s, b, v) => writeRegion(s.offset + b * s.per, v));
            const logits = exec('batch', tokens);
            return { logits, states: unpackBatchStates(tokens.length, batchSlots, (s, b) => readRegion(s.offset + b * s.per, s.per)) };
          }),
        }
      : {}),
    readState: () => serial(() => {
      // one download from the first state buffer to the end of the last (targets/gpu/lower.ts: in parts after mem)
      const slots = Object.values(layout.state);
      if (!slots.length) return {};
      const base = Math.min(...slots.map((r) => r.offset)), all = readRegion(base, Math.max(...slots.map((r) => r.offset + r.elems)) - base);
      return Object.fromEntries(Object.entries(layout.state).map(([name, r]) => [name, all.slice(r.offset - base, r.offset - base + r.elems)]));
    }),
    writeState: (state) => serial(() => {
      for (const [name, v] of Object.entries(state)) {
        const r = layout.state[name];
        if (!r) continue;
        checkStateWrite(name, r.elems, v);
        writeRegion(r.offset, v);
      }
    }),
    buffers: () => ({ mem: { ptr: mem, bytes: layout.elems * 4 }, weights: weightBufs }),
    readBuffer: (p, name, T) => serial(() => {
      const { o, decl } = bufferAt(p, name);
      return readRegion(o, elems(decl, T));
    }),
    writeBuffer: (p, name, data) => serial(() => writeRegion(bufferAt(p, name).o, data)),
    dispose() {
      release();
    },
  };
  void ctx;
  return guardDisposed(model, life);
}

export const runtime: TargetRuntime<CudaArtifact> = {
  label: 'CUDA',
  open: openArtifact,
  plan: (art) => art.plan,
  async unavailable() {
    try {
      cudaDriver();
      return null;
    } catch (e) {
      if (e instanceof UserError) return e.message;
      throw e;
    }
  },
  describe: (model) => ({ description: `CUDA: ${(model as CudaModel).adapter}`, adapter: (model as CudaModel).adapter }),
  load: (art, weights, opts = {}) => loadCuda(art, weights, opts as CudaOptions),
};
