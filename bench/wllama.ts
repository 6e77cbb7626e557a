/**
 * wllama (llama.cpp compiled to WASM, `@wllama/wllama`) as the WASM-against-WASM peer, in headless
 * Chromium: it loads the same GGUF `rwkvc bench` gives llama.cpp (our rwkv6 export, or the random
 * LLaMA of `--context`) from a Blob and times a completion. Not yet wired into `rwkvc bench --peer`
 * (no per-token timing: wllama 3.13 exposes completions, not single decode steps).
 *
 * It does not run in Node 20: `new Wllama()` throws "No supported storage backend found" (its cache
 * needs the Origin Private File System, navigator.storage), its llama.cpp runs in a Web Worker made
 * from a module blob URL (Node has worker_threads only), and its module uses 64-bit WASM memory
 * (`address: 'i64'`), which Node 20's V8 11.3 does not ship.
 *
 * Random weights emit byte tokens that do not form UTF-8, which wllama's JSON reply refuses
 * ("invalid UTF-8 byte"): the single bytes ≥ 0x80 (ids 129..256 in our exports) get a -100 logit bias.
 *
 * Usage: npx tsx bench/wllama.ts FILE.gguf [threads] [tokens]
 */
import { existsSync, readFileSync } from 'node:fs';

export interface WllamaResult { loadMs: number; completionMs: number; promptTokens: number; completionTokens: number; userAgent: string }

const PAGE = `<!doctype html><script type="module">
import { Wllama } from '/node_modules/@wllama/wllama/esm/index.js';
window.run = async (threads, tokens) => {
  const w = new Wllama({ default: '/node_modules/@wllama/wllama/esm/wasm/wllama.wasm' }, { logger: { debug() {}, log() {}, warn() {}, error() {} } });
  const blob = await (await fetch('/model.gguf')).blob();
  let t0 = performance.now();
  await w.loadModel([blob], { n_ctx: 512, n_threads: threads });
  const loadMs = performance.now() - t0;
  t0 = performance.now();
  const r = await w.createCompletion({ prompt: 'hello world', max_tokens: tokens, temperature: 0,
    logit_bias: Object.fromEntries(Array.from({ length: 128 }, (_, i) => [String(129 + i), -100])) });
  const completionMs = performance.now() - t0;
  await w.exit();
  return { loadMs, completionMs, promptTokens: r.usage.prompt_tokens, completionTokens: r.usage.completion_tokens, userAgent: navigator.userAgent };
};
window.ready = true;
</script>`;

/** Run `gguf` in wllama in headless Chromium (cross-origin isolated, so its threads can start). */
export async function benchWllamaChromium(gguf: string, threads = 1, tokens = 32): Promise<WllamaResult> {
  const { chromium } = await import('playwright-core');
  const { startStaticServer } = await import('../examples/browser/static-server.ts');
  const exe = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
  if (!exe) throw new Error('no Chromium found (/usr/bin/chromium)');
  const srv = await startStaticServer({ crossOriginIsolated: true, pages: { '/wllama.html': PAGE, '/model.gguf': new Uint8Array(readFileSync(gguf)) } });
  const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    await page.goto(`${srv.url}/wllama.html`);
    await page.waitForFunction('window.ready === true', null, { timeout: 60_000 });
    return await page.evaluate(([t, n]) => (window as unknown as { run(t: number, n: number): Promise<WllamaResult> }).run(t, n), [threads, tokens] as const);
  } finally {
    await browser.close();
    await srv.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [gguf, threads, tokens] = process.argv.slice(2);
  const r = await benchWllamaChromium(gguf, Number(threads ?? 1), Number(tokens ?? 32));
  console.log(`wllama in ${r.userAgent.match(/HeadlessChrome\/[\d.]+/)?.[0]}: load ${r.loadMs.toFixed(0)} ms; ${r.promptTokens} prompt + ${r.completionTokens} generated tokens in ${r.completionMs.toFixed(0)} ms`);
}
