/**
 * The native read probe (bench/bandwidth.ts): whole page-aligned shares per thread, a finite rate for
 * 1 and 2 threads (a pass that found the absent byte would throw). Rates are not asserted.
 */
import { describe, expect, it } from 'vitest';
import { machineLine, openNativeProbe } from '../bench/bandwidth.ts';

describe('native bandwidth probe', () => {
  it.each([1, 2])('%i thread(s): whole shares scanned, a finite rate', async (threads) => {
    const p = await openNativeProbe(threads, 64 * 2 ** 20);
    try {
      expect(p.bytes % (threads * 4096)).toBe(0);
      expect(p.bytes).toBeGreaterThan(63 * 2 ** 20);
      const r = await p.pass();
      expect(Number.isFinite(r) && r > 0).toBe(true);
    } finally {
      await p.dispose();
    }
  });

  it('names the CPU and its SIMD flags', () => {
    expect(machineLine()).toMatch(/^.+, \d+ cores; flags: /);
  });
});
