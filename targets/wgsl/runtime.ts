/**
 * The WGSL target's runtime: loads a KernelPlan onto a WebGPU device and runs its programs. The same code
 * runs in Node (Dawn, from acquireGpu) and in a browser (navigator.gpu, or any device passed in).
 *
 * Everything is built once at load: the artifact's pre-rendered shaders, one
 * pipeline per distinct shader key, weight buffers, per-dispatch uniform slots and bind groups. A call
 * writes T into the Run uniform and the tokens into mem, encodes every dispatch of the program into one
 * command buffer (one compute pass), and copies the logits out through a mapped buffer. The state lives
 * in buffers of its own, one per state part of the layout (each fits a binding); reading and writing
 * the state are copies of those.
 */
import type { KernelPlan, Program } from '../../kernels/plan.ts';
import { elems } from '../../kernels/program.ts';
import { UserError } from '../../kernels/errors.ts';
import type { StateTensors, TargetModel, TargetOptions, WeightProvider } from '../backend.ts';
import type { OpenedDevice, TargetRuntime } from '../target.ts';
import { callQueue, guardDisposed, lifetime, checkCall, checkStateWrite, packBatchStates, unpackBatchStates, vocabOf, type ProgramName } from '../model-base.ts';
import { openWgslArtifact, type WgslArtifact } from './artifact.ts';
import { acquireGpu, type AcquiredGpu } from './device.ts';
import { decodeRow } from '../gpu/formats.ts';
import { WeightUploads, type UploadSizes } from './uploads.ts';
import {
  DEFAULT_LIMITS, lowerPlan, type DispatchStep, type HostEmbedStep, type Limits, type LoweredProgram,
} from '../gpu/lower.ts';
import { keyString, packParams, usesState, weightBindings, type ShaderKey } from '../gpu/keys.ts';

// WebGPU's flag values (the same in every implementation); spelled out so the runtime does not depend
// on the GPUBufferUsage / GPUMapMode globals, which Dawn for Node only installs on request.
const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
const SHADER_COMPUTE = 0x4;
const MAP_READ = 0x1;

export interface WgslOptions extends TargetOptions {
  /** Run on this device (its owner keeps it); default: acquireGpu(), released by dispose(). */
  device?: GPUDevice;
  /** Lower (never raise) the limits the device granted, e.g. to exercise the split paths. */
  limits?: Partial<Limits>;
  /** Gather embedding rows on the host even when the table fits one binding. */
  embedOnHost?: boolean;
  /** WGSL by pipeline key (the artifact's). */
  shaders?: Record<string, string>;
  /**
   * Progress through the load's long silent phases (phase, done, total): 'shaders' as each module is
   * compiled and checked, 'pipelines' as each compute pipeline is created (seconds each on SwiftShader).
   */
  onProgress?: (phase: string, done: number, total: number) => void;
  /** Bytes per weight write and between waits for the queue (uploads.ts; tests make them small). */
  upload?: UploadSizes;
}

export interface ShaderInfo {
  key: string;
  code: string;
  /** getCompilationInfo(), one `line:col type: message` per entry. */
  messages: string[];
}

export interface RunStats {
  dispatches: number;
  commandBuffers: number;
  /** Buffer copies encoded (host-gathered embeddings, the logits readback). */
  copies: number;
}

export interface WgslModel extends TargetModel {
  readonly device: GPUDevice;
  readonly limits: Limits;
  readonly shaders: ShaderInfo[];
  /** Bytes of weights uploaded into GPU buffers. */
  readonly weightBytes: number;
  /** What the last run() encoded, and the running totals. */
  readonly stats: { last: RunStats; total: RunStats & { runs: number } };
  /** Dispatches one call of a program encodes (the same for every T). */
  dispatchCount(program: ProgramName): number;
  /**
   * Diagnostics: one call of a program with each dispatch in a command buffer of its own, awaited, timed
   * on the host (wall ms per step, the device's queue otherwise idle). Much slower than run(); the state
   * advances as with run().
   */
  profile(program: ProgramName, tokens: Int32Array): Promise<{ kernel: string; key: string; ms: number }[]>;
  /** The lowered steps (for --emit and tests). */
  steps(program: ProgramName): readonly (DispatchStep | HostEmbedStep)[];
  /** Tests and debugging: write / read any buffer a program declares (activations at T rows). */
  writeBuffer(program: ProgramName, name: string, data: Float32Array): void;
  readBuffer(program: ProgramName, name: string, T: number): Promise<Float32Array>;
}


