#!/usr/bin/env node
// `npm run build`: the library and the CLI as JavaScript + .d.ts in dist/ (tsc, tsconfig.build.json), the
// files the targets read at run time beside them (templates, the CUDA emulator's C++), and dist/build.json
// last, which bin/rwkvc.js compares with the sources' times.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');
/** Non-TypeScript files read at run time (readFileSync / new URL(…, import.meta.url)). */
const ASSETS = /\.(hbs|h|cpp|wat|json)$/;
const FOLDERS = ['kernels', 'ir', 'compiler', 'targets', 'runtime', 'driver', 'cli', 'bench', 'examples'];

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) {
  console.error('build: tsc failed (above); dist/ is incomplete');
  process.exit(r.status ?? 1);
}

let assets = 0;
for (const dir of FOLDERS) {
  for (const f of readdirSync(join(root, dir), { recursive: true })) {
    if (!ASSETS.test(f) || f.startsWith('browser')) continue;
    mkdirSync(dirname(join(dist, dir, f)), { recursive: true });
    cpSync(join(root, dir, f), join(dist, dir, f));
    assets++;
  }
}

// tsc rewrites import specifiers in .js, but not a module found by URL (a Web Worker script:
// `new URL('./x.ts', import.meta.url)`), and not in .d.ts, where `from './x.ts'` would name a file the package lacks
let urls = 0;
let decls = 0;
for (const f of readdirSync(dist, { recursive: true })) {
  const p = join(dist, f);
  if (f.endsWith('.d.ts')) {
    const src = readFileSync(p, 'utf8');
    const out = src.replace(/(\b(?:from|import)\s*\(?\s*(['"]))(\.{1,2}\/[^'"]+)\.ts\2/g, (_, pre, q, path) => (decls++, `${pre}${path}.js${q}`));
    if (out !== src) writeFileSync(p, out);
  } else if (f.endsWith('.js.map') && !f.startsWith('examples')) {
    rmSync(p);
  } else if (f.endsWith('.js')) {
    let src = readFileSync(p, 'utf8');
    // source maps are kept for the shipped model descriptions only (driver/load.ts: their DSL lines name the .ts);
    // the rest of the package reports its own .js lines, and ir/builder.ts tells DSL frames from its own by them
    if (!f.startsWith('examples')) writeFileSync(p, src = src.replace(/\n\/\/# sourceMappingURL=\S+\.js\.map\s*$/, '\n'));
    const out = src.replace(/new URL\((['"])(\.{1,2}\/[^'"]+)\.ts\1, import\.meta\.url\)/g, (_, q, path) => (urls++, `new URL(${q}${path}.js${q}, import.meta.url)`));
    if (out !== src) writeFileSync(p, out);
  }
}

const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
writeFileSync(join(dist, 'build.json'), JSON.stringify({ version, built: new Date().toISOString() }) + '\n');
console.log(`build: dist/ (rwkvc ${version}): ${assets} assets copied, ${urls} worker URLs and ${decls} declaration imports rewritten to .js`);
