/**
 * The browser demo (index.html): a package compiled by `rwkvc compile … --emit package` plus a checkpoint
 * the user picks, on WebGPU when there is an adapter and WASM otherwise; tokens stream into the page with
 * prefill and decode tokens/s. Served as TypeScript transpiled on the fly by serve.ts (or any bundler).
 *
 * For tests the page keeps its state on `window.rwkvcDemo`: the logits after the prompt, the generated
 * ids, the rates and the backend.
 *
 * The checkpoint is handed to the package as the picked File (or the cached one): the package reads it with
 * Blob.slice(), one weight at a time, so a 6 GB checkpoint is never one ArrayBuffer in the page.
 *
 * The WASM thread count defaults to one per 16 MiB of weights a token streams (threads.ts: on small models
 * more threads are slower); the field overrides it. The checkpoint and vocabulary last loaded stay in the
 * browser (the package's runtime/package/browser-cache.js: OPFS, else IndexedDB), so after a reload Load works without picking them again.
 */
import { autoThreads, bytesPerToken, type PlanWeights } from './threads.ts';

/** What the demo uses of a generated package's entry (index.d.ts has the full, model-specific types). */
interface Backend { target: 'wasm' | 'wgsl'; description: string; threads?: number; adapter?: string; notes: string[] }
interface Model {
  readonly vocabSize: number;
  readonly backend: Backend;
  /** The weight storage running (f32, bf16, f16, int8, …). */
  readonly weights: string;
  prefill(tokens: ArrayLike<number>): Promise<Float32Array>;
  decode(token: number): Promise<Float32Array>;
  tokenize(text: string): number[];
  detokenize(ids: readonly number[]): string;
  readonly state: { reset(): Promise<void> };
  dispose(): void;
}
interface LoadOptions {
  target?: 'auto' | 'wgsl' | 'wasm';
  threads?: number;
  vocab?: Uint8Array;
  onProgress?: (phase: string, done: number, total: number) => void;
}
interface ModelClass { name: string; config: Record<string, number>; load(checkpoint: Blob, o?: LoadOptions): Promise<Model> }
interface Cached { name: string; size: number; where: 'OPFS' | 'IndexedDB' }
/** The package's browser cache (runtime/package/browser-cache.ts). */
interface BrowserCache {
  store(slot: string, name: string, blob: Blob): Promise<Cached>;
  peek(slot: string): Promise<Cached | null>;
  read(slot: string): Promise<{ name: string; file: Blob; where: Cached['where'] } | null>;
  forget(): Promise<void>;
}
let cache: BrowserCache;
interface Sampling { temperature?: number; topP?: number }
interface SamplerModule {
  sample(logits: Float32Array, o: Sampling, rng: () => number): number;
  createRng(seed: number): () => number;
}

export interface DemoState {
  state: 'idle' | 'loading' | 'ready' | 'generating' | 'done' | 'error';
  error?: string;
  /** The package's name, once its module is imported. */
  package?: string;
  backend?: Backend;
  /** The weight storage the loaded model runs with. */
  weights?: string;
  /** Weights a decode token streams (the package's default storage), and the thread count that gives. */
  threads?: { bytesPerToken: number; auto: number; asked?: number };
  /** What the browser holds from an earlier load. */
  cached: { checkpoint?: Cached; vocab?: Cached };
  /** The last load's progress: [done, total] per phase ('weights'; 'shaders' and 'pipelines' on WebGPU). */
  progress?: Record<string, [number, number]>;
  /** Where the last load's checkpoint came from. */
  checkpointFrom?: 'file' | 'cache';
  /** The last load's time in ms (from Load to ready). */
  loadMs?: number;
  promptIds?: number[];
  /** The logits after the last prompt token. */
  logitsAfterPrompt?: number[];
  generated: number[];
  prefill?: { tokens: number; ms: number; tokensPerSecond: number };
  decode?: { tokens: number; ms: number; tokensPerSecond: number };
}

