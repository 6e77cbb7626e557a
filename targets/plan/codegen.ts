/** The `plan` target's compile half: its artifact is the plan itself (each kernel runs its reference semantics). */
import type { KernelPlan } from '../../kernels/plan.ts';
import { planPrograms } from '../../kernels/program.ts';
import type { TargetCodegen } from '../target.ts';

export const codegen: TargetCodegen<KernelPlan> = {
  emit: (plan) => plan,
  print: (plan) => planPrograms(plan).flatMap((p) => p.kernels.map((k) => ({
    kernels: [k.name], src: k.src, title: `${k.kind} (maxT ${p.maxT}): kernels/reference.ts semantics`, code: JSON.stringify(k, null, 1),
  }))),
  files: (plan) => ({ 'plan.json': JSON.stringify(plan) }),
};
