/**
 * `rwkvc bench --preset qrwkv6-tiny`: a QRWKV6 preset's seeded checkpoint is a Hugging Face folder
 * (runtime/random-qrwkv6.ts), compiled with examples/qrwkv6.ts. Run on the CUDA emulator, which has no
 * bandwidth probes to wait for (the wasm bench's are 1 GiB reads), for a couple of tokens.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('rwkvc bench --preset qrwkv6-tiny', () => {
  it('builds the random QRWKV6 folder and benchmarks the QRWKV6 plan', () => {
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--target', 'cuda-sim', '--preset', 'qrwkv6-tiny',
      '--decode', '2', '--prefill', '4', '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/compiling \S*examples[/\\]qrwkv6\.[jt]s for qrwkv6-tiny/);
    expect(existsSync(resolve('out', 'cache', 'qrwkv6-tiny-seed1', 'config.json'))).toBe(true);
    const o = JSON.parse(r.stdout);
    expect(o).toMatchObject({ target: 'cuda-sim', model: 'qrwkv6-tiny', prefill: { tokens: 4 } });
    for (const v of [o.decode.tokensPerSecond, o.decode.weightBytesPerToken, o.prefill.tokensPerSecond]) expect(Number.isFinite(v) && v > 0, String(v)).toBe(true);
  }, 300_000);
});
