#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so DSL files (examples/*.ts) load with the same loader.
import { register } from 'tsx/esm/api';
register();
await import('../cli/main.ts');
