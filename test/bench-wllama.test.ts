/**
 * wllama (llama.cpp in WASM, bench/wllama.ts) as a same-run peer of `rwkvc bench --target wasm`: in headless
 * Chromium on the same GGUF, with its decode and prefill times from llama.cpp's own timings; in Node it
 * cannot run, and says why in one line. Speeds are never asserted, only that each is measured.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ggufFor } from '../bench/llama-cpp.ts';
import { openWllama, wllamaInNode } from '../bench/wllama.ts';
import { openModel } from '../runtime/model.ts';
import { PRESETS } from '../runtime/presets.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import { browserSkipReason } from './helpers/browser.ts';

/** The whole `rwkvc bench --peer wllama` command (its 1 GiB read probes: minutes on a loaded machine) only when asked. */
const SLOW = process.env.RWKVC_SLOW_TESTS === '1';
if (!SLOW) console.warn('[skip] rwkvc bench --peer wllama end to end: set RWKVC_SLOW_TESTS=1');

describe('wllama peer', () => {
  it('in Node: one line naming what is missing, or null once it constructs', async () => {
    const why = await wllamaInNode();
    if (why !== null) {
      expect(why.split('\n')).toHaveLength(1);
      expect(why).toMatch(/^wllama cannot run in Node: /);
    }
  });

  it('without a browser it is a skipped peer with the reason, not a failure', async () => {
    const s = await openWllama('/nonexistent.gguf', 'f32', 1, { nCtx: 64, chromium: '/nonexistent/chromium' });
    expect(s).toEqual({ unavailable: expect.stringMatching(/^wllama runs in a browser and there is no Chromium at \/nonexistent\/chromium/) });
  });

  describe.skipIf(browserSkipReason())('in headless Chromium', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rwkvc-wllama-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('decodes and prefills a finch-tiny Q8_0 GGUF, one time per token, from llama.cpp\'s timings', async () => {
      const ckpt = join(dir, 'finch-tiny.safetensors');
      writeRandomModel(ckpt, PRESETS['finch-tiny'], 1, 'bf16');
      const m = openModel(ckpt);
      const gguf = ggufFor(ckpt, m.config, m.read, 'q8_0', dir);
      m.close();
      const s = await openWllama(gguf, 'q8_0', 1, { nCtx: 64 });
      if ('unavailable' in s) throw new Error(s.unavailable);
      try {
        expect(s.name).toMatch(/^wllama \d+\.\d+\.\d+ \(llama\.cpp WASM SIMD, 1 thread, HeadlessChrome\//);
        expect(s.weights).toBe('Q8_0');
        const t = await s.decodeRound(8);
        expect(t).toHaveLength(8);
        for (const v of [...t, await s.prefill(32), s.loadMs]) expect(Number.isFinite(v) && v > 0, String(v)).toBe(true);
        // a prompt longer than the context (64, which llama.cpp pads to 256) is refused, and llama.cpp's reason comes back
        await expect(s.prefill(1000)).rejects.toThrow(/exceeds the available context size/);
      } finally {
        await s.dispose();
      }
    }, 120_000);

    it.skipIf(!SLOW)('rwkvc bench --peer wllama: decode and prefill of the same GGUF in the same rounds', () => {
      const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--target', 'wasm', '--preset', 'finch-tiny', '--threads', '1',
        '--peer', 'wllama', '--decode', '64', '--prefill', '160', '--json'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const o = JSON.parse(r.stdout);
      expect(o.peers).toHaveLength(1);
      const [peer] = o.peers;
      expect(peer.skipped).toBeUndefined();
      expect(peer).toMatchObject({ weights: 'F32', name: expect.stringMatching(/^wllama \d+\.\d+\.\d+ \(llama\.cpp WASM SIMD, 1 thread, HeadlessChrome\//) });
      // one time per token it decoded (each round's mean, from llama.cpp's timings), as many as ours
      expect(peer.decode.tokens).toBe(o.decode.tokens);
      for (const v of [peer.decode.msPerToken, peer.prefill.tokensPerSecond]) expect(Number.isFinite(v) && v > 0, String(v)).toBe(true);
      expect(peer.decodeSpeedup).toBeCloseTo(peer.decode.msPerToken / o.decode.msPerToken, 6);
      // wllama is timed on at most 128 tokens (its prefillCap), and against ours on a prompt of that length
      expect(o.prefill.tokens).toBe(160);
      expect(peer.prefill.tokens).toBe(128);
      expect(peer.prefill.oursTokensPerSecond).toBeGreaterThan(0);
      expect(peer.prefillSpeedup).toBeCloseTo(peer.prefill.oursTokensPerSecond / peer.prefill.tokensPerSecond, 6);
    }, 300_000 /* the wasm bench's 1 GiB read probes and a Chromium start; minutes on a loaded 2-core machine */);
  });
});
