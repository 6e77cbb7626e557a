/**
 * The runtime of a generated package (driver/emit-package.ts): a compiled model's files plus a
 * checkpoint become a running model, with no compiler. Portable: the host functions (platform.ts)
 * and the packaged targets' runtimes (targets/<name>/runtime.ts, in the registry's order) are handed in
 * by the generated entry module, which wraps the result in a class named after the model.
 * `target: 'auto'` takes the first target that can run here (WebGPU when `navigator.gpu` gives an
 * adapter, else WASM).
 */
import type { ModelConfig } from '../../kernels/config.ts';
import type { TargetModel } from '../../targets/backend.ts';
import type { ArtifactFiles, TargetRuntime } from '../../targets/target.ts';
import { inferConfig, openCheckpointBytes, validateCheckpoint, type Checkpoint } from '../checkpoint/reader.ts';
import { openCheckpointBlob } from '../checkpoint/blob.ts';
import { checkpointProvider } from '../checkpoint/provider.ts';
import { inputError, UserError } from '../../kernels/errors.ts';
import { Session } from '../session.ts';
import { parseWorldVocabBytes, type WorldTokenizer } from '../world-tokenizer.ts';
import type { Platform } from './platform.ts';

/** One compiled weight storage: per target, its artifact's files as URLs resolved against the entry module. */
export type VariantFiles = Record<string, Record<string, URL>>;

/** Which target runs the model: 'auto' = the first of the package's targets that can run here. */
export type PackageTarget = string;

/** What ran a loaded model, for display. */
export interface BackendInfo {
  target: string;
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
  /** 'auto' (default): the first of the package's targets that can run here (WebGPU when `navigator.gpu` gives an adapter, else WASM). */
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

/** The packaged targets' runtimes by name, in the order 'auto' tries them (the registry's). */
export type TargetRuntimes = Record<string, () => Promise<TargetRuntime>>;

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
    readonly backend: BackendInfo,
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


/** Read the package's files for the chosen weights, the vocabulary and the checkpoint, and load a target. */
export async function loadShared(
  platform: Platform,
  pkg: PackageDescription,
  checkpoint: Uint8Array | ArrayBuffer | string | Blob,
  o: PackageLoadOptions,
  runtimes: TargetRuntimes,
): Promise<SharedModel> {
  const names = Object.keys(pkg.variants);
  const weights = o.weights ?? names[0]!;
  if (!Object.hasOwn(pkg.variants, weights)) {
    throw new UserError(`${pkg.name}: weights '${weights}' were not compiled into this package (it has ${names.join(', ')})`);
  }
  const files = pkg.variants[weights]!;
  const targets = Object.keys(runtimes).filter((t) => files[t]);
  const want = o.target ?? 'auto';
  if (want !== 'auto' && !targets.includes(want))
    throw new UserError(`${pkg.name}: target '${String(want)}' is not one of auto, ${targets.join(', ')} (those compiled into this package)`);
  const readFiles = async (target: string): Promise<ArtifactFiles> => Object.fromEntries(await Promise.all(
    Object.entries(files[target]!).map(async ([f, url]) => [f, await platform.readAsset(url)] as const)));

  const [tokenizer, ckpt] = await Promise.all([
    loadVocab(platform, o.vocab),
    typeof checkpoint === 'string' ? platform.openCheckpoint(checkpoint)
      // a picked File (or one from the browser's cache): read with Blob.slice(), one weight at a time
      : checkpoint instanceof Uint8Array || checkpoint instanceof ArrayBuffer ? openCheckpointBytes('checkpoint', checkpoint)
      : openCheckpointBlob(checkpoint),
  ]);
  try {
    checkCheckpoint(ckpt, pkg.config, pkg.name);
    if (tokenizer && tokenizer.vocabSize > pkg.config.vocabSize) {
      throw new UserError(`vocabulary: ${tokenizer.vocabSize} token ids, but the model has ${pkg.config.vocabSize}`);
    }
    // 'auto': each target in turn, skipping those that cannot run here; why one was passed over becomes a note
    const skipped: string[] = [];
    const order = want === 'auto' ? targets : [want];
    for (const [i, name] of order.entries()) {
      const rt = await runtimes[name]!();
      const last = i === order.length - 1;
      const why = want === 'auto' && !last ? await rt.unavailable?.() : null;
      if (why) { skipped.push(why); continue; }
      try {
        const art = rt.open(await readFiles(name));
        const opened = await rt.openDevice?.({ threads: o.threads });
        let model: TargetModel;
        try {
          model = await rt.load(art, checkpointProvider(rt.plan(art), ckpt, o.onProgress), { threads: o.threads, relaxed: o.relaxed, opened, onProgress: o.onProgress });
        } catch (e) {
          opened?.release();
          throw e;
        }
        const d = rt.describe?.(model) ?? { description: rt.label };
        const notes = [...skipped.map((w) => `running ${rt.label}: ${w}`), ...(d.notes ?? [])];
        return new SharedModel(model, pkg.config, tokenizer, weights, { target: name, ...d, notes });
      } catch (e) {
        if (want !== 'auto' || last) throw e;
        skipped.push(`${rt.label} failed: ${(e as Error).message}`);
      }
    }
    throw new UserError(`${pkg.name}: no target to run on`);
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
