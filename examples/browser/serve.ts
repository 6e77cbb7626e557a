/**
 * Serve the browser demo:  npx tsx examples/browser/serve.ts [--port 8080] [--host 127.0.0.1] [--pkg out/browser-pkg]
 *
 * A static server for the repository (the demo page, the package it imports) that transpiles .ts files
 * on the fly and sends Cross-Origin-Opener-Policy / Cross-Origin-Embedder-Policy, so the page is
 * cross-origin isolated and WASM can run on several threads. Build the package first:
 *
 *   npx rwkvc compile examples/finch.ts --config model.pth --emit package -o out/browser-pkg
 *
 * It serves the whole repository: keep it on localhost.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT, startStaticServer } from './static-server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    host: { type: 'string', default: '127.0.0.1' },
    pkg: { type: 'string', default: 'out/browser-pkg' },
  },
});
const pkg = values.pkg.replace(/^\/+|\/+$/g, '');
if (!existsSync(join(REPO_ROOT, pkg, 'package.json'))) {
  console.warn(`no package in ${pkg}/ yet; build one for your checkpoint (or a preset) first:\n` +
    `  npx rwkvc compile examples/finch.ts --config model.pth --emit package -o ${pkg}`);
}
const server = await startStaticServer({ port: Number(values.port), host: values.host });
const query = pkg === 'out/browser-pkg' ? '' : `?pkg=/${pkg}/`;
console.log(`serving ${REPO_ROOT} with COOP/COEP headers (cross-origin isolated: WASM threads)\n` +
  `  open ${server.url}/examples/browser/index.html${query}   (Ctrl-C stops)`);
