/**
 * `rwkvc bench --all --plot DIR`: every benchmark table and chart in one command. Each part is the
 * same `rwkvc bench …` command a user would type, run in its own process one after another (so one
 * part's memory and threads never overlap the next's), its printed table kept; then DIR/RESULTS.md
 * is written with the machine (CPU model and flags), the date, the versions and each command.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineLine } from './bandwidth.ts';

export interface AllOptions {
  dir: string;
  preset: string;
  threads: number;
  /** Only these parts (default: all). */
  parts?: string[];
  onPart?: (name: string, i: number, n: number) => void;
}

/** The parts: name → arguments of `rwkvc bench`. */
export function allParts(o: AllOptions): [string, string[]][] {
  const p = ['--preset', o.preset];
  const parts: [string, string[]][] = [
    ['wasm sweep (formats × threads, llama.cpp peer, native and WASM limits)', ['--target', 'wasm', ...p, '--plot', join(o.dir, 'wasm.svg')]],
    ['onnxruntime peers (node CPU EP, web WASM EP)', ['--target', 'wasm', ...p, '--threads', String(o.threads), '--peer', 'onnxruntime']],
    ['context length (rwkvc vs a same-shape LLaMA, flash attention on/off)', ['--context', ...p, '--threads', '1', '--plot', join(o.dir, 'context.svg')]],
    ['per-kernel micro-benchmarks (benchmark.js) and gpu.js', ['--kernels', ...p, '--threads', '1']],
    ['wgsl (SwiftShader: a software rasteriser; ratios only)', ['--target', 'wgsl', ...p]],
  ];
  const keys = ['wasm', 'onnxruntime', 'context', 'kernels', 'wgsl'];
  return parts.filter((_, i) => !o.parts || o.parts.includes(keys[i]));
}

function version(pkg: string): string {
  try { return JSON.parse(readFileSync(resolve('node_modules', pkg, 'package.json'), 'utf8')).version; } catch { return 'not installed'; }
}

export function benchAll(o: AllOptions): { file: string; failed: string[] } {
  mkdirSync(o.dir, { recursive: true });
  const bin = fileURLToPath(new URL('../bin/rwkvc.js', import.meta.url));
  const parts = allParts(o), out: string[] = [], failed: string[] = [];
  const started = new Date();
  for (const [i, [name, args]] of parts.entries()) {
    o.onPart?.(name, i, parts.length);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [bin, 'bench', ...args], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    if (r.status !== 0) failed.push(name);
    out.push(`## ${name}\n\n\`rwkvc bench ${args.join(' ')}\` (${s} s${r.status === 0 ? '' : `, exit ${r.status}`})\n\n\`\`\`\n${(r.status === 0 ? r.stdout : r.stderr.split('\n').filter((l) => l.trim()).slice(-3).join('\n')).trim()}\n\`\`\`\n`);
  }
  const head = [
    '# rwkvc benchmark results',
    '',
    `Regenerate: \`rwkvc bench --all --plot ${o.dir} --preset ${o.preset}\` (every part below, one process each, in this order).`,
    '',
    `- Machine: ${machineLine()}; ${availableParallelism()} threads available`,
    `- Date: ${started.toISOString()} (UTC)`,
    `- Versions: Node ${process.versions.node} (V8 ${process.versions.v8}), rwkvc ${JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')).version}, node-llama-cpp ${version('node-llama-cpp')}, onnxruntime-node ${version('onnxruntime-node')}, onnxruntime-web ${version('onnxruntime-web')}, benchmark ${version('benchmark')}, gpu.js ${version('gpu.js')}, @wllama/wllama ${version('@wllama/wllama')}`,
    '- Charts: ' + ['wasm.svg', 'context.svg'].map((f) => `[${f}](${f})`).join(', '),
    '',
  ];
  const file = join(o.dir, 'RESULTS.md');
  writeFileSync(file, head.join('\n') + '\n' + out.join('\n'));
  return { file, failed };
}
