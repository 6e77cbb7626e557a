/**
 * `rwkvc bench --context` at tiny sizes: the rows are well formed, the memory figures are measured
 * (RWKV's state read back: exactly its tensors' bytes, the same at every position; llama.cpp's saved
 * sequence growing with the tokens in its KV cache), and bad positions are one line. Speeds are not
 * asserted (a shared machine makes them noise).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseContexts } from '../bench/context.ts';
import { PRESETS } from '../runtime/presets.ts';

const dir = mkdtempSync(join(tmpdir(), 'rwkvc-bench-context-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseContexts', () => {
  it('reads k as 1024, sorts and dedupes; refuses anything else in one line naming --contexts', () => {
    expect(parseContexts('1,256,1k,4k,16k')).toEqual([1, 256, 1024, 4096, 16384]);
    expect(parseContexts('4k, 1 ,4096')).toEqual([1, 4096]);
    for (const bad of ['', '0', '1,,2', '-1', '1.5', '2m', '300k', 'x'.repeat(500)]) {
      expect(() => parseContexts(bad), bad).toThrow(/^--contexts: '.{0,40}' is not a position from 1 to 256k/);
    }
  });
});

describe('rwkvc bench --context', () => {
  it('measures rwkvc and a same-shape LLaMA in llama.cpp (flash attention on and off) at each position', () => {
    // --plot as --all passes it, a folder: the chart is FOLDER/context.svg
    const svg = join(dir, 'charts', 'context.svg');
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--context', '--preset', 'finch-tiny', '--contexts', '1,300', '--threads', '1',
      '--decode', '4', '--json', '--plot', join(dir, 'charts')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.machine).toMatch(/cores; flags:/);
    expect(o.skipped).toEqual([]);
    const impls = [...new Set(o.rows.map((x: { impl: string }) => x.impl))] as string[];
    expect(impls).toHaveLength(3);
    expect(impls[0]).toMatch(/^rwkvc RWKV-6 \(wasm/);
    expect(impls.slice(1).map((s) => s.replace(/ \(1T\)$/, ''))).toEqual(['llama.cpp LLaMA F32, flash attention on', 'llama.cpp LLaMA F32, flash attention off']);
    const cfg = PRESETS['finch-tiny'];
    const stateBytes = cfg.nLayer * (2 * cfg.nEmbd + cfg.nHead * cfg.headSize * cfg.headSize) * 4;
    for (const impl of impls) {
      const rows = o.rows.filter((x: { impl: string }) => x.impl === impl);
      expect(rows.map((x: { position: number }) => x.position)).toEqual([1, 300]);
      for (const x of rows) {
        expect(Number.isFinite(x.msPerToken) && x.msPerToken > 0).toBe(true);
        expect(x.samples).toBe(4);
        expect(x.msQ1 <= x.msPerToken && x.msPerToken <= x.msQ3).toBe(true);
      }
      // the trend column: each median over the first position's
      expect(rows[0].vsFirst).toBe(1);
      expect(rows[1].vsFirst).toBeCloseTo(rows[1].msPerToken / rows[0].msPerToken, 12);
      // the second position's prefill starts where the first position's decode steps left off
      expect(rows[1].prefillTokens).toBe(300 - (1 + 4));
      if (impl.startsWith('rwkvc')) expect(rows.map((x: { memoryBytes: number }) => x.memoryBytes)).toEqual([stateBytes, stateBytes]);
      else expect(rows[1].memoryBytes).toBeGreaterThan(10 * rows[0].memoryBytes); // the KV cells in use: it grew with the context
    }
    expect(existsSync(svg) && readFileSync(svg, 'utf8')).toMatch(/^<svg/);
  }, 120_000);

  it('a bad --contexts is one line, exit 2', () => {
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--context', '--preset', 'finch-tiny', '--contexts', '1,abc'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^rwkvc: --contexts: 'abc' is not a position/)]);
  });
});
