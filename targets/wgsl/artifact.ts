/**
 * The WGSL target's artifact: the plan, the limits its shaders were rendered for, and the shaders by
 * pipeline key. Saved as `wgsl.json`; the runtime needs nothing else.
 */
import type { KernelPlan } from '../../kernels/plan.ts';
import { UserError } from '../../kernels/errors.ts';
import type { Limits, LowerOptions } from '../gpu/lower.ts';
import type { ArtifactFiles } from '../target.ts';

export interface WgslArtifact {
  format: 'rwkvc-wgsl';
  /** 2: state kernels bind their state part (`st`); a v1 artifact's shaders read the state from mem. */
  version: 2;
  /** The limits the shaders were rendered for (a device's larger ones are capped to them). */
  limits: Limits;
  lowering: LowerOptions;
  plan: KernelPlan;
  /** WGSL by pipeline key. */
  shaders: Record<string, string>;
}

export function openWgslArtifact(files: ArtifactFiles): WgslArtifact {
  const text = files['wgsl.json'];
  let a: Partial<WgslArtifact> | null = null;
  try { a = typeof text === 'string' ? JSON.parse(text) : text ? JSON.parse(new TextDecoder().decode(text)) : null; } catch { /* reported below */ }
  if (a?.format === 'rwkvc-wgsl' && (a.version as number) === 1)
    throw new UserError('wgsl.json is a v1 rwkvc WGSL artifact, whose shaders keep the state in mem: compile it again');
  if (!a || a.format !== 'rwkvc-wgsl' || a.version !== 2 || !a.plan || !a.shaders || !a.limits)
    throw new UserError('wgsl.json is not an rwkvc WGSL artifact (v2)');
  return { lowering: {}, ...a } as WgslArtifact;
}
