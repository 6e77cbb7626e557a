/**
 * The `plan` target: executes a KernelPlan with the reference semantics of kernels/reference.ts
 * (f64 activations). It is the oracle every other target is tested against.
 */
import type { LoadTarget, StateTensors, TargetModel } from '../backend.ts';
import type { TargetRuntime } from '../target.ts';
import { UserError } from '../../kernels/errors.ts';
import { checkCall, checkStateWrite, guardDisposed, vocabOf } from '../model-base.ts';
import type { BufferDecl, KernelPlan, Program } from '../../kernels/plan.ts';
import { runKernel } from '../../kernels/reference.ts';
import { dequantize } from '../../kernels/dtype.ts';
import { elems } from '../../kernels/program.ts';


/** The `plan` target's run half: the artifact is the plan (plan.json). */
export const runtime: TargetRuntime<KernelPlan> = {
  label: 'the reference kernels',
  plan: (plan) => plan,
  open(files) {
    const text = files['plan.json'];
    let plan: Partial<KernelPlan> | null = null;
    try { plan = JSON.parse(typeof text === 'string' ? text : new TextDecoder().decode(text)); } catch { /* below */ }
    if (!plan || plan.format !== 'rwkvc-plan' || plan.version !== 1) throw new UserError('plan.json is not an rwkvc kernel plan (v1)');
    return plan as KernelPlan;
  },
  load: (plan, weights) => loadPlanTarget(plan, weights),
};

export const loadPlanTarget: LoadTarget = async (plan, weights) => {
  // Weights are read as the values the chosen storage dtype represents, so a bf16/int8 plan is exact
  // about its own rounding.
  const w = new Map(plan.weights.map((d) => {
    const v = weights(d);
    return [d.name, dequantize(v, d.shape[d.shape.length - 1], d.dtype)] as const;
  }));
  const vocab = vocabOf(plan);
  const state = new Map<string, Float64Array>();
  for (const b of plan.decode.buffers)
    if (b.role === 'state') state.set(b.name, new Float64Array(elems(b, 1)));

  function exec(p: Program, tokens: Int32Array, state: Map<string, Float64Array>): Float32Array {
    const T = tokens.length;
    if (T < 1 || T > p.maxT) throw new Error(`program takes 1..${p.maxT} tokens, got ${T}`);
    const bufs = new Map<string, Float64Array>();
    let tok = tokens, logits = 'logits';
    for (const b of p.buffers) {
      if (b.role === 'state') continue;
      if (b.role === 'input') { tok = tokens; continue; }
      if (b.role === 'output') logits = b.name;
      bufs.set(b.name, new Float64Array(elems(b, T)));
    }
    const env = {
      T,
      buf: (n: string) => state.get(n) ?? bufs.get(n) ?? missing(n),
      tokens: () => tok,
      weight: (n: string) => w.get(n) ?? missing(n),
    };
    for (const k of p.kernels) runKernel(k, env);
    return Float32Array.from(bufs.get(logits)!);
  }

  const model: TargetModel = {
    target: 'plan',
    plan,
    maxTokens: plan.prefill.maxT,
    run: async (program, tokens) => {
      checkCall(plan, program, tokens, vocab);
      return exec(program === 'decode' ? plan.decode : plan.prefill, tokens, state);
    },
    async runBatch(tokens, states) {
      checkCall(plan, 'batch', tokens, vocab);
      const p = plan.batch!;
      const B = tokens.length;
      // sequence b's state is row b of each batch state buffer
      const batchState = new Map([...state.keys()].map((name) => {
        const rows = states.map((s) => s[name]);
        const per = rows[0].length, all = new Float64Array(B * per);
        rows.forEach((r, b) => all.set(r, b * per));
        return [name, all] as const;
      }));
      const logits = exec(p, tokens, batchState);
      const out = states.map((_, b) => Object.fromEntries([...batchState].map(([name, all]) => {
        const per = all.length / B;
        return [name, Float32Array.from(all.subarray(b * per, (b + 1) * per))];
      })) as StateTensors);
      return { logits, states: out };
    },
    readState: async () => Object.fromEntries([...state].map(([k, v]) => [k, Float32Array.from(v)])) as StateTensors,
    writeState: async (s) => {
      for (const [k, v] of Object.entries(s)) {
        const into = state.get(k);
        if (!into) continue;
        checkStateWrite(k, into.length, v);
        into.set(v);
      }
    },
    dispose: () => {},
  };
  return guardDisposed(model);
};

function missing(name: string): never {
  throw new Error(`plan names buffer or weight '${name}' that is not declared`);
}

