/**
 * llama.cpp's Vulkan backend (node-llama-cpp's prebuilt `linux-x64-vulkan` build) as the peer of
 * `--target wgsl`, on the Vulkan device Dawn used: `rwkvc bench --target wgsl --peer llama.cpp`.
 *
 * It runs in a child process (this file, run as a script), because ggml-vulkan on a device it refuses
 * does not always fail cleanly: on SwiftShader, llama_model_load throws "Unsupported device" and
 * node-llama-cpp then dies with SIGSEGV in the same process. The parent drives the child's
 * PeerSession (bench/llama-cpp.ts's openLlamaCpp with gpu 'vulkan') over stdin/stdout, and when the
 * child fails it reports ggml's own diagnostic lines, so the reason is one line naming what the
 * device lacks.
 *
 * What the child needs from the environment, when Dawn ran on SwiftShader:
 *   - a Vulkan loader: Chromium's beside SwiftShader (LD_LIBRARY_PATH; libvulkan1 is not a dependency of
 *     Debian's chromium, and node-llama-cpp checks the binary in a process of its own, so an in-process
 *     preload as targets/wgsl/device.ts does for Dawn is not enough);
 *   - VK_ICD_FILENAMES naming SwiftShader's ICD, as Dawn's fallback does;
 *   - GGML_VK_VISIBLE_DEVICES=0: ggml-vulkan skips devices of type CPU ("No devices found") unless named.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { GgufFormat } from '../runtime/checkpoint/gguf-write.ts';
import type { PeerSession } from './llama-cpp.ts';

/** ggml's and node-llama-cpp's lines that say why a device or binary was refused. */
const DIAGNOSTIC = /ggml_vulkan: (?:.*does not support.*|No devices found.*)|error loading model.*|The prebuilt binary .* is not compatible with the current system/;

/** The environment the child needs to see the Vulkan device Dawn used (`adapter`: its description). */
async function childEnv(adapter: string): Promise<NodeJS.ProcessEnv> {
  const env = { ...process.env };
  if (!/swiftshader/i.test(adapter)) return env;
  const { swiftShaderIcd } = await import('../targets/wgsl/device.ts');
  const icd = await swiftShaderIcd();
  if (!icd) return env;
  env.VK_ICD_FILENAMES ??= icd;
  env.GGML_VK_VISIBLE_DEVICES ??= '0';
  // Chromium's loader beside its ICD (not probed here: Dawn has already loaded it into this process,
  // so a dlopen by soname succeeds whether or not the system has one)
  if (existsSync(join(dirname(icd), 'libvulkan.so.1'))) env.LD_LIBRARY_PATH = [dirname(icd), env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  return env;
}

/**
 * llama.cpp on `gguf` through ggml-vulkan, on the device Dawn reported as `adapter`, in a child
 * process; or why it cannot run there (one line).
 */
export async function openLlamaCppVulkan(gguf: string, weights: GgufFormat, threads: number, vocabSize: number, adapter: string): Promise<PeerSession | { unavailable: string }> {
  const self = fileURLToPath(import.meta.url);
  // the sources run through tsx (a checkout), the built package as plain JS
  const args = self.endsWith('.ts') ? ['--import', import.meta.resolve('tsx/esm'), self] : [self];
  const child = spawn(process.execPath, [...args, JSON.stringify({ gguf, weights, threads, vocabSize })], {
    env: await childEnv(adapter), stdio: ['pipe', 'pipe', 'pipe'],
  });
  const diagnostics = new Set<string>();
  const scan = (line: string) => { const m = DIAGNOSTIC.exec(line); if (m) diagnostics.add(m[0].replace(/\.$/, '')); };
  createInterface({ input: child.stderr }).on('line', scan);
  const replies: ((o: Record<string, unknown>) => void)[] = [];
  let exited: string | undefined;
  const fail = () => {
    const why = [...diagnostics].join('; ') || 'no diagnostic from ggml';
    return `llama.cpp's Vulkan build cannot run on ${adapter}: ${why}${exited && exited !== 'exited' ? ` (then the llama.cpp process ${exited})` : ''}`;
  };
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith('\u0001')) replies.shift()?.(JSON.parse(line.slice(1)));
    else scan(line);
  });
  // 'close', not 'exit': 'exit' may come before the last stderr lines are read (ggml's "error loading model"
  // was missing from the reason under load), 'close' only after the child's stdio has ended
  const done = new Promise<void>((res) => child.on('close', (code, signal) => {
    exited = signal ? `crashed with ${signal}` : code ? `exited with status ${code}` : 'exited';
    for (const r of replies.splice(0)) r({ error: fail() });
    res();
  }));
  const ask = (o: Record<string, unknown>) => new Promise<Record<string, unknown>>((res) => {
    if (exited) return res({ error: fail() });
    replies.push(res);
    child.stdin.write(JSON.stringify(o) + '\n');
  });
  const call = async <T>(o: Record<string, unknown>): Promise<T> => {
    const r = await ask(o);
    if ('error' in r) throw new Error(String(r.error));
    return r.value as T;
  };
  const hello = await new Promise<Record<string, unknown>>((res) => { replies.push(res); });
  if (!('name' in hello)) {
    child.kill();
    await done;
    const own = typeof hello.unavailable === 'string' ? hello.unavailable : undefined;
    // ggml's lines name what the device lacks; node-llama-cpp's own message only that loading failed
    return { unavailable: diagnostics.size || !own ? fail() : own };
  }
  return {
    name: String(hello.name),
    weights: weights.toUpperCase(),
    decodeRound: (n) => call<number[]>({ op: 'decode', n }),
    prefill: (n) => call<number>({ op: 'prefill', n }),
    async dispose() {
      if (!exited) { child.stdin.end(); await done; }
    },
  };
}

