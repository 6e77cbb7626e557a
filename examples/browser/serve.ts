/**
 * Serve the browser demo:  npx tsx examples/browser/serve.ts [--port 8080] [--host 127.0.0.1] [--pkg out/browser-pkg]
 *
 * A static server for the repository (the demo page, the package it imports) that transpiles .ts files
 * on the fly and sends Cross-Origin-Opener-Policy / Cross-Origin-Embedder-Policy, so the page is
 * cross-origin isolated and WASM can run on several threads. Build the package first:
 *
 *   npx rwkvc compile examples/finch.ts --config model.pth --emit package -o out/browser-pkg
 *
 * A development server for localhost only (it serves the whole repository, dot-paths such as .git excepted):
 * another --host prints a warning. A bad --port or option is one line on stderr, exit 2.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isLoopbackHost, REPO_ROOT, startStaticServer } from './static-server.ts';

/** A bad command line: one line on stderr, exit 2. */
function usageError(message: string): never {
  process.stderr.write(`serve: ${message}\n`);
  process.exit(2);
}

let values: { port: string; host: string; pkg: string };
try {
  ({ values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      pkg: { type: 'string', default: 'out/browser-pkg' },
    },
  }));
} catch (e) {
  const msg = String((e as Error).message);
  const ambiguous = /^Option '(--\w+)' argument is ambiguous/.exec(msg);
  usageError(ambiguous ? `${ambiguous[1]} needs a value (write ${ambiguous[1]}=VALUE for a value starting with '-')` : msg.split('\n')[0]!);
}
if (!/^\d{1,5}$/.test(values.port) || Number(values.port) > 65535) {
  usageError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(values.port.slice(0, 40))}`);
}
const host = values.host.replace(/^\[(.*)\]$/, '$1');
if (host === '') usageError('--host must not be empty');
if (!isLoopbackHost(host)) {
  console.warn(`warning: --host ${host}: this development server is now reachable from the network and serves the ` +
    `whole repository; use it only on a network you trust (the default, 127.0.0.1, is localhost only)`);
}
const pkg = values.pkg.replace(/^\/+|\/+$/g, '');
if (!existsSync(join(REPO_ROOT, pkg, 'package.json'))) {
  console.warn(`no package in ${pkg}/ yet; build one for your checkpoint (or a preset) first:\n` +
    `  npx rwkvc compile examples/finch.ts --config model.pth --emit package -o ${pkg}`);
}
const server = await startStaticServer({ port: Number(values.port), host }).catch((e: NodeJS.ErrnoException) =>
  usageError(`cannot listen on ${host}:${values.port}: ${e.code ?? String(e.message).split('\n')[0]}`));
const query = pkg === 'out/browser-pkg' ? '' : `?pkg=/${pkg}/`;
console.log(`serving ${REPO_ROOT} with COOP/COEP headers (cross-origin isolated: WASM threads)\n` +
  `  open ${server.url}/examples/browser/index.html${query}   (Ctrl-C stops)`);