const demo: DemoState = { state: 'idle', generated: [], cached: {} };
(window as unknown as { rwkvcDemo: DemoState }).rwkvcDemo = demo;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  pkg: $('package'), checkpoint: $<HTMLInputElement>('checkpoint'), vocab: $<HTMLInputElement>('vocab'),
  target: $<HTMLSelectElement>('target'), threads: $<HTMLInputElement>('threads'), load: $<HTMLButtonElement>('load'),
  threadsInfo: $('threads-info'), cached: $('cached'), forget: $<HTMLButtonElement>('forget'), weights: $('weights'),
  keep: $<HTMLInputElement>('keep'), progress: $<HTMLProgressElement>('progress'),
  prompt: $<HTMLTextAreaElement>('prompt'), maxTokens: $<HTMLInputElement>('max-tokens'), temperature: $<HTMLInputElement>('temperature'),
  topP: $<HTMLInputElement>('top-p'), generate: $<HTMLButtonElement>('generate'), stop: $<HTMLButtonElement>('stop'),
  status: $('status'), backend: $('backend'), notes: $('notes'), prefillTps: $('prefill-tps'), prefillInfo: $('prefill-info'),
  decodeTps: $('decode-tps'), decodeInfo: $('decode-info'), output: $('output'), ids: $('ids'),
};

const pkgUrl = (window as unknown as { RWKVC_PACKAGE: string }).RWKVC_PACKAGE;
let Pkg: ModelClass;
let sampler: SamplerModule;
let model: Model | null = null;
let hasVocab = false;
let stopRequested = false;

function status(text: string, error = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', error);
}

function fail(e: unknown): void {
  const msg = (e as Error)?.message ?? String(e);
  demo.state = 'error';
  demo.error = msg;
  status(msg, true);
  console.error(e);
}

/** Let the page repaint between tokens (a resolved await alone never yields to rendering). */
const nextFrame = () => new Promise<void>((r) => { const c = new MessageChannel(); c.port1.onmessage = () => r(); c.port2.postMessage(0); });

