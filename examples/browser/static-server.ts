/**
 * A static server for the repository (the demo page, the package it imports): transpiles .ts files on
 * the fly (types stripped, specifiers kept) and sends the cross-origin isolation headers WASM threads
 * need. Used by examples/browser/serve.ts and by the browser tests.
 *
 * A development server for localhost: GET/HEAD only (405 otherwise); the Host header must name the server
 * (localhost, 127.0.0.1 or [::1] with its port, or the host it was explicitly started on), which stops DNS
 * rebinding; paths are confined to the served root by their real paths (symlinks pointing outside are
 * refused) and no dot-segment (`.git`, `.env`) is served; files are streamed (bounded memory) with
 * `Range: bytes=a-b` support; errors are short plain-text lines, never stack traces or absolute paths.
 */
import { createReadStream } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import http from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
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
  /** Directory served (default: the repository root). Paths outside it (by real path) are refused. */
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
  /** Extra names accepted in the Host header (besides localhost, 127.0.0.1, [::1] and `host`). */
  allowedHosts?: string[];
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

/** True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** True for the wildcard addresses (every interface). */
function isWildcardHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || h === '::' || h === '0:0:0:0:0:0:0:0';
}

/** At most `max` characters of untrusted text, on one line. */
function clip(s: string, max = 200): string {
  const one = s.replace(/[\r\n\t\0-\x1f]+/g, ' ');
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

class TranspileError extends Error {}

/** Strip the types of one TypeScript file; import specifiers (with their `.ts`) are kept for the server. */
async function transpile(file: string, displayName: string, source: string): Promise<string> {
  const ts = (await import('typescript')).default;
  let out: import('typescript').TranspileOutput;
  try {
    out = ts.transpileModule(source, {
      fileName: file,
      reportDiagnostics: true,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        sourceMap: false,
        inlineSourceMap: true,
        inlineSources: true,
        verbatimModuleSyntax: false,
      },
    });
  } catch (e) {
    // e.g. a .d.ts ("Debug Failure. Output generation failed"): its first line only, no stack, no paths.
    throw new TranspileError(`cannot transpile ${displayName}: ${clip(String((e as Error).message ?? e).split('\n')[0]!)}`);
  }
  const err = out.diagnostics?.find((d) => d.category === ts.DiagnosticCategory.Error);
  if (err) {
    const where = err.file && err.start !== undefined ? `:${err.file.getLineAndCharacterOfPosition(err.start).line + 1}` : '';
    const msg = ts.flattenDiagnosticMessageText(err.messageText, ' ');
    throw new TranspileError(`cannot transpile ${displayName}${where}: ${clip(msg)}`);
  }
  return out.outputText;
}

