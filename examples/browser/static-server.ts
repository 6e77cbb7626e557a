/**
 * A static server for the repository (the demo page, the package it imports): transpiles .ts files on
 * the fly (types stripped, specifiers kept) and sends the cross-origin isolation headers WASM threads
 * need. Used by examples/browser/serve.ts and by the browser tests.
 */
import { readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

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
