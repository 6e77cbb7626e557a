/**
 * `rwkvc bench --all --plot DIR`: every benchmark table and chart in one command. Each part is the
 * same `rwkvc bench …` command a user would type, run in its own process one after another (so one
 * part's memory and threads never overlap the next's), its printed table kept and its status lines
 * passed through as they come (prefixed with the part and the time since the start); then
 * DIR/RESULTS.md is written with the machine (CPU model and flags), the date, the versions, each
 * command and how long it took.
 *
 * The sizes are set here, not left to each command's defaults, so the whole run fits a budget: the
 * wgsl parts run on SwiftShader (a software rasteriser, where a bench-0.1b decode step takes seconds), so
 * they run finch-tiny, decoding 16 and prefilling 64 (32 beside onnxruntime-web); the context part decodes 16 per position and runs on
 * all threads (its transformer's prefill to 16k is quadratic in attention: minutes on one thread).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { machineLine } from './bandwidth.ts';
import { rwkvcVersion } from '../driver/version.ts';

export const PART_KEYS = ['wasm', 'onnxruntime', 'context', 'kernels', 'real-size', 'wgsl'] as const;

export interface AllOptions {
  dir: string;
  preset: string;
  threads: number;
  /** Only these parts (default: all). */
  parts?: string[];
  /** A status line (part starts and ends, the parts' own status lines). */
  onLine?: (line: string) => void;
  /** The script run as `node BIN bench …` (default this package's bin/rwkvc.js; tests give a stand-in). */
  bin?: string;
}

export interface Part { key: (typeof PART_KEYS)[number]; name: string; args: string[] }

/** The parts in order: each an `rwkvc bench` command line. */
export function allParts(o: Pick<AllOptions, 'dir' | 'preset' | 'threads' | 'parts'>): Part[] {
  const p = ['--preset', o.preset], t = ['--threads', String(o.threads)], sw = ['--preset', 'finch-tiny'];
  const parts: Part[] = [
    // every weight format × 1 and N threads, each beside every peer in the same rounds: llama.cpp (native),
    // wllama (llama.cpp in WASM, headless Chromium; timed on 128-token prompts, its prefillCap), onnxruntime-node
    // and onnxruntime-web's WASM EP (f32 and f16; the other formats say why they are skipped)
    { key: 'wasm', name: 'wasm sweep (formats × threads, every peer, native and WASM limits)', args: ['--target', 'wasm', ...p, ...t, '--peer', 'all', '--plot', join(o.dir, 'wasm.svg')] },
    { key: 'onnxruntime', name: 'onnxruntime peers: load time and peak memory (node CPU EP, web WASM EP)', args: ['--target', 'wasm', ...p, ...t, '--peer', 'onnxruntime'] },
    { key: 'context', name: 'context length (rwkvc vs a same-shape LLaMA, flash attention on/off)', args: ['--context', ...p, ...t, '--decode', '16', '--plot', join(o.dir, 'context.svg')] },
    { key: 'kernels', name: 'per-kernel micro-benchmarks (benchmark.js) and gpu.js', args: ['--kernels', ...p, '--threads', '1'] },
    // a real model size (issue: users run 1B6 to 14B, not 0.1B): finch-1b6 in the two formats that fit wasm32 with
    // room, beside llama.cpp on the same GGUF (its f32 is 6 GiB: over wasm32, so no f32 part)
    ...(['int8', 'q4_0'] as const).map((w): Part => ({ key: 'real-size', name: `finch-1b6, ${w}, beside llama.cpp`, args: ['--target', 'wasm', '--preset', 'finch-1b6', ...t, '--weights', w, '--peer', 'llama.cpp'] })),
    // WebGPU here is SwiftShader, a software rasteriser: only the ratios mean anything, and on it a bench-0.1b
    // decode step takes seconds per implementation (a 3B int8 step took 186 s), so these two run the fixture
    // shape unless the run itself is on finch-tiny
    { key: 'wgsl', name: 'wgsl and llama.cpp Vulkan (SwiftShader: a software rasteriser; ratios only)', args: ['--target', 'wgsl', ...sw, ...t, '--decode', '16', '--prefill', '64'] },
    { key: 'wgsl', name: 'wgsl and onnxruntime-web WebGPU, one Chromium page (SwiftShader; ratios only)', args: ['--target', 'wgsl', ...sw, ...t, '--decode', '16', '--prefill', '32', '--peer', 'onnxruntime'] },
  ];
  return parts.filter((x) => !o.parts || o.parts.includes(x.key));
}

