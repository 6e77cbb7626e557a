/**
 * The runtime of a generated package (compiler/emit-package.ts): a compiled model's files plus a
 * checkpoint become a running model, with no compiler. Portable: the host functions (platform.ts)
 * and the targets' loaders (wasm.ts, wgsl.ts) are handed in by the generated entry module, which wraps
 * the result in a class named after the model. `target: 'auto'` picks WebGPU when `navigator.gpu` gives
 * an adapter, else WASM.
 */
import type { ModelConfig } from '../../kernels/config.ts';
import type { KernelPlan } from '../../kernels/plan.ts';
import { materializeWeight } from '../../kernels/weights.ts';
import type { TargetModel, WeightProvider } from '../../targets/backend.ts';
import { inferConfig, openCheckpointBytes, validateCheckpoint, type Checkpoint } from '../checkpoint/reader.ts';
import { inputError, UserError } from '../../kernels/errors.ts';
import { Session } from '../session.ts';
import { parseWorldVocabBytes, type WorldTokenizer } from '../world-tokenizer.ts';
import type { Platform } from './platform.ts';

/** One compiled weight storage: its files, as URLs resolved against the entry module. */
export interface VariantFiles {
  wasm: URL;
  wasmRelaxed?: URL;
  layout: URL;
  /** The WGSL target: plan and pre-rendered shaders (wgsl.json). */
  wgsl?: URL;
}

/** Which target runs the model: 'auto' = WebGPU when `navigator.gpu` gives an adapter, else WASM. */
export type PackageTarget = 'auto' | 'wgsl' | 'wasm';

/** What ran a loaded model, for display. */
export interface BackendInfo {
  target: 'wasm' | 'wgsl';
  /** e.g. "WASM relaxed-SIMD, 4 threads" or the WebGPU adapter "google / swiftshader / SwiftShader Device (software)". */
  description: string;
  /** WASM threads running. */
  threads?: number;
  /** The WebGPU adapter. */
  adapter?: string;
  /** Why it runs on less than was asked for (WASM instead of WebGPU, fewer threads), when it does. */
  notes: string[];
}

export interface PackageDescription {
  /** The package name, for messages. */
  name: string;
  /** The config it was compiled for; a checkpoint must have exactly these shapes. */
  config: ModelConfig;
  /** Weight storage → its compiled files; the first is the default. */
  variants: Record<string, VariantFiles>;
}

export interface PackageLoadOptions {
  /** 'auto' (default): WebGPU when `navigator.gpu` gives an adapter (and the package has WGSL), else WASM. */
  target?: PackageTarget;
  /** WASM worker threads (default: every core). */
  threads?: number;
  /** Which compiled weight storage to use (default: the first the package was compiled with). */
  weights?: string;
  /** The World vocabulary (rwkv_vocab_v20230424.txt) as a path (Node) or URL (browser), or its bytes; needed for text. */
  vocab?: string | Uint8Array;
  /** Use the relaxed-SIMD (FMA) module when the engine supports it (default true). */
  relaxed?: boolean;
  /** Progress while loading (phase, done, total). */
  onProgress?: (phase: string, done: number, total: number) => void;
}

/** The compiled files of one variant, read. */
export interface CompiledAssets {
  wasm: Uint8Array<ArrayBuffer>;
  wasmRelaxed?: Uint8Array<ArrayBuffer>;
  layout: unknown;
}

/** A target's loader: the compiled files, and weights for the plan they hold, to a running model. */
export type TargetLoader<A = CompiledAssets> = (
  assets: A,
  weightsFor: (plan: KernelPlan) => WeightProvider,
  o: { threads?: number; relaxed?: boolean },
) => Promise<TargetModel>;