async function init(): Promise<void> {
  const entry = (await import(/* @vite-ignore */ new URL('index.js', pkgUrl).href)) as Record<string, unknown>;
  Pkg = Object.values(entry).find((v): v is ModelClass => typeof v === 'function' && typeof (v as unknown as ModelClass).load === 'function')!;
  if (!Pkg) throw new Error(`${pkgUrl}index.js exports no model class`);
  sampler = (await import(/* @vite-ignore */ new URL('runtime/sampler.js', pkgUrl).href)) as SamplerModule;
  cache = ((await import(/* @vite-ignore */ new URL('runtime/package/browser-cache.js', pkgUrl).href)) as { openBrowserCache(name: string): BrowserCache }).openBrowserCache('rwkvc-demo');
  const c = Pkg.config;
  const name = await fetch(new URL('package.json', pkgUrl)).then((r) => r.json() as Promise<{ name: string }>).then((j) => j.name, () => Pkg.name);
  ui.pkg.textContent = `package: ${name} (${Pkg.name}) from ${pkgUrl}: ${c.nLayer} layers × ${c.nEmbd}, vocabulary ${c.vocabSize}` +
    ` · ${self.crossOriginIsolated ? 'cross-origin isolated (WASM threads available)' : 'not cross-origin isolated: WASM runs 1 thread'}` +
    ` · ${'gpu' in navigator ? 'WebGPU present' : 'no WebGPU'}`;
  // the default plan's weights give the thread count; a package without plan.json leaves it at 1
  const plan = await fetch(new URL('plan.json', pkgUrl)).then((r) => (r.ok ? (r.json() as Promise<PlanWeights>) : null), () => null);
  const bytes = plan ? bytesPerToken(plan) : 0;
  demo.threads = { bytesPerToken: bytes, auto: autoThreads(bytes, navigator.hardwareConcurrency || 1, self.crossOriginIsolated) };
  ui.threads.placeholder = `auto: ${demo.threads.auto}`;
  ui.threadsInfo.textContent = `auto: ${demo.threads.auto} (${mib(bytes)} of weights per token, one thread per 16 MiB` +
    `, ${navigator.hardwareConcurrency || 1} cores${self.crossOriginIsolated ? '' : ', no workers: not cross-origin isolated'})`;
  await showCached();
  demo.package = name;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Show what the browser has cached (and enable "Forget"). */
async function showCached(): Promise<void> {
  const [checkpoint, vocab] = await Promise.all([cache.peek('checkpoint'), cache.peek('vocab')]).catch(() => [null, null]);
  demo.cached = { ...(checkpoint && { checkpoint }), ...(vocab && { vocab }) };
  ui.cached.textContent = checkpoint
    ? `cached in this browser (${checkpoint.where}): ${checkpoint.name} (${mib(checkpoint.size)})${vocab ? ` and ${vocab.name}` : ''}; Load uses it when no file is picked`
    : 'no cached model';
  ui.forget.disabled = !checkpoint && !vocab;
}

async function keep(checkpoint: File, vocab: File | undefined): Promise<void> {
  ui.cached.textContent = `keeping ${checkpoint.name} in this browser…`;
  try {
    await cache.store('checkpoint', checkpoint.name, checkpoint);
    if (vocab) await cache.store('vocab', vocab.name, vocab);
  } catch (e) {
    console.warn(`could not cache the checkpoint: ${(e as Error).message}`);
  }
  await showCached();
}

async function forgetCached(): Promise<void> {
  try {
    await cache.forget();
    await showCached();
    status('cached model forgotten');
  } catch (e) {
    fail(e);
  }
}

async function load(): Promise<void> {
  const picked = ui.checkpoint.files?.[0];
  const cached = picked ? null : await cache.read('checkpoint').catch(() => null);
  if (!picked && !cached) return status('Pick a checkpoint (.pth or .safetensors) first.', true);
  const file = picked ?? cached!.file;
  const fileName = picked?.name ?? cached!.name;
  ui.load.disabled = ui.generate.disabled = true;
  demo.state = 'loading';
  delete demo.error;
  delete demo.progress;
  delete demo.loadMs;
  model?.dispose();
  model = null;
  ui.progress.hidden = false;
  ui.progress.removeAttribute('value');
  try {
    status(`opening ${fileName} (${mib(file.size)}${cached ? `, cached in ${cached.where}` : ''})…`);
    const vocabPicked = ui.vocab.files?.[0];
    // a cached vocabulary goes with a cached checkpoint; a picked checkpoint takes only a picked vocabulary
    const vocabCached = !vocabPicked && cached ? await cache.read('vocab').catch(() => null) : null;
    const vocabFile = vocabPicked ?? vocabCached?.file;
    const vocab = vocabFile ? new Uint8Array(await vocabFile.arrayBuffer()) : undefined;
    const asked = Number(ui.threads.value);
    const threads = Number.isInteger(asked) && asked >= 1 ? asked : demo.threads?.auto ?? 1;
    if (demo.threads) demo.threads.asked = threads;
    const target = ({ auto: 'auto', webgpu: 'wgsl', wasm: 'wasm' } as const)[ui.target.value as 'auto' | 'webgpu' | 'wasm'];
    const t0 = performance.now();
    // the File itself, not its bytes: the package reads it with Blob.slice(), one weight at a time
    model = await Pkg.load(file, {
      target, vocab, threads,
      // weights tick by the hundred; shaders and pipelines (WebGPU) by the dozen, seconds each on a software adapter
      onProgress: (phase, done, total) => {
        (demo.progress ??= {})[phase] = [done, total];
        ui.progress.max = total;
        ui.progress.value = done;
        ui.progress.title = phase;
        if (phase !== 'weights' || done === total || done % 16 === 0) status(`loading ${fileName}: ${phase} ${done}/${total}…`);
      },
    });
    hasVocab = !!vocab;
    demo.backend = model.backend;
    demo.weights = model.weights;
    demo.checkpointFrom = picked ? 'file' : 'cache';
    ui.backend.textContent = model.backend.description;
    ui.weights.textContent = `${model.weights}${demo.threads?.bytesPerToken ? ` (${mib(demo.threads.bytesPerToken)} per token)` : ''}`;
    ui.notes.textContent = model.backend.notes.join('; ');
    demo.loadMs = performance.now() - t0;
    const took = `${(demo.loadMs / 1000).toFixed(2)} s`;
    demo.state = 'ready';
    status(`loaded ${fileName}${picked ? '' : ' from the browser cache'} in ${took}${vocab ? '' : ' (no vocabulary: output shown as token ids and bytes)'}`);
    // kept for the next visit only once it loaded (a file the package refuses is not worth storing), in the
    // background: copying gigabytes into the browser's storage should not hold up generating
    if (picked && ui.keep.checked) void keep(picked, vocabPicked);
    ui.generate.disabled = false;
  } catch (e) {
    fail(e);
  } finally {
    ui.load.disabled = false;
    ui.progress.hidden = true;
  }
}

/** `ids:1,2,3`, or text through the vocabulary (without one: UTF-8 bytes, World ids 1…256). */
function promptIds(m: Model, text: string): number[] {
  const ids = /^\s*ids\s*:(.*)$/s.exec(text);
  let out: number[];
  if (ids) {
    out = ids[1]!.split(/[\s,]+/).filter(Boolean).map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n)) throw new Error(`prompt: '${s}' is not a token id`);
      return n;
    });
  } else if (hasVocab) {
    out = m.tokenize(text);
  } else {
    out = [...new TextEncoder().encode(text)].map((b) => b + 1);
  }
  if (!out.length) throw new Error('prompt: no tokens');
  const bad = out.find((id) => id < 0 || id >= m.vocabSize);
  if (bad !== undefined) throw new Error(`prompt: token ${bad} is outside the vocabulary (0…${m.vocabSize - 1})`);
  return out;
}

