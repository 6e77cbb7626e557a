/**
 * nvcc at compile time (Node only): PTX for the artifact and ptxas resource reports (registers, spills,
 * stack frames, shared memory per kernel). Outputs are cached under out/cache/cuda/ by a hash of the
 * source, the arch and the nvcc version, so repeated test runs and compiles cost nothing.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';

/** The package root's out/ (from dist/ too: a cache under dist/ would be packed, and each build wipes it). */
const ROOT = join(import.meta.dirname, '..', '..');
const CACHE = join(basename(ROOT) === 'dist' ? dirname(ROOT) : ROOT, 'out', 'cache', 'cuda');

/** nvcc on PATH, else /usr/local/cuda/bin/nvcc; null when neither exists. */
export function findNvcc(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir && existsSync(join(dir, 'nvcc'))) return join(dir, 'nvcc');
  const std = '/usr/local/cuda/bin/nvcc';
  return existsSync(std) ? std : null;
}

let versionCache: string | null = null;
function nvccVersion(nvcc: string): string {
  return (versionCache ??= execFileSync(nvcc, ['--version'], { encoding: 'utf8' }).trim().split('\n').pop() ?? '');
}

/** ptxas's resource line for one kernel. */
export interface KernelResources {
  name: string;
  registers: number;
  stackFrame: number;
  spillStores: number;
  spillLoads: number;
  /** Static shared memory, bytes. */
  smem: number;
  /** Constant bank 0 (the parameters), bytes. */
  cmem: number;
}

export interface PtxasReport {
  arch: string;
  kernels: KernelResources[];
  /** nvcc's whole stderr (warnings and ptxas lines). */
  log: string;
  cached: boolean;
}

/** Parse `-Xptxas -v` output into one record per entry function. */
export function parsePtxas(log: string): KernelResources[] {
  const out: KernelResources[] = [];
  let cur: KernelResources | null = null;
  for (const line of log.split('\n')) {
    const entry = /Compiling entry function '([^']+)'/.exec(line);
    if (entry) {
      cur = { name: entry[1], registers: 0, stackFrame: 0, spillStores: 0, spillLoads: 0, smem: 0, cmem: 0 };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    const frame = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (frame) [cur.stackFrame, cur.spillStores, cur.spillLoads] = frame.slice(1).map(Number);
    const used = /Used (\d+) registers/.exec(line);
    if (used) {
      cur.registers = Number(used[1]);
      cur.smem = Number(/(\d+) bytes smem/.exec(line)?.[1] ?? 0);
      cur.cmem = Number(/(\d+) bytes cmem\[0\]/.exec(line)?.[1] ?? 0);
    }
  }
  return out;
}

function cacheFile(kind: string, cu: string, arch: string, nvcc: string): string {
  const h = createHash('sha256').update(kind).update('\0').update(arch).update('\0').update(nvccVersion(nvcc)).update('\0').update(cu).digest('hex').slice(0, 24);
  return join(CACHE, `${h}.${kind}.json`);
}

/** The cache is only a speed-up: a read-only install (no out/ beside it) compiles every time. */
function store(file: string, value: unknown): void {
  try {
    mkdirSync(CACHE, { recursive: true });
    writeFileSync(file, JSON.stringify(value));
  } catch { /* not cached */ }
}

function cached<T>(kind: string, cu: string, arch: string, nvcc: string, make: () => Promise<T>): Promise<{ value: T; cached: boolean }> {
  const file = cacheFile(kind, cu, arch, nvcc);
  if (existsSync(file)) return Promise.resolve({ value: JSON.parse(readFileSync(file, 'utf8')) as T, cached: true });
  return make().then((value) => {
    store(file, value);
    return { value, cached: false };
  });
}

function run(nvcc: string, args: string[], cu: string): Promise<{ stderr: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'rwkvc-nvcc-'));
  writeFileSync(join(dir, 'model.cu'), cu);
  return new Promise((resolve, reject) => {
    execFile(nvcc, [...args, join(dir, 'model.cu')], { cwd: dir, maxBuffer: 64 << 20 }, (err, _stdout, stderr) => {
      if (err) {
        rmSync(dir, { recursive: true, force: true });
        reject(new Error(`nvcc ${args.join(' ')} failed:\n${stderr}`));
      } else resolve({ stderr, dir });
    });
  });
}

/** Compile `cu` for `arch` (e.g. 'sm_80') with `-Xptxas -v` and report each kernel's resources. */
export async function ptxasReport(cu: string, arch: string): Promise<PtxasReport> {
  const nvcc = findNvcc();
  if (!nvcc) throw new Error('nvcc not found (PATH, /usr/local/cuda/bin)');
  const { value, cached: hit } = await cached('ptxas', cu, arch, nvcc, async () => {
    const { stderr, dir } = await run(nvcc, [`-arch=${arch}`, '--cubin', '-Xptxas', '-v', '-o', 'model.cubin'], cu);
    rmSync(dir, { recursive: true, force: true });
    return stderr;
  });
  return { arch, kernels: parsePtxas(value), log: value, cached: hit };
}

/** PTX of `cu` for `arch` (the driver JITs it for the GPU present). */
export async function compilePtx(cu: string, arch: string): Promise<string> {
  const nvcc = findNvcc();
  if (!nvcc) throw new Error('nvcc not found (PATH, /usr/local/cuda/bin)');
  const { value } = await cached('ptx', cu, arch, nvcc, async () => {
    const { dir } = await run(nvcc, [`-arch=${arch}`, '--ptx', '-o', 'model.ptx'], cu);
    const ptx = readFileSync(join(dir, 'model.ptx'), 'utf8');
    rmSync(dir, { recursive: true, force: true });
    return ptx;
  });
  return value;
}

/** PTX for each arch, synchronously (for codegen.emit's `ptx` option), from compilePtx's cache when there; null when nvcc is absent. */
export function compilePtxSync(cu: string, archs: string[]): Record<string, string> | null {
  const nvcc = findNvcc();
  if (!nvcc) return null;
  const out: Record<string, string> = {};
  for (const arch of archs) {
    const file = cacheFile('ptx', cu, arch, nvcc);
    if (existsSync(file)) {
      out[arch] = JSON.parse(readFileSync(file, 'utf8')) as string;
      continue;
    }
    const dir = mkdtempSync(join(tmpdir(), 'rwkvc-nvcc-'));
    try {
      writeFileSync(join(dir, 'model.cu'), cu);
      execFileSync(nvcc, [`-arch=${arch}`, '--ptx', '-o', join(dir, 'model.ptx'), join(dir, 'model.cu')], { stdio: ['ignore', 'ignore', 'pipe'] });
      out[arch] = readFileSync(join(dir, 'model.ptx'), 'utf8');
      store(file, out[arch]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}
