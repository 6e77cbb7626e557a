/**
 * rwkvc's own version, from its package.json: the first one named rwkvc above this module (the repository
 * root for cli/*.ts, the package root for dist/cli/*.js). Read on demand, so `--version` costs one file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function rwkvcVersion(): string {
  for (let d = import.meta.dirname; ; d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p)) {
      try {
        const j = JSON.parse(readFileSync(p, 'utf8')) as { name?: unknown; version?: unknown };
        if (j.name === 'rwkvc' && typeof j.version === 'string') return j.version;
      } catch { /* not ours: keep looking */ }
    }
    if (dirname(d) === d) return 'unknown';
  }
}
