/**
 * `rwkvc bench --all`: the parts are the commands a user would type (charts into the --plot folder),
 * --parts picks among them, an unknown part is one line before anything runs, and a run prints its
 * progress and writes RESULTS.md with each command and its time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allParts, benchAll, ownBin, PART_KEYS } from '../bench/all.ts';

describe('rwkvc bench --all', () => {
  it('runs the parts with this package\'s bin/rwkvc.js from the sources and from the build (dist/bench/all.js)', async () => {
    expect(ownBin()).toBe(resolve('bin/rwkvc.js'));
    // CI builds dist/ before the tests; a build's parts once looked for dist/bin/rwkvc.js and every part failed
    const built = resolve('dist/bench/all.js');
    if (!existsSync(built)) return void console.warn('[skip] the built half: no dist/ (npm run build)');
    const { ownBin: builtBin } = await import(pathToFileURL(built).href) as typeof import('../bench/all.ts');
    expect(builtBin()).toBe(resolve('bin/rwkvc.js'));
  });

  it('runs each part as its own rwkvc bench command, charts into the folder', () => {
    const all = allParts({ dir: 'docs/bench', preset: 'bench-0.1b', threads: 2 });
    expect(all.map((p) => p.key)).toEqual(['wasm', 'onnxruntime', 'context', 'kernels', 'real-size', 'real-size', 'wgsl', 'wgsl']);
    expect(new Set(all.map((p) => p.key))).toEqual(new Set(PART_KEYS));
    // the SwiftShader (WebGPU) parts run the fixture shape; the rest the preset asked for
    const preset = { wgsl: 'finch-tiny', 'real-size': 'finch-1b6' } as Record<string, string>;
    for (const { key, args } of all) expect(args.slice(args.indexOf('--preset'), args.indexOf('--preset') + 2)).toEqual(['--preset', preset[key] ?? 'bench-0.1b']);
    expect(all.flatMap(({ args }) => args.filter((x) => x.endsWith('.svg')))).toEqual(['docs/bench/wasm.svg', 'docs/bench/context.svg']);
    // the peers the issue names, each in a part
    expect(all.filter((p) => p.args.includes('--peer')).map((p) => p.args[p.args.indexOf('--peer') + 1])).toEqual(['all', 'onnxruntime', 'llama.cpp', 'llama.cpp', 'onnxruntime']);
    expect(allParts({ dir: 'd', preset: 'finch-tiny', threads: 1, parts: ['context', 'kernels'] }).map((p) => p.args[0])).toEqual(['--context', '--kernels']);
  });

  it('an unknown --parts entry is one line, exit 2', () => {
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--all', '--parts', 'kernels,bogus', '--preset', 'finch-tiny'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^rwkvc: --parts: 'bogus' is not one of wasm, onnxruntime, context, kernels, real-size, wgsl$/)]);
  });

  it('prints each part as it starts and ends, passes its status lines on, and writes its command, time and output to RESULTS.md', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rwkvc-all-'));
    try {
      // a stand-in for bin/rwkvc.js: the kernels part prints a table, the context part fails after a status line
      const bin = join(dir, 'fake-rwkvc.mjs');
      writeFileSync(bin, `const a = process.argv.slice(3);
process.stderr.write('rwkvc bench: compiling\\n');
if (a[0] === '--context') { process.stderr.write('Error: out of memory\\n'); process.exit(3); }
process.stdout.write('table for ' + a.join(' ') + '\\n');`);
      const lines: string[] = [];
      const r = await benchAll({ dir, preset: 'finch-tiny', threads: 1, parts: ['context', 'kernels'], bin, onLine: (l) => lines.push(l) });
      expect(r.file).toBe(join(dir, 'RESULTS.md'));
      expect(r.failed).toEqual([expect.stringMatching(/^context length/)]);
      expect(lines.map((l) => l.replace(/\d+m\d\ds/, 'T').replace(/in \d+ s/, 'in S'))).toEqual([
        expect.stringMatching(/^\[1\/2 T\] context length .*: rwkvc bench --context --preset finch-tiny --threads 1 --decode 16 --plot /),
        '[1/2 T]   rwkvc bench: compiling',
        '[1/2 T]   Error: out of memory',
        '[1/2 T] failed (exit 3) in S',
        expect.stringMatching(/^\[2\/2 T\] per-kernel .*: rwkvc bench --kernels --preset finch-tiny --threads 1$/),
        '[2/2 T]   rwkvc bench: compiling',
        '[2/2 T] done in S',
        expect.stringMatching(/^all parts in T; failed: context length/),
      ]);
      const md = readFileSync(r.file, 'utf8');
      expect(md).toMatch(/^Regenerate: `rwkvc bench --all --plot .* --preset finch-tiny --threads 1` .*this run took \d+m\d\ds\)\.$/m);
      expect(md).toContain('`rwkvc bench --kernels --preset finch-tiny --threads 1` (');
      expect(md).toContain('table for --kernels --preset finch-tiny --threads 1');
      // a failed part keeps its last status lines in place of a table
      expect(md).toMatch(/, exit 3\)\n\n```\nrwkvc bench: compiling\nError: out of memory\n```/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
