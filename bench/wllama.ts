/**
 * wllama (`@wllama/wllama`: llama.cpp compiled to WASM SIMD with threads) as the WASM-against-WASM peer
 * of `rwkvc bench --target wasm --peer wllama`: the GGUF `rwkvc bench` gives llama.cpp (our rwkv6 export
 * of the same checkpoint, same weight format) runs in a headless-Chromium page served cross-origin
 * isolated (COOP/COEP, so its pthreads start), n_threads = our threads, CPU only (n_gpu_layers 0: wllama
 * 3.x would otherwise take WebGPU where the page has it). The page is driven round by round from Node, so
 * its turns interleave with ours as llama.cpp's do (bench/wasm-bench.ts).
 *
 * wllama exposes completions, not decode steps, so the times are llama.cpp's own: the llama-server inside
 * it reports `timings` with every completion. A decode round is one completion of n + 1 tokens from a
 * one-token prompt; its predicted_ms spans the n decode steps after the first token (a 1-token completion
 * reports predicted_ms 0.001), each with a greedy pick, as node-llama-cpp's peer does. A prefill is a
 * completion of 1 token from an n-token prompt: prompt_ms. cache_prompt is off and each request
 * starts from a fresh state (cache_n is checked to be 0).
 *
 * Prompts are text, not token ids (wllama's JSON bridge takes `prompt` as a string only): our exports
 * give byte b the id b + 1, and each lowercase letter is one token of llama.cpp's RWKV tokenizer (checked:
 * prompt_n must equal n). Random weights emit byte tokens that are not UTF-8, which wllama's JSON reply
 * refuses ("invalid UTF-8 byte"), so the single bytes ≥ 0x80 (ids 129..256) get a -100 logit bias.
 *
 * Not in Node 20 (wllamaInNode says why at run time): `new Wllama()` throws "No supported storage
 * backend found" (its cache needs OPFS), its llama.cpp runs in a Web Worker from a module blob URL (Node
 * has worker_threads only), and its module uses 64-bit WASM memory, which Node 20's V8 11.3 lacks.
 *
 * Usage: npx tsx bench/wllama.ts FILE.gguf [threads] [decode tokens] [prefill tokens]
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PeerSession } from './llama-cpp.ts';

const PAGE = `<!doctype html><script type="module">
import { Wllama } from '/wllama.js';
let w, seed = 12345;
const letters = (n) => Array.from({ length: n }, () => String.fromCharCode(97 + ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 26))).join('');
const run = async (prompt, n) => {
  const r = await w.createCompletion({ prompt, max_tokens: n, temperature: 0, ignore_eos: true, cache_prompt: false, logit_bias: window.bias });
  if (!r.timings) throw new Error('wllama returned no timings');
  if (r.timings.cache_n !== 0) throw new Error('wllama reused ' + r.timings.cache_n + ' cached tokens');
  return r.timings;
};
window.load = async (threads, nCtx) => {
  w = new Wllama({ default: '/wllama.wasm' }, { logger: { debug() {}, log() {}, warn() {}, error() {} } });
  const blob = await (await fetch('/model.gguf')).blob();
  const t0 = performance.now();
  await w.loadModel([blob], { n_ctx: nCtx, n_batch: nCtx, n_threads: threads, n_gpu_layers: 0, n_parallel: 1 });
  const vocab = w.getLoadedContextInfo().n_vocab;
  window.bias = Object.fromEntries(Array.from({ length: 128 }, (_, i) => 129 + i).filter((i) => i < vocab).map((i) => [String(i), -100]));
  return { loadMs: performance.now() - t0, threads: w.getNumThreads(), isolated: crossOriginIsolated, userAgent: navigator.userAgent };
};
window.decode = async (n) => {
  const t = await run(letters(1), n + 1);
  if (t.predicted_n !== n + 1) throw new Error('wllama generated ' + t.predicted_n + ' tokens, asked for ' + (n + 1));
  return t.predicted_ms / n;
};
window.prefill = async (n) => {
  const t = await run(letters(n), 1);
  if (t.prompt_n !== n) throw new Error('the prompt of ' + n + ' letters was ' + t.prompt_n + ' tokens in wllama');
  return t.prompt_ms;
};
window.ready = true;
</script>`;

/** wllama's module (one self-contained file), its .wasm and version, wherever npm put the package; or null. */
function wllamaFiles(): { js: string; wasm: string; version: string } | null {
  let js: string;
  try { js = fileURLToPath(import.meta.resolve('@wllama/wllama')); } catch { return null; }
  const wasm = join(dirname(js), 'wasm', 'wllama.wasm');
  if (!existsSync(js) || !existsSync(wasm)) return null;
  let version = '?';
  try { version = JSON.parse(readFileSync(join(dirname(js), '..', 'package.json'), 'utf8')).version; } catch { /* unnamed */ }
  return { js, wasm, version };
}

export interface WllamaOptions {
  /** the context llama.cpp allocates (and its batch): at least the longest prompt or decode round + 1 */
  nCtx: number;
  chromium?: string;
}

