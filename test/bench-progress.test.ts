/**
 * `rwkvc bench` says what it is doing while it starts (issue 16: piped, it printed empty lines, then nothing
 * for minutes): one `rwkvc bench: …` line per start-up phase on stderr, and no blank lines from the progress
 * bars, which are drawn only on a terminal. Run on the CUDA emulator (cuda-sim: the cheapest target bench
 * measures here, no bandwidth probe) from a fresh working directory, so the cached checkpoint is built.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

describe('rwkvc bench start-up', () => {
  it('names each phase on stderr when piped, with no empty lines', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'rwkvc-bench-'));
    const r = spawnSync('node', [join(ROOT, 'bin', 'rwkvc.js'), 'bench', '--target', 'cuda-sim', '--preset', 'finch-tiny', '--decode', '1', '--prefill', '1', '--peer', 'none'],
      { cwd, encoding: 'utf8', env: { ...process.env, RWKVC_FROM_SOURCE: '1' } });
    if (r.status === 2 && /g\+\+|emulator/.test(r.stderr)) return void console.warn(`[skip] cuda-sim cannot run here: ${r.stderr.trim()}`);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split('\n');
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(0, -1)).toEqual([
      `rwkvc bench: building the finch-tiny checkpoint (seeded random weights, once) → ${join(cwd, 'out', 'cache', 'finch-tiny-seed1.safetensors')}`,
      `rwkvc bench: compiling ${join(ROOT, 'examples', 'finch.ts')} for finch-tiny (f32 weights)`,
    ]);
    expect(r.stdout).toMatch(/^cuda-sim finch-tiny weights f32/);
  }, 180_000);
});
