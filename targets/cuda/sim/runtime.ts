/**
 * TEST INFRASTRUCTURE: the hidden `cuda-sim` target. It runs a CUDA artifact through the CUDA runtime
 * (targets/cuda/runtime.ts, unchanged) on the CPU emulator: the artifact's model.cu compiled with
 * cuda_sim.h into a libcuda-shaped library (build.ts), which the runtime loads in place of libcuda.so.1.
 */
import type { TargetRuntime } from '../../target.ts';
import { openArtifact, type CudaArtifact } from '../artifact.ts';
import { loadKoffi } from '../ffi.ts';
import { loadCuda, type CudaModel, type CudaOptions } from '../runtime.ts';
import { buildSimLibrary, simUnavailable, type SimBuildOptions } from './build.ts';

export interface CudaSimOptions extends CudaOptions {
  /** How to build the emulator library (compiler, cache folder, -O level). */
  build?: SimBuildOptions;
}

/** The artifact on the CPU emulator, through the CUDA runtime. */
export async function loadCudaSim(art: CudaArtifact, weights: Parameters<typeof loadCuda>[1], opts: CudaSimOptions = {}): Promise<CudaModel> {
  const { library } = await buildSimLibrary(art.cu, opts.build);
  return loadCuda(art, weights, { ...opts, library });
}

export const runtime: TargetRuntime<CudaArtifact> = {
  label: 'CUDA emulator',
  open: openArtifact,
  plan: (art) => art.plan,
  async unavailable() {
    if (!loadKoffi()) return 'the CUDA emulator needs the koffi package';
    return simUnavailable();
  },
  describe: () => ({ description: 'CUDA emulator: the generated kernels compiled for the CPU (test infrastructure)' }),
  load: (art, weights, opts = {}) => loadCudaSim(art, weights, opts as CudaSimOptions),
};
