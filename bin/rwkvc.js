#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so DSL files (examples/*.ts) load with the same loader.
import v8 from 'node:v8';
import { register } from 'tsx/esm/api';

// V8 in Node 20 has relaxed SIMD (the FMA the WASM target's faster module uses) behind a flag. The
// target validates that module and keeps the plain-SIMD one when the engine refuses it, so asking for
// the feature is safe; newer Node versions have it on already.
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
register();
await import('../cli/main.ts');