/** Without a vocabulary: World ids 1…256 are the bytes 0…255. */
function bytesText(ids: number[]): string {
  const bytes = ids.filter((id) => id >= 1 && id <= 256).map((id) => id - 1);
  return new TextDecoder('utf-8', { fatal: false }).decode(Uint8Array.from(bytes));
}

const rate = (tokens: number, ms: number) => ({ tokens, ms, tokensPerSecond: ms > 0 ? (tokens * 1000) / ms : 0 });
const show = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));

async function generate(): Promise<void> {
  const m = model;
  if (!m) return;
  ui.generate.disabled = ui.load.disabled = true;
  ui.stop.disabled = false;
  stopRequested = false;
  demo.state = 'generating';
  delete demo.error;
  demo.generated = [];
  delete demo.decode;
  ui.output.textContent = ui.ids.textContent = '';
  ui.prefillTps.textContent = ui.decodeTps.textContent = '…';
  ui.prefillInfo.textContent = ui.decodeInfo.textContent = '';
  try {
    const ids = promptIds(m, ui.prompt.value);
    const maxTokens = Math.max(1, Math.floor(Number(ui.maxTokens.value) || 1));
    const temperature = Math.max(0, Number(ui.temperature.value) || 0);
    const topP = Math.min(1, Math.max(0, Number(ui.topP.value) || 1));
    const rng = sampler.createRng(Date.now());
    demo.promptIds = ids;
    await m.state.reset();
    status(`prefill: ${ids.length} tokens…`);

    let t = performance.now();
    let logits = await m.prefill(ids);
    demo.prefill = rate(ids.length, performance.now() - t);
    demo.logitsAfterPrompt = Array.from(logits);
    ui.prefillTps.textContent = show(demo.prefill.tokensPerSecond);
    ui.prefillInfo.textContent = `(${ids.length} tokens in ${demo.prefill.ms.toFixed(1)} ms)`;
    status('generating…');

    let decodeMs = 0;
    for (let i = 0; i < maxTokens && !stopRequested; i++) {
      const id = sampler.sample(logits, { temperature, topP }, rng);
      demo.generated.push(id);
      ui.output.textContent = hasVocab ? m.detokenize(demo.generated) : bytesText(demo.generated);
      ui.ids.textContent = `ids: ${demo.generated.join(',')}`;
      if (id === 0 && hasVocab) break; // end of text
      t = performance.now();
      logits = await m.decode(id);
      decodeMs += performance.now() - t;
      demo.decode = rate(demo.generated.length, decodeMs);
      ui.decodeTps.textContent = show(demo.decode.tokensPerSecond);
      ui.decodeInfo.textContent = `(${demo.decode.tokens} tokens in ${decodeMs.toFixed(1)} ms)`;
      await nextFrame();
    }
    demo.state = 'done';
    status(`done: ${demo.generated.length} tokens${stopRequested ? ' (stopped)' : ''}`);
  } catch (e) {
    fail(e);
  } finally {
    ui.generate.disabled = ui.load.disabled = false;
    ui.stop.disabled = true;
  }
}

ui.load.addEventListener('click', () => void load());
ui.generate.addEventListener('click', () => void generate());
ui.stop.addEventListener('click', () => { stopRequested = true; });
ui.forget.addEventListener('click', () => void forgetCached());

init().catch((e) => {
  fail(new Error(`cannot load the package from ${pkgUrl}: ${(e as Error).message}. Build it with ` +
    '`npx rwkvc compile examples/finch.ts --config <checkpoint or preset> --emit package -o out/browser-pkg`'));
});