/** A checkpoint's shapes must be those the package was compiled for; then every tensor is checked. */
export function checkCheckpoint(ckpt: Checkpoint, config: ModelConfig, pkgName: string): void {
  const found = inferConfig(ckpt);
  const differ = (Object.keys(config) as (keyof ModelConfig)[]).filter((k) => found[k] !== config[k]);
  if (differ.length) {
    const show = (c: ModelConfig) => differ.map((k) => `${k} ${c[k]}`).join(', ');
    throw inputError(ckpt.path, undefined, `${pkgName} was compiled for ${show(config)}, but this checkpoint has ${show(found)}`);
  }
  validateCheckpoint(ckpt, config);
}

/** Each plan weight from the checkpoint, transformed as the plan declares. */
export function checkpointWeights(plan: KernelPlan, ckpt: Checkpoint, onProgress?: PackageLoadOptions['onProgress']): WeightProvider {
  let done = 0;
  return (d) => {
    const v = materializeWeight(d.source, (n) => ckpt.readF32(n));
    onProgress?.('weights', ++done, plan.weights.length);
    return v;
  };
}

/**
 * A loaded model shared by a sequence and its forks. The target (its memory and threads) is freed when
 * the last of them is disposed.
 */
export class SharedModel {
  private users = 1;

  constructor(
    readonly target: TargetModel,
    readonly config: ModelConfig,
    readonly tokenizer: WorldTokenizer | undefined,
    readonly weights: string,
    readonly backend: BackendInfo = describeBackend(target, []),
  ) {}

  get disposed(): boolean {
    return this.users === 0;
  }

  /** A new Session on this model (zero state), or throws when it was disposed. */
  session(): Session {
    this.check();
    return new Session(this.target, this.config, this.tokenizer);
  }

  retain(): this {
    this.check();
    this.users++;
    return this;
  }

  release(): void {
    if (this.users === 0) return;
    if (--this.users === 0) this.target.dispose();
  }

  check(): void {
    if (this.users === 0) throw new UserError('this model was disposed');
  }
}

const utf8 = new TextDecoder();

/** The targets' loaders the entry hands in (a bare function: WASM only). */
export interface TargetLoaders {
  wasm: TargetLoader;
  /** Takes the parsed wgsl.json. */
  wgsl?: TargetLoader<unknown>;
}

/** What ran: WASM threads and SIMD variant, or the WebGPU adapter (see wasm.ts / wgsl.ts). */
export function describeBackend(target: TargetModel, notes: string[]): BackendInfo {
  if (target.target === 'wgsl') {
    const adapter = (target as { adapter?: string }).adapter ?? 'WebGPU';
    return { target: 'wgsl', description: `WebGPU: ${adapter}`, adapter, notes };
  }
  const w = target as { threads?: number; variant?: string; threadNote?: string };
  const threads = w.threads ?? 1;
  return {
    target: 'wasm',
    description: `WASM ${w.variant === 'relaxed' ? 'relaxed-SIMD (FMA)' : 'SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}`,
    threads,
    notes: w.threadNote ? [...notes, w.threadNote] : notes,
  };
}

/** For 'auto': why WebGPU is not used here, or null when an adapter is there. */
async function noWebGpu(): Promise<string | null> {
  const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator?.gpu;
  if (!gpu) return 'no WebGPU here (navigator.gpu is missing)';
  const adapter = await gpu.requestAdapter().catch(() => null);
  return adapter ? null : 'WebGPU gave no adapter';
}