function version(pkg: string): string {
  try { return JSON.parse(readFileSync(resolve('node_modules', pkg, 'package.json'), 'utf8')).version; } catch { return 'not installed'; }
}

/** This package's bin/rwkvc.js: beside bench/ in a checkout, two folders up from dist/bench/ in a build. */
export function ownBin(): string {
  for (let d = import.meta.dirname; dirname(d) !== d; d = dirname(d))
    if (existsSync(join(d, 'bin', 'rwkvc.js'))) return join(d, 'bin', 'rwkvc.js');
  throw new Error(`no bin/rwkvc.js above ${import.meta.dirname}`);
}

const clock = (ms: number) => `${Math.floor(ms / 60_000)}m${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}s`;

/** One `rwkvc bench` process: its stdout kept, its stderr lines passed on (and the last few kept for a failure). */
function runPart(bin: string, args: string[], onLine: (l: string) => void): Promise<{ status: number | null; stdout: string; tail: string[] }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [bin, 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    const tail: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    createInterface({ input: child.stderr }).on('line', (l) => {
      if (!l.trim()) return;
      onLine(l);
      tail.push(l);
      if (tail.length > 3) tail.shift();
    });
    child.on('close', (status) => res({ status, stdout, tail }));
  });
}

export async function benchAll(o: AllOptions): Promise<{ file: string; failed: string[] }> {
  mkdirSync(o.dir, { recursive: true });
  const bin = o.bin ?? ownBin();
  const parts = allParts(o), out: string[] = [], failed: string[] = [];
  const started = new Date(), t0 = performance.now();
  const say = o.onLine ?? (() => {});
  for (const [i, { name, args }] of parts.entries()) {
    const tag = `[${i + 1}/${parts.length} ${clock(performance.now() - t0)}]`;
    say(`${tag} ${name}: rwkvc bench ${args.join(' ')}`);
    const p0 = performance.now();
    const r = await runPart(bin, args, (l) => say(`[${i + 1}/${parts.length} ${clock(performance.now() - t0)}]   ${l}`));
    const s = ((performance.now() - p0) / 1000).toFixed(0);
    if (r.status !== 0) failed.push(name);
    say(`[${i + 1}/${parts.length} ${clock(performance.now() - t0)}] ${r.status === 0 ? 'done' : `failed (exit ${r.status})`} in ${s} s`);
    out.push(`## ${name}\n\n\`rwkvc bench ${args.join(' ')}\` (${s} s${r.status === 0 ? '' : `, exit ${r.status}`})\n\n\`\`\`\n${(r.status === 0 ? r.stdout : r.tail.join('\n')).trim()}\n\`\`\`\n`);
  }
  const total = clock(performance.now() - t0);
  const head = [
    '# rwkvc benchmark results',
    '',
    `Regenerate: \`rwkvc bench --all --plot ${o.dir} --preset ${o.preset} --threads ${o.threads}\` (every part below, one process each, in this order; this run took ${total}).`,
    '',
    `- Machine: ${machineLine()}; ${availableParallelism()} threads available`,
    `- Date: ${started.toISOString()} (UTC)`,
    `- Versions: Node ${process.versions.node} (V8 ${process.versions.v8}), rwkvc ${rwkvcVersion()}, node-llama-cpp ${version('node-llama-cpp')}, onnxruntime-node ${version('onnxruntime-node')}, onnxruntime-web ${version('onnxruntime-web')}, benchmark ${version('benchmark')}, gpu.js ${version('gpu.js')}, @wllama/wllama ${version('@wllama/wllama')}, playwright-core ${version('playwright-core')}`,
    '- Charts: ' + ['wasm.svg', 'context.svg'].map((f) => `[${f}](${f})`).join(', '),
    '',
  ];
  const file = join(o.dir, 'RESULTS.md');
  writeFileSync(file, head.join('\n') + '\n' + out.join('\n'));
  say(`all parts in ${total}${failed.length ? `; failed: ${failed.join('; ')}` : ''}`);
  return { file, failed };
}
