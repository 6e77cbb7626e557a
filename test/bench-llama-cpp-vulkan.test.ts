/**
 * llama.cpp's Vulkan build as the wgsl bench's peer (bench/llama-cpp-vulkan.ts) on finch-tiny's GGUF, on
 * SwiftShader (the device Dawn falls back to here): it either runs (decode and prefill times) or says
 * in one line what ggml-vulkan refused, in ggml's own words, and the parent survives the child's crash.
 * Skipped, with the reason printed, where there is no SwiftShader or the Vulkan build cannot load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { openLlamaCppVulkan } from '../bench/llama-cpp-vulkan.ts';
import { writeGguf } from '../runtime/checkpoint/gguf-write.ts';
import { openModel } from '../runtime/model.ts';
import { PRESETS } from '../runtime/presets.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import { swiftShaderIcd } from '../targets/wgsl/device.ts';

const dir = mkdtempSync(join(tmpdir(), 'rwkvc-llama-vulkan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('runs on SwiftShader, or names what ggml-vulkan refused in one line', async (ctx) => {
  if (!(await swiftShaderIcd())) {
    console.warn('skipped: no SwiftShader ICD (apt-get install chromium)');
    return ctx.skip();
  }
  const st = join(dir, 'tiny.safetensors'), gguf = join(dir, 'tiny.f32.gguf');
  writeRandomModel(st, PRESETS['finch-tiny'], 1, 'bf16');
  const m = openModel(st);
  writeGguf(gguf, m.config, m.read, 'f32', { name: 'tiny' });
  m.close();
  const s = await openLlamaCppVulkan(gguf, 'f32', 1, m.config.vocabSize, 'google / swiftshader / SwiftShader');
  if ('unavailable' in s) {
    if (/not installed|is not compatible with the current system/.test(s.unavailable)) {
      console.warn(`skipped: ${s.unavailable}`);
      return ctx.skip();
    }
    // the reason is ggml's: the feature SwiftShader lacks, then the refusal (and the crash it survived)
    expect(s.unavailable).not.toMatch(/\n/);
    // ggml names the feature first; then either llama_model_load's refusal is printed, or (seen in a quiet run
    // of `bench --all`, with the child's stderr read to its end) node-llama-cpp crashed before printing it
    expect(s.unavailable).toMatch(/^llama\.cpp's Vulkan build cannot run on .*SwiftShader: ggml_vulkan: device Vulkan0 does not support [^;(]+?(; error loading model: Unsupported device| \(then the llama\.cpp process crashed with SIGSEGV\))/);
    return;
  }
  try {
    expect(s.name).toMatch(/ vulkan on .*SwiftShader/);
    const times = await s.decodeRound(3);
    expect(times).toHaveLength(3);
    for (const t of [...times, await s.prefill(16)]) expect(t).toBeGreaterThan(0);
  } finally {
    await s.dispose();
  }
}, 60_000);