/** The child: one PeerSession, driven by JSON lines on stdin, answered by \u0001-prefixed JSON lines on stdout. */
async function serveChild(arg: string): Promise<void> {
  const { gguf, weights, threads, vocabSize } = JSON.parse(arg) as { gguf: string; weights: GgufFormat; threads: number; vocabSize: number };
  const reply = (o: Record<string, unknown>) => process.stdout.write(`\u0001${JSON.stringify(o)}\n`);
  const { openLlamaCpp } = await import('./llama-cpp.ts');
  const s = await openLlamaCpp(gguf, weights, threads, vocabSize, 'vulkan');
  if ('unavailable' in s) { reply(s); return; }
  reply({ name: s.name });
  for await (const line of createInterface({ input: process.stdin })) {
    const o = JSON.parse(line) as { op: string; n: number };
    try {
      reply({ value: o.op === 'decode' ? await s.decodeRound(o.n) : await s.prefill(o.n) });
    } catch (e) {
      reply({ error: (e as Error).message.split('\n')[0] });
    }
  }
  await s.dispose();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await serveChild(process.argv[2]);

/** The wgsl bench's peer line: llama.cpp's Vulkan build on the same GGUF and device, or why not. */
export type VulkanPeerReport = { name: string; skipped: string } | {
  name: string; weights: string; note: string;
  decode: { tokensPerSecond: number; msPerToken: number; tokens: number }; prefill: { tokensPerSecond: number; tokens: number };
  decodeSpeedup: number; prefillSpeedup: number;
};

/**
 * Measure the Vulkan peer as benchWgsl measured us, right after it: mean ms of `decode` steps after two
 * warm-up ones, and the mean of three `prefillTokens` prefills after one warm-up.
 */
export async function benchVulkanPeer(gguf: string, weights: GgufFormat, threads: number, vocabSize: number, adapter: string, decode: number, prefillTokens: number,
  ours: { msPerToken: number; prefillTokensPerSecond: number }): Promise<VulkanPeerReport> {
  const s = await openLlamaCppVulkan(gguf, weights, threads, vocabSize, adapter);
  if ('unavailable' in s) return { name: "llama.cpp's Vulkan build", skipped: s.unavailable };
  try {
    const steps = (await s.decodeRound(decode + 2)).slice(2);
    const msPerToken = steps.reduce((a, b) => a + b, 0) / steps.length;
    await s.prefill(prefillTokens);
    let ms = 0;
    for (let i = 0; i < 3; i++) ms += await s.prefill(prefillTokens);
    const tokensPerSecond = (3000 * prefillTokens) / ms;
    return {
      name: s.name, weights: s.weights,
      note: /swiftshader/i.test(adapter) ? 'the device is SwiftShader, a software rasteriser on the CPU: compare the ratio, not the speed' : 'same device, measured after the wgsl run',
      decode: { tokensPerSecond: 1000 / msPerToken, msPerToken, tokens: steps.length }, prefill: { tokensPerSecond, tokens: prefillTokens },
      decodeSpeedup: msPerToken / ours.msPerToken, prefillSpeedup: ours.prefillTokensPerSecond / tokensPerSecond,
    };
  } finally {
    await s.dispose();
  }
}