/** wllama on `gguf` in headless Chromium with `threads` threads, or why it cannot run. */
export async function openWllama(gguf: string, weights: string, threads: number, o: WllamaOptions): Promise<(PeerSession & { loadMs: number }) | { unavailable: string }> {
  const candidates = o.chromium ?? process.env.RWKVC_CHROMIUM;
  const exe = (candidates ? [candidates] : ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']).find((p) => existsSync(p));
  if (!exe) return { unavailable: `wllama runs in a browser and there is no Chromium at ${candidates ?? '/usr/bin/chromium'} (apt-get install chromium)` };
  const files = wllamaFiles();
  if (!files) return { unavailable: '@wllama/wllama is not installed (npm i -D -E @wllama/wllama@3.13.0)' };
  const { chromium } = await import('playwright-core');
  const { startStaticServer } = await import('../examples/browser/static-server.ts');
  // every file in memory: the server's root is the checkout, or dist/ in a build, neither of which holds node_modules
  const srv = await startStaticServer({
    crossOriginIsolated: true,
    pages: { '/wllama.html': PAGE, '/wllama.js': readFileSync(files.js, 'utf8'), '/wllama.wasm': new Uint8Array(readFileSync(files.wasm)), '/model.gguf': new Uint8Array(readFileSync(gguf)) },
  });
  const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox', '--disable-background-networking', '--no-first-run'] }).catch(async (e) => { await srv.close(); throw e; });
  const close = async () => { await browser.close(); await srv.close(); };
  const page = await browser.newPage();
  page.setDefaultTimeout(0);
  const call = <T>(fn: string, ...args: number[]) => page.evaluate(([f, a]) => (window as unknown as Record<string, (...x: number[]) => Promise<T>>)[f](...a), [fn, args] as const) as Promise<T>;
  let info: { loadMs: number; threads: number; isolated: boolean; userAgent: string };
  try {
    await page.goto(`${srv.url}/wllama.html`);
    await page.waitForFunction('window.ready === true', null, { timeout: 60_000 });
    info = await call('load', threads, o.nCtx);
  } catch (e) {
    await close();
    return { unavailable: `wllama could not run ${gguf}: ${(e as Error).message.split('\n')[0]}` };
  }
  const browserName = info.userAgent.match(/HeadlessChrome\/[\d.]+/)?.[0] ?? 'Chromium';
  const threadNote = info.threads === threads ? `${threads} thread${threads > 1 ? 's' : ''}` : `${info.threads} thread (asked ${threads}${info.isolated ? '' : '; the page is not cross-origin isolated'})`;
  return {
    name: `wllama ${files.version} (llama.cpp WASM SIMD, ${threadNote}, ${browserName})`,
    weights: weights.toUpperCase(),
    loadMs: info.loadMs,
    async decodeRound(n) {
      const ms = await call<number>('decode', n);
      return Array.from({ length: n }, () => ms);
    },
    prefill: (n) => call<number>('prefill', n),
    // its 16-bit and 4-bit prefill runs at a few tokens/s here (Q4_0 ~4 tok/s on bench-0.1b under load): 512-token
    // prompts made one `--peer all` sweep take ~50 min, mostly waiting on this peer
    prefillCap: 128,
    dispose: close,
  };
}

/** Why wllama does not run in this Node (one line), or null if it constructs. */
export async function wllamaInNode(): Promise<string | null> {
  const why: string[] = [];
  try {
    const { Wllama } = await import('@wllama/wllama');
    new Wllama({ default: 'wllama.wasm' });
  } catch (e) { why.push(`new Wllama(): ${(e as Error).message.split('\n')[0]} (its cache needs OPFS)`); }
  try { new WebAssembly.Memory({ initial: 1n, maximum: 1n, address: 'i64' } as unknown as WebAssembly.MemoryDescriptor); } catch { why.push(`no 64-bit WASM memory in Node ${process.versions.node} (V8 ${process.versions.v8})`); }
  if (typeof (globalThis as { Worker?: unknown }).Worker !== 'function') why.push('no Web Worker (its llama.cpp runs in one made from a blob URL)');
  return why.length ? `wllama cannot run in Node: ${why.join('; ')}` : null;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [gguf, threads, decode, prefill] = process.argv.slice(2);
  const d = Number(decode ?? 32), p = Number(prefill ?? 128);
  console.log((await wllamaInNode()) ?? 'wllama constructs in Node');
  const s = await openWllama(gguf, gguf.match(/\.(\w+)\.gguf$/)?.[1] ?? '?', Number(threads ?? 1), { nCtx: Math.max(d, p) + 16 });
  if ('unavailable' in s) throw new Error(s.unavailable);
  try {
    await s.decodeRound(4);
    const ms = (await s.decodeRound(d))[0], pm = await s.prefill(p);
    console.log(`${s.name}: load ${s.loadMs.toFixed(0)} ms; decode ${ms.toFixed(2)} ms/token; prefill ${p} tokens ${(p / pm * 1000).toFixed(1)} tok/s`);
  } finally { await s.dispose(); }
}
