/**
 * The generated package's one link to the WGSL (WebGPU) target's runtime: a plan and its shaders,
 * pre-rendered at compile time (`<weights>/wgsl.json`, written by compiler/emit-package.ts with the
 * target's emitWgsl), loaded on `navigator.gpu` in a browser or Dawn (the optional `webgpu` package) in
 * Node, with no compiler. If the WGSL runtime's API changes, this file and the WGSL section of
 * emit-package.ts are what follow it.
 */
import type { KernelPlan } from '../../kernels/plan.ts';
import type { TargetModel } from '../../targets/backend.ts';
import { acquireGpu } from '../../targets/wgsl/device.ts';
import type { Limits } from '../../targets/gpu/lower.ts';
import { loadWgslTarget } from '../../targets/wgsl/runtime.ts';
import { UserError } from '../../kernels/errors.ts';
import type { TargetLoader } from './model.ts';

/** `<weights>/wgsl.json`: the plan, and its shaders rendered for `limits` (the device's are capped to them). */
export interface WgslAssets {
  format: 'rwkvc-wgsl';
  version: 1;
  limits: Limits;
  plan: KernelPlan;
  /** WGSL by pipeline key. */
  shaders: Record<string, string>;
}

export const loadWgslModel: TargetLoader<unknown> = async (assets, weightsFor) => {
  const a = assets as Partial<WgslAssets> | null;
  if (!a || a.format !== 'rwkvc-wgsl' || a.version !== 1 || !a.plan || !a.shaders || !a.limits) {
    throw new UserError('package: wgsl.json is not an rwkvc WGSL artifact (v1)');
  }
  const gpu = await acquireGpu();
  try {
    // the device's limits capped to those the shaders were rendered for: the same lowering, the same keys
    const model = await loadWgslTarget(a.plan, weightsFor(a.plan), { device: gpu.device, shaders: a.shaders, limits: a.limits });
    const i = gpu.info;
    const adapter = [i.vendor, i.architecture, i.description].filter(Boolean).join(' / ') || 'unknown adapter';
    const release = model.dispose;
    return Object.assign(model, {
      adapter: `${adapter}${i.isSoftware ? ' (software)' : ''}`,
      dispose() {
        release();
        gpu.release();
      },
    }) satisfies TargetModel;
  } catch (e) {
    gpu.release();
    throw e;
  }
};