interface ProgramRt {
  program: Program;
  lowered: LoweredProgram;
  dispatches: { step: DispatchStep; pipeline: GPUComputePipeline; bindGroup: GPUBindGroup }[];
  /** Host-gathered embeddings: a staging buffer per step, copied into mem in command order. */
  staging: Map<HostEmbedStep, GPUBuffer>;
}

/** Load a rendered artifact on a device: the one way a WGSL model starts. */
export async function loadWgslArtifact(art: WgslArtifact, weights: WeightProvider, opts: WgslOptions = {}): Promise<WgslModel> {
  let acquired: AcquiredGpu | null = null;
  if (!opts.device) acquired = await acquireGpu();
  const o = { ...opts, shaders: { ...art.shaders, ...opts.shaders }, limits: capLimits(art.limits, opts.limits), embedOnHost: art.lowering.embedOnHost };
  try {
    return await load(art.plan, weights, o, opts.device ?? acquired!.device, acquired);
  } catch (e) {
    acquired?.release();
    throw e;
  }
}

const capLimits = (a: Limits, b: Partial<Limits> = {}): Partial<Limits> =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [k, Math.min(v, b[k as keyof Limits] ?? Infinity)]));

/** The WGSL target's run half (targets/target.ts). */
export const runtime: TargetRuntime<WgslArtifact> = {
  label: 'WebGPU',
  open: openWgslArtifact,
  plan: (art) => art.plan,
  /** In a page: is there an adapter? (In Node, Dawn is tried only when asked for by name.) */
  async unavailable() {
    const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator?.gpu;
    if (!gpu) return 'no WebGPU here (navigator.gpu is missing)';
    const adapter = await gpu.requestAdapter().catch(() => null);
    return adapter ? null : 'WebGPU gave no adapter';
  },
  describe(model) {
    const adapter = (model as { adapter?: string }).adapter ?? 'WebGPU';
    return { description: `WebGPU: ${adapter}`, adapter };
  },
  async openDevice(opts) {
    const own = (opts as WgslOptions).device;
    if (own) return { limits: { ...effectiveLimits(own) }, description: 'the caller\'s WebGPU device', release() {}, gpu: { device: own } as AcquiredGpu };
    const gpu = await acquireGpu();
    const i = gpu.info;
    const adapter = [i.vendor, i.architecture, i.description].filter(Boolean).join(' / ') || 'unknown adapter';
    return { limits: { ...effectiveLimits(gpu.device) }, description: `${adapter}${i.isSoftware ? ' (software)' : ''}`, release: () => gpu.release(), gpu };
  },
  async load(art, weights, opts = {}) {
    const opened = opts.opened as (OpenedDevice & { gpu: AcquiredGpu }) | undefined;
    const model = await loadWgslArtifact(art, weights, { ...(opts as WgslOptions), device: opened?.gpu.device ?? (opts as WgslOptions).device });
    if (!opened) return model;
    const release = model.dispose;
    let released = false;
    return Object.assign(model, { adapter: opened.description, dispose() { release(); if (!released) { released = true; opened.release(); } } });
  },
};

