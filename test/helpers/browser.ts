/**
 * Browser tests: a static HTTP server on 127.0.0.1 and headless Chromium (playwright-core) with WebGPU on
 * SwiftShader. The server also serves the repository's TypeScript files as JavaScript (transpiled per file
 * with `typescript`, imports left as they are), so a page can `import { acquireGpu } from
 * '/targets/wgsl/device.ts'` without a bundler.
 *
 *   const server = await startStaticServer({ pages: { '/index.html': html } });
 *   const browser = await launchChromium();
 *   const page = await openPage(browser, `${server.url}/index.html`);
 *   const result = await page.evaluate(() => (window as any).result);
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Chromium binaries tried in order (RWKVC_CHROMIUM overrides). */
export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/**
 * Flags that give headless Chromium WebGPU on SwiftShader with no GPU. `--enable-unsafe-webgpu` alone is
 * enough on Linux (Chromium 156); the SwiftShader ones pin the adapter so results do not depend on the host's
 * GPU. The rest keep a test browser quiet and off the network.
 */
export const CHROMIUM_WEBGPU_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--use-webgpu-adapter=swiftshader',
];
export const CHROMIUM_QUIET_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--no-first-run',
  '--no-default-browser-check',
];

export function findChromium(): string | null {
  const override = process.env.RWKVC_CHROMIUM;
  if (override) return existsSync(override) ? override : null;
  return CHROMIUM_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

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
  await page.goto(url);
  return { page, log };
}

export interface StaticServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  url: string;
  port: number;
  /** Paths requested so far (for asserting what a page loaded). */
  requests: string[];
  close(): Promise<void>;
}

export interface StaticServerOptions {
  /** Directory served (default: the repository root). Paths outside it are refused. */
  root?: string;
  /** In-memory files by URL path (`/index.html`), served before `root`. */
  pages?: Record<string, string | Uint8Array>;
  /** Cross-origin isolation headers (COOP/COEP), needed for SharedArrayBuffer / WASM threads (default true). */
  crossOriginIsolated?: boolean;
  /** A Content-Security-Policy header on every response (workers' scripts included). */
  csp?: string;
  /** Port and address to listen on (default: a free port on 127.0.0.1). */
  port?: number;
  host?: string;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.ts': 'text/javascript; charset=utf-8', // served transpiled
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.wgsl': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** Strip the types of one TypeScript file; import specifiers (with their `.ts`) are kept for the server. */
async function transpile(file: string, source: string): Promise<string> {
  const ts = (await import('typescript')).default;
  return ts.transpileModule(source, {
    fileName: file,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      sourceMap: false,
      inlineSourceMap: true,
      inlineSources: true,
      verbatimModuleSyntax: false,
    },
  }).outputText;
}

export async function startStaticServer(opts: StaticServerOptions = {}): Promise<StaticServer> {
  const root = path.resolve(opts.root ?? REPO_ROOT);
  const pages = opts.pages ?? {};
  const isolated = opts.crossOriginIsolated ?? true;
  const requests: string[] = [];
  const tsCache = new Map<string, { mtime: number; js: string }>();

  const server = http.createServer(async (req, res) => {
    const send = (status: number, body: string | Uint8Array, type: string) => {
      const headers: Record<string, string> = { 'content-type': type, 'cache-control': 'no-store' };
      if (isolated) {
        headers['cross-origin-opener-policy'] = 'same-origin';
        headers['cross-origin-embedder-policy'] = 'require-corp';
      }
      if (opts.csp) headers['content-security-policy'] = opts.csp;
      res.writeHead(status, headers);
      res.end(body);
    };
    try {
      const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      requests.push(urlPath);
      const ext = path.extname(urlPath);
      if (Object.hasOwn(pages, urlPath)) return send(200, pages[urlPath]!, MIME[ext] ?? 'application/octet-stream');
      const file = path.resolve(root, '.' + urlPath);
      if (file !== root && !file.startsWith(root + path.sep)) return send(403, 'outside the served root', 'text/plain');
      const st = await stat(file).catch(() => null);
      if (!st?.isFile()) return send(404, `not found: ${urlPath}`, 'text/plain');
      if (ext === '.ts') {
        const cached = tsCache.get(file);
        if (cached?.mtime === st.mtimeMs) return send(200, cached.js, MIME['.ts']!);
        const js = await transpile(file, await readFile(file, 'utf8'));
        tsCache.set(file, { mtime: st.mtimeMs, js });
        return send(200, js, MIME['.ts']!);
      }
      return send(200, await readFile(file), MIME[ext] ?? 'application/octet-stream');
    } catch (e) {
      send(500, String((e as Error).stack ?? e), 'text/plain');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
