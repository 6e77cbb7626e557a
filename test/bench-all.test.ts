/**
 * `rwkvc bench --all`: the parts are the commands a user would type (charts into the --plot folder),
 * --parts picks among them, and an unknown part is one line before anything runs.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { allParts } from '../bench/all.ts';

describe('rwkvc bench --all', () => {
  it('runs each part as its own rwkvc bench command, charts into the folder', () => {
    const all = allParts({ dir: 'docs/bench', preset: 'bench-0.1b', threads: 2 });
    expect(all.map(([, a]) => a[0])).toEqual(['--target', '--target', '--context', '--kernels', '--target']);
    for (const [, a] of all) expect(a.slice(a.indexOf('--preset'), a.indexOf('--preset') + 2)).toEqual(['--preset', 'bench-0.1b']);
    expect(all.flatMap(([, a]) => a.filter((x) => x.endsWith('.svg')))).toEqual(['docs/bench/wasm.svg', 'docs/bench/context.svg']);
    expect(allParts({ dir: 'd', preset: 'finch-tiny', threads: 1, parts: ['context', 'kernels'] }).map(([, a]) => a[0])).toEqual(['--context', '--kernels']);
  });

  it('an unknown --parts entry is one line, exit 2', () => {
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--all', '--parts', 'kernels,bogus', '--preset', 'finch-tiny'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^rwkvc: --parts: 'bogus' is not one of wasm, onnxruntime, context, kernels, wgsl$/)]);
  });
});
