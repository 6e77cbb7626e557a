#!/usr/bin/env node
// The `rwkvc` command. The installed package runs the compiled CLI (dist/, plain Node). In a checkout it runs
// the TypeScript sources through tsx, unless `npm run build` has made a dist/ newer than every source file:
// a stale build never runs in place of edited sources.
import v8 from 'node:v8';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

// V8 in Node 20 has relaxed SIMD (the FMA the WASM target's faster module uses) behind a flag. The
// target validates that module and keeps the plain-SIMD one when the engine refuses it, so asking for
// the feature is safe; newer Node versions have it on already.
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

const root = join(import.meta.dirname, '..');
const SOURCES = ['kernels', 'ir', 'compiler', 'targets', 'runtime', 'driver', 'cli', 'bench', 'examples'];
const built = join(root, 'dist', 'build.json'); // written last by bin/build.js

/** Is dist/ there and no older than the sources beside it (if any: the package ships none)? */
function distIsCurrent() {
  if (!existsSync(built)) return false;
  if (!existsSync(join(root, 'cli', 'main.ts'))) return true;
  if (process.env.RWKVC_FROM_SOURCE) return false;
  const at = statSync(built).mtimeMs;
  for (const dir of SOURCES) {
    if (!existsSync(join(root, dir))) continue;
    for (const f of readdirSync(join(root, dir), { recursive: true })) {
      if (statSync(join(root, dir, f)).mtimeMs > at) return false;
    }
  }
  return statSync(join(root, 'package.json')).mtimeMs <= at;
}

if (distIsCurrent()) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/main.ts');
}
