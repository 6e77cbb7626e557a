/**
 * TEST INFRASTRUCTURE: builds the CPU emulator library for a generated CUDA translation unit.
 *
 *   <cache>/libcuda_sim-<hash>.o    libcuda_sim.cpp (the fake driver, fibers, counters), built once
 *   <cache>/<hash>.so               the .cu, unchanged, + one RWKVC_SIM_KERNEL(name) per extern "C"
 *                                   kernel, compiled with cuda_sim.h, linked with the object above
 *
 * The cache (default out/cache/cuda-sim/ in the repository) is keyed by the text of everything that goes
 * in, so a model compiled again, or by a parallel test worker, reuses the library; files appear by
 * rename, never half-written.
 */
import { createHash } from 'node:crypto';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { UserError } from '../../../kernels/errors.ts';

const run = promisify(execFile);
const HERE = fileURLToPath(new URL('.', import.meta.url));
export const SIM_HEADER = join(HERE, 'cuda_sim.h');
export const SIM_DRIVER = join(HERE, 'libcuda_sim.cpp');
export const DEFAULT_CACHE = join(HERE, '..', '..', '..', 'out', 'cache', 'cuda-sim');

export interface SimBuildOptions {
  /** The C++ compiler (default $CXX, else g++). */
  cxx?: string;
  cacheDir?: string;
  /** -O level (default 2). */
  opt?: 0 | 1 | 2 | 3;
  /** A block's threads as OS threads (-DRWKVC_SIM_THREADS) instead of fibers: slower, for cross-checking. */
  threads?: boolean;
}

const cxxOf = (o: SimBuildOptions) => o.cxx ?? process.env.CXX ?? 'g++';

/** Why the emulator cannot be built here (no C++20 compiler), or null when it can. */
export function simUnavailable(o: SimBuildOptions = {}): string | null {
  const cxx = cxxOf(o);
  const r = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `no C++20 compiler for the CUDA emulator: '${cxx}' (g++) is not runnable`;
  return null;
}

/** The `extern "C"` kernels a translation unit defines, in order. */
export function kernelNames(cu: string): string[] {
  const names: string[] = [];
  const re = /extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\(/g;
  for (const m of cu.matchAll(re)) names.push(m[1]);
  return names;
}

const sha = (...parts: string[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 20);
};

async function compile(cxx: string, args: string[], target: string): Promise<void> {
  const tmp = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await run(cxx, [...args, '-o', tmp], { maxBuffer: 64 << 20 });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    const err = e as { stderr?: string; message: string };
    throw new Error(`building the CUDA emulator failed: ${cxx} ${args.join(' ')}\n${(err.stderr ?? err.message).slice(0, 8000)}`);
  }
}

/** The emulator library for `cu` (built, or found in the cache): its path and kernel names. */
export async function buildSimLibrary(cu: string, o: SimBuildOptions = {}): Promise<{ library: string; kernels: string[] }> {
  const cxx = cxxOf(o);
  const why = simUnavailable(o);
  if (why) throw new UserError(why);
  const cache = o.cacheDir ?? DEFAULT_CACHE;
  mkdirSync(cache, { recursive: true });
  const header = readFileSync(SIM_HEADER, 'utf8');
  const driver = readFileSync(SIM_DRIVER, 'utf8');
  const flags = ['-std=c++20', `-O${o.opt ?? 2}`, '-fPIC', '-Wno-unknown-pragmas', '-fno-gnu-unique', '-fvisibility=hidden', '-DRWKVC_SIM', ...(o.threads ? ['-DRWKVC_SIM_THREADS'] : []), '-include', SIM_HEADER];
  const kernels = kernelNames(cu);
  if (!kernels.length) throw new Error('the CUDA translation unit defines no extern "C" __global__ kernels');

  const obj = join(cache, `libcuda_sim-${sha(cxx, flags.join(' '), header, driver)}.o`);
  if (!existsSync(obj)) await compile(cxx, [...flags, '-c', SIM_DRIVER], obj);

  const lib = join(cache, `${sha(cxx, flags.join(' '), header, driver, cu)}.so`);
  if (!existsSync(lib)) {
    const base = lib.slice(0, -3);
    const cuPath = `${base}.${process.pid}.cu`, wrapper = `${base}.${process.pid}.sim.cpp`;
    writeFileSync(cuPath, cu);
    writeFileSync(wrapper, `#include "${cuPath}"\n${kernels.map((k) => `RWKVC_SIM_KERNEL(${k})`).join('\n')}\n`);
    try {
      await compile(cxx, [...flags, '-shared', '-Wl,-Bsymbolic', wrapper, obj, '-pthread'], lib);
    } finally {
      rmSync(cuPath, { force: true });
      rmSync(wrapper, { force: true });
    }
  }
  return { library: lib, kernels };
}