/** Read the package's files for the chosen weights, the vocabulary and the checkpoint, and load the target. */
export async function loadShared(
  platform: Platform,
  pkg: PackageDescription,
  checkpoint: Uint8Array | ArrayBuffer | string,
  o: PackageLoadOptions,
  loaders: TargetLoader | TargetLoaders,
): Promise<SharedModel> {
  const { wasm: loader, wgsl: wgslLoader } = typeof loaders === 'function' ? { wasm: loaders, wgsl: undefined } : loaders;
  const want = o.target ?? 'auto';
  if (want !== 'auto' && want !== 'wgsl' && want !== 'wasm') throw new UserError(`${pkg.name}: target '${String(want)}' is not one of auto, wgsl, wasm`);
  const names = Object.keys(pkg.variants);
  const weights = o.weights ?? names[0]!;
  if (!Object.hasOwn(pkg.variants, weights)) {
    throw new UserError(`${pkg.name}: weights '${weights}' were not compiled into this package (it has ${names.join(', ')})`);
  }
  const files = pkg.variants[weights]!;
  const hasWgsl = !!(files.wgsl && wgslLoader);
  if (want === 'wgsl' && !hasWgsl) throw new UserError(`${pkg.name}: the WGSL target was not compiled into this package`);
  const notes: string[] = [];
  const whyNot = want === 'auto' ? (hasWgsl ? await noWebGpu() : 'this package has no WGSL target') : null;
  const useWgsl = want === 'wgsl' || (want === 'auto' && !whyNot);
  if (whyNot) notes.push(`running WASM: ${whyNot}`);
  const json = (url: URL) => platform.readAsset(url).then((b) => JSON.parse(utf8.decode(b)) as unknown);
  const readWasm = async (): Promise<CompiledAssets> => {
    const [wasm, wasmRelaxed, layout] = await Promise.all([
      platform.readAsset(files.wasm), files.wasmRelaxed ? platform.readAsset(files.wasmRelaxed) : undefined, json(files.layout),
    ]);
    return { wasm, wasmRelaxed, layout };
  };
  const [assets, tokenizer] = await Promise.all([useWgsl ? json(files.wgsl!) : readWasm(), loadVocab(platform, o.vocab)]);
  const ckpt = typeof checkpoint === 'string' ? await platform.openCheckpoint(checkpoint) : openCheckpointBytes('checkpoint', checkpoint);
  try {
    checkCheckpoint(ckpt, pkg.config, pkg.name);
    if (tokenizer && tokenizer.vocabSize > pkg.config.vocabSize) {
      throw new UserError(`vocabulary: ${tokenizer.vocabSize} token ids, but the model has ${pkg.config.vocabSize}`);
    }
    const weightsFor = (plan: KernelPlan) => checkpointWeights(plan, ckpt, o.onProgress);
    const wasmOptions = { threads: o.threads, relaxed: o.relaxed };
    let target: TargetModel | undefined;
    if (useWgsl) {
      try {
        target = await wgslLoader!(assets, weightsFor, {});
      } catch (e) {
        if (want === 'wgsl') throw e;
        notes.push(`running WASM: WebGPU failed: ${(e as Error).message}`);
      }
    }
    target ??= await loader(useWgsl ? await readWasm() : (assets as CompiledAssets), weightsFor, wasmOptions);
    return new SharedModel(target, pkg.config, tokenizer, weights, describeBackend(target, notes));
  } finally {
    ckpt.close();
  }
}

async function loadVocab(platform: Platform, vocab: string | Uint8Array | undefined): Promise<WorldTokenizer | undefined> {
  if (vocab === undefined) return undefined;
  if (typeof vocab === 'string') return parseWorldVocabBytes(await platform.readFile(vocab), vocab);
  return parseWorldVocabBytes(vocab, 'vocab');
}

/**
 * One token for each of several sequences of one model: through the target's batch program when it
 * has one, else one decode after another (the same numbers, without the batching speed-up).
 */
export async function decodeBatch(sessions: readonly Session[], tokens: readonly number[]): Promise<Float32Array[]> {
  if (sessions.length !== tokens.length) throw new UserError(`decodeBatch: ${sessions.length} sequences but ${tokens.length} tokens`);
  if (!sessions.length) return [];
  const model = sessions[0]!.model;
  if (sessions.some((s) => s.model !== model)) throw new UserError('decodeBatch: all sequences must come from one loaded model (load once, then fork)');
  if (new Set(sessions).size !== sessions.length) throw new UserError('decodeBatch: a sequence appears twice');
  if (model.runBatch && (model.plan?.batch?.maxT ?? 0) > 0) return Session.decodeBatch([...sessions], [...tokens]);
  const out: Float32Array[] = [];
  for (let i = 0; i < sessions.length; i++) out.push(await sessions[i]!.decode(tokens[i]!));
  return out;
}
