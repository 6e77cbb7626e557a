/**
 * `rwkvc bench --all`: the parts are the commands a user would type (charts into the --plot folder),
 * --parts picks among them, an unknown part is one line before anything runs, and a run prints its
 * progress and writes RESULTS.md with each command and its time.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allParts, PART_KEYS } from '../bench/all.ts';

describe('rwkvc bench --all', () => {
  it('runs each part as its own rwkvc bench command, charts into the folder', () => {
    const all = allParts({ dir: 'docs/bench', preset: 'bench-0.1b', threads: 2 });
    expect(all.map((p) => p.key)).toEqual(['wasm', 'wllama', 'wllama', 'onnxruntime', 'context', 'kernels', 'wgsl']);
    expect(new Set(all.map((p) => p.key))).toEqual(new Set(PART_KEYS));
    for (const { args } of all) expect(args.slice(args.indexOf('--preset'), args.indexOf('--preset') + 2)).toEqual(['--preset', 'bench-0.1b']);
    expect(all.flatMap(({ args }) => args.filter((x) => x.endsWith('.svg')))).toEqual(['docs/bench/wasm.svg', 'docs/bench/context.svg']);
    // the peers the issue names, each in a part
    expect(all.filter((p) => p.args.includes('--peer')).map((p) => p.args[p.args.indexOf('--peer') + 1])).toEqual(['wllama', 'wllama', 'onnxruntime']);
    expect(allParts({ dir: 'd', preset: 'finch-tiny', threads: 1, parts: ['context', 'kernels'] }).map((p) => p.args[0])).toEqual(['--context', '--kernels']);
  });

  it('an unknown --parts entry is one line, exit 2', () => {
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--all', '--parts', 'kernels,bogus', '--preset', 'finch-tiny'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^rwkvc: --parts: 'bogus' is not one of wasm, wllama, onnxruntime, context, kernels, wgsl$/)]);
  });

  it('prints each part as it starts and ends and writes its command, time and output to RESULTS.md', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rwkvc-all-'));
    try {
      // the context part at two short positions stands in for any part: the same runner runs them all
      const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--all', '--parts', 'context', '--preset', 'finch-tiny', '--threads', '1', '--plot', dir], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(join(dir, 'RESULTS.md'));
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(/^rwkvc bench --all \[1\/1 0m0\ds\] context length .*: rwkvc bench --context --preset finch-tiny --threads 1 --decode 16 --plot /);
      expect(lines.at(-2)).toMatch(/^rwkvc bench --all \[1\/1 \d+m\d\ds\] done in \d+ s$/);
      expect(lines.at(-1)).toMatch(/^rwkvc bench --all all parts in \d+m\d\ds$/);
      const md = readFileSync(join(dir, 'RESULTS.md'), 'utf8');
      expect(md).toMatch(/^Regenerate: `rwkvc bench --all --plot .* --preset finch-tiny --threads 1` .*this run took \d+m\d\ds\)\.$/m);
      expect(md).toMatch(/^`rwkvc bench --context --preset finch-tiny .*` \(\d+ s\)$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