/**
 * The byte range of a `Range` header for a file of `size` bytes: null to serve the whole file (no header,
 * a syntax this server does not handle, or several ranges), 'unsatisfiable' for a 416.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || (m[2] !== '' && Number(m[2]) < start)) return 'unsatisfiable';
  return { start, end };
}

export async function startStaticServer(opts: StaticServerOptions = {}): Promise<StaticServer> {
  const root = path.resolve(opts.root ?? REPO_ROOT);
  const realRoot = await realpath(root);
  const pages = opts.pages ?? {};
  const isolated = opts.crossOriginIsolated ?? true;
  const bindHost = opts.host ?? '127.0.0.1';
  const requests: string[] = [];
  const tsCache = new Map<string, { mtime: number; js: string }>();
  let port = 0;

  /** DNS rebinding: the Host header must name this server. */
  const hostAllowed = (hostHeader: string | undefined): boolean => {
    if (!hostHeader) return false;
    const m = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d+))?$/.exec(hostHeader.trim().toLowerCase());
    if (!m) return false;
    const name = m[1]!;
    const p = m[2] === undefined ? 80 : Number(m[2]);
    if (p !== port) return false;
    const names = new Set(['localhost', '127.0.0.1', '[::1]', ...(opts.allowedHosts ?? []).map((h) => h.toLowerCase())]);
    if (opts.host !== undefined && !isWildcardHost(opts.host)) {
      names.add(isIP(opts.host) === 6 ? `[${opts.host.toLowerCase()}]` : opts.host.toLowerCase());
    }
    if (names.has(name)) return true;
    // Started explicitly on every interface: any IP literal (a rebinding attack needs a DNS name).
    return opts.host !== undefined && isWildcardHost(opts.host) && isIP(name.replace(/^\[|\]$/g, '')) !== 0;
  };

  const server = http.createServer(async (req, res) => {
    const headers = (extra: Record<string, string | number> = {}): Record<string, string | number> => {
      const h: Record<string, string | number> = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra };
      if (isolated) {
        h['cross-origin-opener-policy'] = 'same-origin';
        h['cross-origin-embedder-policy'] = 'require-corp';
      }
      if (opts.csp) h['content-security-policy'] = opts.csp;
      return h;
    };
    const send = (status: number, body: string | Uint8Array, type: string, extra: Record<string, string | number> = {}) => {
      const buf = typeof body === 'string' ? Buffer.from(body) : body;
      res.writeHead(status, headers({ 'content-type': type, 'content-length': buf.byteLength, ...extra }));
      res.end(req.method === 'HEAD' ? undefined : buf);
    };
    const text = (status: number, body: string, extra: Record<string, string | number> = {}) =>
      send(status, body + '\n', 'text/plain; charset=utf-8', extra);
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'method not allowed', { allow: 'GET, HEAD' });
      if (!hostAllowed(req.headers.host)) return text(403, 'forbidden: unexpected Host header (development server for localhost)');
      let urlPath: string;
      try {
        urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      } catch {
        return text(400, 'bad request: malformed URL');
      }
      if (urlPath.includes('\0')) return text(400, 'bad request: malformed URL');
      requests.push(urlPath);
      const notFound = () => text(404, `not found: ${clip(urlPath)}`);
      // No dot-segment: `.git`, `.env`, `..` (after decoding, so `%2e` and `%2f` do not get around it).
      if (urlPath.split(/[/\\]/).some((seg) => seg.startsWith('.'))) return notFound();
      const ext = path.extname(urlPath);
      if (Object.hasOwn(pages, urlPath)) return send(200, pages[urlPath]!, MIME[ext] ?? 'application/octet-stream');
      const file = path.resolve(root, '.' + urlPath);
      if (file !== root && !file.startsWith(root + path.sep)) return text(403, 'forbidden: outside the served root');
      // Real paths: a symlink inside the root that points outside it is not followed.
      const real = await realpath(file).catch(() => null);
      if (real === null) return notFound();
      if (real !== realRoot && !real.startsWith(realRoot + path.sep)) return text(403, 'forbidden: outside the served root');
      if (path.relative(realRoot, real).split(path.sep).some((seg) => seg.startsWith('.'))) return notFound();
      const st = await stat(real).catch(() => null);
      if (!st?.isFile()) return notFound();
      if (ext === '.ts') {
        const cached = tsCache.get(real);
        if (cached?.mtime === st.mtimeMs) return send(200, cached.js, MIME['.ts']!);
        const js = await transpile(real, clip(urlPath), await readFile(real, 'utf8'));
        tsCache.set(real, { mtime: st.mtimeMs, js });
        return send(200, js, MIME['.ts']!);
      }
      const type = MIME[ext] ?? 'application/octet-stream';
      const range = parseRange(req.headers.range, st.size);
      if (range === 'unsatisfiable') return text(416, 'range not satisfiable', { 'content-range': `bytes */${st.size}` });
      const { start, end } = range ?? { start: 0, end: st.size - 1 };
      const length = end - start + 1;
      res.writeHead(range ? 206 : 200, headers({
        'content-type': type,
        'content-length': Math.max(0, length),
        'accept-ranges': 'bytes',
        ...(range ? { 'content-range': `bytes ${start}-${end}/${st.size}` } : {}),
      }));
      if (req.method === 'HEAD' || length <= 0) return void res.end();
      // Streamed (backpressure through pipeline): memory stays bounded whatever the file's size.
      await pipeline(createReadStream(real, { start, end }), res).catch(() => res.destroy());
    } catch (e) {
      if (res.headersSent) return void res.destroy();
      if (e instanceof TranspileError) return text(500, e.message);
      text(500, 'internal server error');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, bindHost, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://${bindHost.includes(':') ? `[${bindHost}]` : bindHost}:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
