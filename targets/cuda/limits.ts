/** What lowering may assume of a CUDA device: its own module, so sizing a plan (driver/limits.ts) needs no codegen. */
import type { Limits } from '../gpu/lower.ts';

/** What lowering may assume of a CUDA device (any sm_80+ GPU). */
export const CUDA_LIMITS: Limits = {
  maxStorageBufferBindingSize: Number.MAX_SAFE_INTEGER, // plain pointers: no binding limit
  maxBufferSize: Number.MAX_SAFE_INTEGER,
  maxStorageBuffersPerShaderStage: 64, // kernel arguments: 4 KiB of parameters, 8 bytes a pointer
  maxComputeWorkgroupStorageSize: 48 * 1024, // static shared memory (more only by opt-in dynamic smem)
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupsPerDimension: 65535, // grid y and z (x allows 2^31 − 1; lowering treats all alike)
};
