/**
 * `rwkvc bench --target wgsl --peer onnxruntime`: our WGSL runtime and onnxruntime-web's WebGPU EP in one headless
 * Chromium page on the same device (bench/onnxruntime-webgpu.ts), run by the CLI as users run it (the built one
 * when dist/ is current, whose served root holds no node_modules: the page once failed to load there), on finch-tiny.
 * Skipped, with the reason printed, where there is no Chromium.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

it('times both engines in one page and gives rwkvc\'s speedups', (ctx) => {
  if (!CHROMIUM) {
    console.warn('[skip] no Chromium (apt-get install chromium)');
    return ctx.skip();
  }
  const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--target', 'wgsl', '--preset', 'finch-tiny', '--decode', '4', '--prefill', '8', '--peer', 'onnxruntime', '--json'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const o = JSON.parse(r.stdout);
  expect(o.error, o.error).toBeUndefined();
  expect(o.software).toBe(true); // SwiftShader here: the report says to compare ratios only
  expect(o.engines.map((e: { name: string }) => e.name)).toEqual([expect.stringMatching(/^rwkvc wgsl/), expect.stringMatching(/^onnxruntime-web WebGPU EP/)]);
  for (const e of o.engines) for (const v of [e.loadMs, e.decodeMsPerToken, e.prefillTokensPerS]) expect(Number.isFinite(v) && v > 0, `${e.name}: ${v}`).toBe(true);
  const [ours, ort] = o.engines;
  expect(o.speedup.decode).toBeCloseTo(ort.decodeMsPerToken / ours.decodeMsPerToken, 6);
  expect(o.speedup.prefill).toBeCloseTo(ours.prefillTokensPerS / ort.prefillTokensPerS, 6);
}, 300_000 /* shaders compiled on a software rasteriser and a Chromium start: about a minute on a loaded 2-core machine */);
