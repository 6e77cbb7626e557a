/**
 * `rwkvc bench` as users run it: the JSON fields the WASM benchmark promises, and the roofline
 * probes' structure. Speeds are never asserted (a shared machine makes them noise); what is checked
 * is that every number is there, finite and measured against limits of the same run.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { probeWat } from '../bench/wasm-roofline.ts';
import { openOrtPeer } from '../bench/onnxruntime.ts';
import { parsePeers } from '../cli/bench.ts';
import { DEFAULT_DSL } from '../driver/dsl.ts';
import type { OpenModel } from '../runtime/model.ts';

describe('roofline probes', () => {
  it.each([false, true])('the compute probe stores a value that depends on every chain (relaxed %s)', (relaxed) => {
    // A chain whose result is unused is removed by the engine, and the probe would count flops it
    // never ran (it once reported 1.5× the machine's real FMA peak that way).
    const wat = probeWat(relaxed, 64);
    const chains = [...wat.matchAll(/\(local \$a(\d+) v128\)/g)].map((m) => Number(m[1]));
    expect(chains.length).toBeGreaterThanOrEqual(8);
    const store = wat.slice(wat.lastIndexOf('(v128.store (global.get $ts)'));
    for (const k of chains) expect(store, `chain $a${k}`).toContain(`(local.get $a${k})`);
  });
});

describe('rwkvc bench --target wasm --json', () => {
  it('prints one object with decode, prefill and the limits measured in the same run', () => {
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--target', 'wasm', '--preset', 'finch-tiny', '--threads', '1',
      '--decode', '64', '--prefill', '16', '--peer', 'llama.cpp,onnxruntime', '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o).toMatchObject({ target: 'wasm', weights: 'f32', threads: 1 });
    const positive = [o.decode.tokensPerSecond, o.decode.weightBytesPerToken, o.decode.bandwidthFraction,
      o.prefill.tokensPerSecond, o.prefill.computeFraction, o.limits.bandwidthGBs, o.limits.computeGFLOPs];
    for (const v of positive) expect(Number.isFinite(v) && v > 0, String(v)).toBe(true);
    expect(o.decode.tokens).toBeGreaterThanOrEqual(64);
    expect(o.prefill.tokens).toBe(16);
    // the fractions are the achieved rates over the limits printed beside them
    expect(o.decode.bandwidthFraction).toBeCloseTo(o.decode.achievedGBs / o.limits.bandwidthGBs, 6);
    expect(o.prefill.computeFraction).toBeCloseTo(o.prefill.matmulGFLOPs / o.limits.computeGFLOPs, 6);
    // the native limit (glibc memchr through Buffer.indexOf) in the same rounds, and the machine named
    expect(o.limits.nativeBandwidthGBs).toBeGreaterThan(0);
    expect(o.decode.nativeBandwidthFraction).toBeCloseTo(o.decode.achievedGBs / o.limits.nativeBandwidthGBs, 6);
    expect(o.machine).toMatch(/cores; flags:/);
    expect(o.decode.rwkvCppMsPerToken).toBeUndefined(); // rwkv.cpp's recorded numbers are for bench-0.1b only
    // llama.cpp and both onnxruntimes ran the same checkpoint in the same rounds, in the order asked
    // (node-llama-cpp, onnxruntime-node and onnxruntime-web are devDependencies)
    expect(o.peers.map((p: { name: string }) => p.name.split(' ')[0])).toEqual(['llama.cpp', 'onnxruntime-node', 'onnxruntime-web']);
    for (const p of o.peers) {
      expect(p.skipped, p.name).toBeUndefined();
      expect(p.weights).toBe('F32');
      expect(p.decode.tokens).toBe(o.decode.tokens);
      for (const v of [p.decode.msPerToken, p.prefill.tokensPerSecond]) expect(Number.isFinite(v) && v > 0, String(v)).toBe(true);
      expect(p.decodeSpeedup).toBeCloseTo(p.decode.msPerToken / o.decode.msPerToken, 6);
      // uncapped peers: the same prompt length as ours, compared with ours on it
      expect(p.prefill.tokens).toBe(o.prefill.tokens);
      expect(p.prefillSpeedup).toBeCloseTo(o.prefill.tokensPerSecond / p.prefill.tokensPerSecond, 6);
    }
  }, 300_000 /* two 1 GiB read probes per round; minutes on a loaded 2-core machine */);
});

describe('rwkvc bench --peer', () => {
  it('takes a list, all or none; an unknown name is one line, exit 2, before anything loads', () => {
    expect(parsePeers('llama.cpp')).toEqual(['llama.cpp']);
    expect(parsePeers('onnxruntime,llama.cpp')).toEqual(['onnxruntime-node', 'onnxruntime-web', 'llama.cpp']);
    expect(parsePeers('all')).toEqual(['llama.cpp', 'wllama', 'onnxruntime-node', 'onnxruntime-web']);
    expect(parsePeers('none')).toEqual([]);
    expect(() => parsePeers('llama.cpp,ort')).toThrow(/^--peer: 'ort' is not one of llama\.cpp, wllama, onnxruntime-node, onnxruntime-web, onnxruntime, all, none$/);
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--peer', 'bogus'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^rwkvc: --peer: 'bogus' is not one of /)]);
  });

  it('onnxruntime is a skipped peer for a format its export lacks, with why', async () => {
    // no checkpoint is read before the format is refused
    const m = { path: '/nonexistent.safetensors', config: { vocabSize: 0 } } as unknown as OpenModel;
    for (const w of ['int8', 'q4_0']) expect(await openOrtPeer('node', m, DEFAULT_DSL, w, 1, '/nonexistent')).toEqual({ unavailable: `the ONNX export stores f32 or f16 matrices, not ${w}` });
  });
});

describe('rwkvc bench --target cuda', () => {
  it('runs its whole path on the CUDA emulator (cuda-sim: no bandwidth limit there) and says plainly when there is no GPU', () => {
    const r = spawnSync('node', ['bin/rwkvc.js', 'bench', '--target', 'cuda-sim', '--preset', 'finch-tiny', '--weights', 'int8',
      '--decode', '8', '--prefill', '16', '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o).toMatchObject({ target: 'cuda-sim', weights: 'int8', limits: {} });
    expect(o.adapter).toMatch(/emulator/);
    for (const v of [o.decode.tokensPerSecond, o.decode.weightBytesPerToken, o.prefill.tokensPerSecond]) expect(Number.isFinite(v) && v > 0, String(v)).toBe(true);
    expect(o.decode.graphLaunchesPerToken).toBe(1); // decode replays one captured graph
    expect(o.prefill.tokens).toBe(16);
    const gpu = spawnSync('node', ['bin/rwkvc.js', 'bench', '--target', 'cuda', '--preset', 'finch-tiny'], { encoding: 'utf8', env: { ...process.env, RWKVC_SIM_NO_DEVICE: '1' } });
    if (gpu.status !== 0) {
      expect(gpu.status).toBe(2);
      expect(gpu.stderr.trim().split('\n')).toHaveLength(1);
      expect(gpu.stderr).toMatch(/^rwkvc: no CUDA (driver|device)/);
    }
  }, 300_000);
});