async function load(
  plan: KernelPlan, weights: WeightProvider, opts: WgslOptions, device: GPUDevice, acquired: AcquiredGpu | null,
): Promise<WgslModel> {
  const limits = effectiveLimits(device, opts.limits);
  const lowerOpts = { embedOnHost: opts.embedOnHost, device: 'WebGPU device' };
  const names: ProgramName[] = plan.batch ? ['decode', 'prefill', 'batch'] : ['decode', 'prefill'];
  const lowered = Object.fromEntries(names.map((n) => [n, lowerPlan(plan, plan[n]!, limits, lowerOpts)])) as Partial<Record<ProgramName, LoweredProgram>>;
  const layout = lowered.decode!.layout;
  const owned: GPUBuffer[] = [];
  const buffer = (size: number, usage: number, label: string) => {
    const b = device.createBuffer({ size: Math.max(16, Math.ceil(size / 16) * 16), usage, label });
    owned.push(b);
    return b;
  };

  const uploads = new WeightUploads(plan, weights, device, opts.upload);
  const destroyAll = () => { for (const b of owned) b.destroy(); uploads.destroy(); };
  const gpu = await scoped(device, destroyAll, () => `${uploads.bytes} bytes of weights`, async () => {
    // Shaders and pipelines, one per distinct key.
    const keys = new Map<string, ShaderKey>();
    for (const l of Object.values(lowered)) for (const s of l!.steps) if (s.kind === 'dispatch') keys.set(keyString(s.key), s.key);
    const shaders: ShaderInfo[] = [];
    const pipelines = new Map<string, Promise<GPUComputePipeline>>();
    let compiled = 0, created = 0;
    const progress = opts.onProgress;
    for (const [k, key] of keys) {
      const code = opts.shaders?.[k];
      if (code === undefined) throw new Error(`the WGSL artifact has no shader for pipeline key ${k} (rendered for other limits?)`);
      const module = device.createShaderModule({ code, label: key.kind });
      const messages = [...(await module.getCompilationInfo()).messages].map((m) => `${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
      shaders.push({ key: k, code, messages });
      if (messages.some((m) => / error: /.test(m))) throw new Error(`WGSL for ${k} does not compile:\n${messages.join('\n')}`);
      progress?.('shaders', ++compiled, keys.size);
      const p = cachedPipeline(device, code, () =>
        device.createComputePipelineAsync({ layout: pipelineLayout(device, weightBindings(key), usesState(key)), compute: { module, entryPoint: 'main' }, label: key.kind }));
      // counted as each is ready (they are created concurrently); a failure surfaces where it is awaited
      if (progress) p.then(() => progress('pipelines', ++created, keys.size), () => {});
      pipelines.set(k, p);
    }

    const mem = buffer(layout.memElems * 4, USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST, 'mem');
    const parts = layout.parts.map((p, i) => buffer(p.elems * 4, USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST, `state part ${i}`));
    const runUniform = buffer(16, USAGE.UNIFORM | USAGE.COPY_DST, 'run');
    const readback = buffer(Math.max(layout.outputElems, ...layout.parts.map((p) => p.elems)) * 4, USAGE.MAP_READ | USAGE.COPY_DST, 'readback');

    // Every dispatch's Params in one uniform buffer, each at an aligned offset.
    const all = names.flatMap((n) => lowered[n]!.steps).filter((s): s is DispatchStep => s.kind === 'dispatch');
    const align = device.limits.minUniformBufferOffsetAlignment;
    const packed = all.map((s) => packParams(s.key, s.params));
    const slot = Math.ceil(Math.max(...packed.map((p) => p.byteLength), 16) / align) * align;
    const paramBuf = buffer(Math.max(1, all.length) * slot, USAGE.UNIFORM | USAGE.COPY_DST, 'params');
    packed.forEach((p, i) => device.queue.writeBuffer(paramBuf, i * slot, p));

    // Every weight buffer first, weight by weight (a browser File's bytes are brought in for each).
    await uploads.upload(names.flatMap((n) => lowered[n]!.steps));

    // Bind groups, once per dispatch; staging buffers for host-gathered embeddings.
    const programs: Partial<Record<ProgramName, ProgramRt>> = {};
    for (const name of names) {
      const l = lowered[name]!;
      const rt: ProgramRt = { program: plan[name]!, lowered: l, dispatches: [], staging: new Map() };
      for (const s of l.steps) {
        if (s.kind === 'host_embed') {
          uploads.hostTable(s.table);
          rt.staging.set(s, buffer(rt.program.maxT * s.cols * 4, USAGE.COPY_SRC | USAGE.COPY_DST, `${s.kernel} staging`));
          continue;
        }
        const pipeline = await pipelines.get(keyString(s.key))!;
        const i = all.indexOf(s);
        const bindGroup = device.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          label: s.kernel,
          entries: [
            { binding: 0, resource: { buffer: mem } },
            { binding: 1, resource: { buffer: paramBuf, offset: i * slot, size: packed[i].byteLength } },
            { binding: 2, resource: { buffer: runUniform } },
            ...s.weights.map((w, j) => ({ binding: 3 + j, resource: { buffer: uploads.buffer(w) } })),
            ...(s.statePart === undefined ? [] : [{ binding: 3 + s.weights.length, resource: { buffer: parts[s.statePart] } }]),
          ],
        });
        rt.dispatches.push({ step: s, pipeline, bindGroup });
      }
      programs[name] = rt;
    }
    uploads.releaseSources();
    return { shaders, mem, parts, runUniform, readback, programs };
  });
  const { shaders, mem, parts, runUniform, readback, programs } = gpu;

  const life = lifetime();
  const serial = callQueue(life); // calls share mem and the readback buffer
  const zero = (): RunStats => ({ dispatches: 0, commandBuffers: 0, copies: 0 });
  const stats = { last: zero(), total: { ...zero(), runs: 0 } };
  const vocab = vocabOf(plan);

  /** The buffer an offset of the layout's address space lies in (mem or a state part), and the offset in it. */
  const locate = (offset: number): [GPUBuffer, number] => {
    if (offset < layout.memElems) return [mem, offset];
    const i = layout.parts.findIndex((p) => offset >= p.base && offset < p.base + p.elems);
    if (i < 0) throw new Error(`offset ${offset} is outside the model's memory`);
    return [parts[i], offset - layout.parts[i].base];
  };
  const writeMem = (offset: number, v: Float32Array) => {
    const [buf, at] = locate(offset);
    device.queue.writeBuffer(buf, at * 4, v.buffer, v.byteOffset, v.byteLength);
  };
  const readRegion = async (offset: number, n: number): Promise<Float32Array> => {
    const [buf, at] = locate(offset);
    const tmp = n * 4 > readback.size ? buffer(n * 4, USAGE.MAP_READ | USAGE.COPY_DST, 'read') : readback;
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(buf, at * 4, tmp, 0, n * 4);
    device.queue.submit([enc.finish()]);
    await tmp.mapAsync(MAP_READ, 0, n * 4);
    const out = new Float32Array(tmp.getMappedRange(0, n * 4).slice(0));
    tmp.unmap();
    if (tmp !== readback) { tmp.destroy(); owned.splice(owned.indexOf(tmp), 1); }
    return out;
  };

  const program = (which: ProgramName): ProgramRt => {
    const P = programs[which];
    if (!P) throw new UserError(`this plan was compiled without a ${which} program`);
    return P;
  };

  /** A host-kept embedding table: gather the tokens' rows on the host, then copy them into mem at this point of `enc`. */
  const hostEmbed = (P: ReturnType<typeof program>, s: Extract<ReturnType<typeof program>['lowered']['steps'][number], { kind: 'host_embed' }>, tokens: Int32Array, enc: GPUCommandEncoder) => {
    const T = tokens.length, stage = P.staging.get(s)!;
    const rows = new Float32Array(T * s.cols);
    const table = uploads.hostTable(s.table);
    for (let t = 0; t < T; t++) decodeRow(s.table.fmt, table, s.cols, s.table.rows, tokens[t], rows, t * s.cols);
    device.queue.writeBuffer(stage, 0, rows);
    enc.copyBufferToBuffer(stage, 0, mem, s.out * 4, rows.byteLength);
  };

  /** One call of a program: one command buffer, logits copied back. Callers hold `serial`. */
  const exec = async (which: ProgramName, tokens: Int32Array): Promise<Float32Array> => {
    checkCall(plan, which, tokens, vocab);
    const P = program(which);
    const T = tokens.length;
    const q = device.queue;
    q.writeBuffer(runUniform, 0, new Uint32Array([T, 0, 0, 0]));
    q.writeBuffer(mem, layout.tokens * 4, Float32Array.from(tokens));
    const last = zero();
    const enc = device.createCommandEncoder({ label: which });
    let pass: GPUComputePassEncoder | null = null;
    let d = 0;
    for (const s of P.lowered.steps) {
      if (s.kind === 'host_embed') {
        pass?.end();
        pass = null;
        hostEmbed(P, s, tokens, enc);
        last.copies++;
        continue;
      }
      const { step, pipeline, bindGroup } = P.dispatches[d++];
      pass ??= enc.beginComputePass({ label: which });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...step.grid(T));
      last.dispatches++;
    }
    pass?.end();
    const out = P.lowered.output;
    const n = out ? elems(out, T) : 0;
    if (n) { enc.copyBufferToBuffer(mem, layout.output * 4, readback, 0, n * 4); last.copies++; }
    q.submit([enc.finish()]);
    last.commandBuffers = 1;
    stats.last = last;
    stats.total.dispatches += last.dispatches;
    stats.total.copies += last.copies;
    stats.total.commandBuffers += 1;
    stats.total.runs++;
    if (!n) { await q.onSubmittedWorkDone(); return new Float32Array(0); }
    await readback.mapAsync(MAP_READ, 0, n * 4);
    const logits = new Float32Array(readback.getMappedRange(0, n * 4).slice(0));
    readback.unmap();
    return logits;
  };

  const run = (which: 'decode' | 'prefill', tokens: Int32Array) => serial(() => exec(which, tokens));

  const profile = (which: ProgramName, tokens: Int32Array) => serial(async () => {
    checkCall(plan, which, tokens, vocab);
    const P = program(which);
    const T = tokens.length;
    const q = device.queue;
    q.writeBuffer(runUniform, 0, new Uint32Array([T, 0, 0, 0]));
    q.writeBuffer(mem, layout.tokens * 4, Float32Array.from(tokens));
    await q.onSubmittedWorkDone();
    const out: { kernel: string; key: string; ms: number }[] = [];
    let d = 0;
    for (const s of P.lowered.steps) {
      const t = performance.now();
      const enc = device.createCommandEncoder({ label: which });
      if (s.kind === 'host_embed') hostEmbed(P, s, tokens, enc);
      else {
        const { step, pipeline, bindGroup } = P.dispatches[d++];
        const pass = enc.beginComputePass({ label: which });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(...step.grid(T));
        pass.end();
      }
      q.submit([enc.finish()]);
      await q.onSubmittedWorkDone();
      out.push({ kernel: s.kernel, key: s.kind === 'dispatch' ? keyString(s.key) : 'host_embed', ms: performance.now() - t });
    }
    return out;
  });

  /** Regions of state: each state part they lie in read once, whole; a region in mem on its own. */
  const readStates = async (regions: { offset: number; elems: number; part?: number }[]): Promise<Float32Array[]> => {
    const whole = new Map<number, Float32Array>();
    const out: Float32Array[] = [];
    for (const r of regions) {
      if (r.part === undefined) { out.push(await readRegion(r.offset, r.elems)); continue; }
      const P = layout.parts[r.part];
      if (!whole.has(r.part)) whole.set(r.part, await readRegion(P.base, P.elems));
      out.push(whole.get(r.part)!.slice(r.offset - P.base, r.offset - P.base + r.elems));
    }
    return out;
  };

  /** B sequences, one token each: sequence b's state goes in (and comes back) as row b of the batch state. */
  const runBatch = (tokens: Int32Array, states: StateTensors[]) => serial(async () => {
    program('batch');
    const slots = [...layout.batchState].map(([name, r]) => ({ name, per: r.elems / plan.batch!.maxT, offset: r.offset, part: r.part }));
    packBatchStates(tokens, states, slots, (s, b, v) => writeMem(s.offset + b * s.per, v));
    const logits = await exec('batch', tokens);
    const B = tokens.length;
    const rows = await readStates(slots.flatMap((s) => Array.from({ length: B }, (_, b) => ({ offset: s.offset + b * s.per, elems: s.per, part: s.part }))));
    const out = unpackBatchStates(B, slots, (s, b) => rows[slots.indexOf(s) * B + b]);
    return { logits, states: out };
  });

  const model: WgslModel = {
    target: 'wgsl',
    plan,
    maxTokens: plan.prefill.maxT,
    device,
    limits,
    shaders,
    weightBytes: uploads.bytes,
    stats,
    run,
    ...(plan.batch ? { runBatch } : {}),
    readState: () => serial(async () => {
      const names = [...layout.state.keys()];
      const read = await readStates([...layout.state.values()]);
      return Object.fromEntries(names.map((n, i) => [n, read[i]])) as StateTensors;
    }),
    writeState: (state) => serial(async () => {
      for (const [name, v] of Object.entries(state)) {
        const r = layout.state.get(name);
        if (!r) continue;
        checkStateWrite(name, r.elems, v);
        writeMem(r.offset, v);
      }
    }),
    profile,
    dispatchCount: (p) => program(p).dispatches.length,
    steps: (p) => program(p).lowered.steps,
    writeBuffer(p, name, data) {
      const o = program(p).lowered.offsets.get(name);
      if (o === undefined) throw new Error(`the ${p} program has no buffer ${name}`);
      writeMem(o, data);
    },
    readBuffer: (p, name, T) => serial(async () => {
      const o = program(p).lowered.offsets.get(name);
      const decl = program(p).program.buffers.find((b) => b.name === name);
      if (o === undefined || !decl) throw new Error(`the ${p} program has no buffer ${name}`);
      return readRegion(o, elems(decl, T));
    }),
    dispose() {
      destroyAll();
      acquired?.release();
    },
  };
  return guardDisposed(model, life);
}

/**
 * Run `build` inside validation and out-of-memory error scopes: a thrown error or one the device reports
 * destroys what was built so far, and the scopes are always popped (the device may be the caller's).
 */
async function scoped<R>(device: GPUDevice, destroy: () => void, what: () => string, build: () => Promise<R>): Promise<R> {
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  let result: R | undefined, thrown: unknown, failed = false;
  try {
    result = await build();
  } catch (e) {
    thrown = e;
    failed = true;
  }
  const oom = await device.popErrorScope();
  const invalid = await device.popErrorScope();
  if (failed || oom || invalid) destroy();
  if (failed) throw thrown;
  if (oom) throw new UserError(`the WebGPU device ran out of memory loading the model (${what()}): ${oom.message}`);
  if (invalid) throw new Error(`WebGPU validation failed while loading the model: ${invalid.message}`);
  return result!;
}

/** The device's limits, lowered by what the caller asked for. */
function effectiveLimits(device: GPUDevice, cap: Partial<Limits> = {}): Limits {
  const dl = device.limits as unknown as Record<string, number>;
  const out = {} as Limits;
  for (const k of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) out[k] = Math.min(dl[k] ?? DEFAULT_LIMITS[k], cap[k] ?? Infinity);
  return out;
}

// Pipelines by WGSL text, per device: a model loaded again (or another model with the same shapes) reuses
// them; compiling is the slow part of loading, on software Vulkan most of all.
const pipelineCache = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

function cachedPipeline(device: GPUDevice, code: string, make: () => Promise<GPUComputePipeline>): Promise<GPUComputePipeline> {
  let m = pipelineCache.get(device);
  if (!m) pipelineCache.set(device, (m = new Map()));
  let p = m.get(code);
  if (!p) {
    m.set(code, (p = make()));
    p.catch(() => m.delete(code));
  }
  return p;
}

const layouts = new WeakMap<GPUDevice, Map<string, GPUPipelineLayout>>();

/** mem, Params, Run, then n read-only weight bindings, then a state kernel's read_write state part (keys.ts). */
function pipelineLayout(device: GPUDevice, n: number, state: boolean): GPUPipelineLayout {
  let m = layouts.get(device);
  if (!m) layouts.set(device, (m = new Map()));
  let l = m.get(`${n}${state ? '+st' : ''}`);
  if (!l) {
    const bgl = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: SHADER_COMPUTE, buffer: { type: 'storage' } },
        { binding: 1, visibility: SHADER_COMPUTE, buffer: { type: 'uniform' } },
        { binding: 2, visibility: SHADER_COMPUTE, buffer: { type: 'uniform' } },
        ...Array.from({ length: n }, (_, i) => ({ binding: 3 + i, visibility: SHADER_COMPUTE, buffer: { type: 'read-only-storage' as const } })),
        ...(state ? [{ binding: 3 + n, visibility: SHADER_COMPUTE, buffer: { type: 'storage' as const } }] : []),
      ],
    });
    m.set(`${n}${state ? '+st' : ''}`, (l = device.createPipelineLayout({ bindGroupLayouts: [bgl] })));
  }
  return l;
}
