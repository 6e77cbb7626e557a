/**
 * Browser tests: a static HTTP server on 127.0.0.1 (examples/browser/static-server.ts) and headless Chromium (playwright-core) with WebGPU on
 * SwiftShader. The server also serves the repository's TypeScript files as JavaScript (transpiled per file
 * with `typescript`, imports left as they are), so a page can `import { acquireGpu } from
 * '/targets/wgsl/device.ts'` without a bundler.
 *
 *   const server = await startStaticServer({ pages: { '/index.html': html } });
 *   const browser = await launchChromium();
 *   const page = await openPage(browser, `${server.url}/index.html`);
 *   const result = await page.evaluate(() => (window as any).result);
 */
import type { Browser, Page } from 'playwright-core';

export { REPO_ROOT, startStaticServer, type StaticServer, type StaticServerOptions } from '../../examples/browser/static-server.ts';

export { CHROMIUM_CANDIDATES, CHROMIUM_QUIET_ARGS, CHROMIUM_WEBGPU_ARGS, findChromium } from '../../examples/browser/chromium.ts';
import { CHROMIUM_CANDIDATES, CHROMIUM_QUIET_ARGS, CHROMIUM_WEBGPU_ARGS, findChromium } from '../../examples/browser/chromium.ts';

const inCI = (): boolean => !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

/**
 * Why browser tests cannot run here (to pass to `describe.skipIf`), or null when they can. Only outside CI:
 * in CI a missing Chromium throws, so a broken setup fails instead of skipping.
 */
export function browserSkipReason(): string | null {
  if (findChromium()) return null;
  const why = `no Chromium at ${process.env.RWKVC_CHROMIUM ?? CHROMIUM_CANDIDATES.join(', ')} (apt-get install chromium)`;
  if (inCI()) throw new Error(`${why}; browser tests must run in CI`);
  console.warn(`[skip] ${why}; skipping browser tests (CI is not set)`);
  return why;
}

export interface LaunchOptions {
  /** 'swiftshader' (default): pinned software adapter. 'default': let Chromium pick (a real GPU if any). */
  adapter?: 'swiftshader' | 'default';
  /** Extra Chromium flags. */
  args?: string[];
}

export async function launchChromium(opts: LaunchOptions = {}): Promise<Browser> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error('no Chromium found (apt-get install chromium, or set RWKVC_CHROMIUM)');
  const { chromium } = await import('playwright-core');
  const webgpu = opts.adapter === 'default' ? ['--enable-unsafe-webgpu'] : CHROMIUM_WEBGPU_ARGS;
  return chromium.launch({
    executablePath,
    headless: true,
    args: [...webgpu, ...CHROMIUM_QUIET_ARGS, ...(opts.args ?? [])],
  });
}

export interface PageLog {
  /** console messages (`type: text`) and uncaught page errors (`pageerror: ...`), in order. */
  lines: string[];
}

/**
 * A new page at `url`, with its console and uncaught errors collected in `log` (print them when a test fails:
 * a browser-side exception is otherwise invisible).
 */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; log: PageLog }> {
  const page = await browser.newPage();
  const log: PageLog = { lines: [] };
  page.on('console', (m) => log.lines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.lines.push(`pageerror: ${e.message}`));
  // the first page a file opens transpiles its modules in the static server: past playwright's 30 s default on a busy machine
  await page.goto(url, { timeout: 120_000 });
  return { page, log };
}

