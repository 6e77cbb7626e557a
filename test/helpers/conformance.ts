/**
 * The shared parts of the conformance suite (test/targets/): which targets it runs, how a target that
 * cannot run on this machine is skipped (with the reason printed), the one table of per-target
 * tolerances and refusals, and the comparison every case makes.
 *
 * A target is in the suite by being in targets/registry.ts: hidden ones (simulators) included. Nothing
 * here names a target except PER_TARGET, and a target missing from it gets the default.
 */
import { expect, type TestContext } from 'vitest';
import { UserError } from '../../kernels/errors.ts';
import type { KernelPlan } from '../../kernels/plan.ts';
import type { TargetModel, WeightProvider } from '../../targets/backend.ts';
import { getTarget, planTargets } from '../../targets/registry.ts';
import type { OpenedDevice, TargetCodegen, TargetRuntime } from '../../targets/target.ts';

/** The plan target runs kernels/reference.ts itself: where that is the oracle, it is not a target under test. */
export const ORACLE = 'plan';

/** Every target that runs a compiled plan, in registry order; without the oracle when it is the reference. */
export function suiteTargets(opts: { withOracle: boolean }): string[] {
  return planTargets().map((t) => t.name).filter((n) => opts.withOracle || n !== ORACLE);
}

/** What the suite allows a target: its tolerances, and the cases it may refuse. */
interface PerTarget {
  /** One kernel against kernels/reference.ts (f64), each buffer elementwise (see expectClose). */
  kernel: number;
  /** A whole model against the plan target (f64) on the same weights and format: logits and each state tensor, scaled (see expectClose). */
  model: number;
  /**
   * Bits an int8 matvec rounds its input to (one scale per row), where a target does: the rounding moves
   * a dot product by up to Σ|w|·max|x| / (2^bits − 2), which the kernel cases add to their bound.
   */
  int8InputBits?: number;
  /** UserErrors it may refuse a case with at load (a documented limit of the target): the case skips, saying so. */
  refuses?: RegExp[];
  /** Options of its own the kernel cases load with (its runtime's load options, beside threads), with why. */
  kernelLoad?: Record<string, unknown>;
}

/**
 * The one table of per-target allowances, with why. The floor of every target is f32 arithmetic against
 * an f64 reference: 2^-24 relative rounding per operation, sums of n terms growing like √n·2^-24 of
 * Σ|terms| (≈ 2e-6 for n ≈ 1000), exp/tanh/sqrt within a few ulp. An indexing or synchronisation bug
 * moves results by O(1), far outside.
 */
const PER_TARGET: Record<string, PerTarget> = {
  // WASM-SIMD: four lanes then a fixed horizontal sum, exp/tanh by polynomials (≈ 2–3 ulp), so a few
  // times the floor per kernel; a model is two layers of a dozen kernels. Its int8 matvec rounds x to
  // 16 bits (as Q8_0 rounds it to 8).
  wasm: { kernel: 2e-5, model: 2e-4, int8InputBits: 16 },
  // WGSL: f32 everywhere, tree and strided sums (better than serial), built-in exp/tanh within a few
  // ulp; observed ~1e-6 per kernel and per model.
  wgsl: { kernel: 1e-5, model: 1e-5 },
  // CUDA (and its CPU emulator): one warp per head in wkv, so head sizes are multiples of 32.
  cuda: { kernel: 2e-5, model: 2e-4, refuses: [/head size \d+ is not a multiple of 32/] },
  // The emulator builds a library per kernel case (~45, from an empty cache in CI): g++ -O1 takes half the
  // time of the default -O2 (1.3 s vs 2.4 s for the fixture model's .cu), and a case runs for milliseconds
  // either way. What is checked is the CUDA source (the same text at any level) against the f64 reference;
  // cuda-sim.test.ts and golden.test.ts run their models at -O2.
  'cuda-sim': { kernel: 2e-5, model: 2e-4, refuses: [/head size \d+ is not a multiple of 32/], kernelLoad: { build: { opt: 1 } } },
};

/** A target not in the table: f32 arithmetic in some other order than the reference's, and no refusals. */
const DEFAULT_PER_TARGET: PerTarget = { kernel: 2e-5, model: 2e-4 };

export const perTarget = (target: string): PerTarget => PER_TARGET[target] ?? DEFAULT_PER_TARGET;

/**
 * A load-time UserError that says something this machine lacks (a GPU adapter, a driver, a compiler):
 * the target skips, with the reason. Any other error is a failure.
 */
const MISSING_HERE = /no .*(adapter|GPU|driver|g\+\+|nvcc|libcuda)/i;

/** What the suite holds per target: its two halves and, for a GPU target, the device it opened once. */
interface Session { codegen: TargetCodegen; runtime: TargetRuntime; opened?: OpenedDevice }
const sessions = new Map<string, Promise<Session>>();

/** A target's halves, and its device opened once for the whole file (every model shares it: a GPU target's pipeline caches are per device). */
function session(target: string): Promise<Session> {
  let s = sessions.get(target);
  if (!s) {
    s = (async () => {
      const t = getTarget(target);
      if (!t.codegen || !t.runtime) throw new Error(`target ${target} does not run a compiled plan`);
      const [codegen, runtime] = await Promise.all([t.codegen(), t.runtime()]);
      return { codegen, runtime, opened: await runtime.openDevice?.({}) };
    })();
    sessions.set(target, s);
  }
  return s;
}

/** Let go of the devices the suite opened (afterAll of each file). */
export async function releaseTargets(): Promise<void> {
  for (const s of sessions.values()) (await s.catch(() => null))?.opened?.release();
  sessions.clear();
}

export interface LoadOptions {
  threads?: number;
  /** The target's own load options (PerTarget.kernelLoad). */
  runtime?: Record<string, unknown>;
  /** Load the artifact back from its files (codegen.files → runtime.open), as a package or `rwkvc compile -o` output is. */
  viaFiles?: boolean;
}

/** Targets found unable to run here, with why (found once per target and file). */
const unavailable = new Map<string, string>();

/** Why a target cannot run a case here. */
export interface Skip { skip: string }

/**
 * A plan on a target, as driver/targets.ts loadPlan does it (device opened first, codegen for its
 * limits, the runtime loads the artifact), but on the device the file opened once; or why the target
 * cannot run it here: it lacks something on this machine (printed once per target), or the case is
 * beyond one of its documented limits (PER_TARGET.refuses).
 */
export async function tryLoad(target: string, plan: KernelPlan, weights: WeightProvider, opts: LoadOptions = {}): Promise<TargetModel | Skip> {
  const known = unavailable.get(target);
  if (known) return { skip: known };
  try {
    const { codegen, runtime, opened } = await session(target);
    let artifact = codegen.emit(plan, { limits: opened?.limits });
    if (opts.viaFiles) artifact = runtime.open(codegen.files(artifact));
    // the model's dispose must not release the shared device
    return await runtime.load(artifact, weights, { ...opts.runtime, threads: opts.threads, opened: opened && { ...opened, release() {} } });
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    if (perTarget(target).refuses?.some((r) => r.test(e.message))) return { skip: `${target} refuses this case (a limit of the target): ${e.message}` };
    if (!MISSING_HERE.test(e.message)) throw e;
    const why = `target ${target} cannot run here: ${e.message}`;
    unavailable.set(target, why);
    console.warn(`[skip] ${why}`);
    return { skip: why };
  }
}

/** tryLoad, skipping the current test (with the reason) when the target cannot run the plan here. */
export async function loadOrSkip(ctx: TestContext, target: string, plan: KernelPlan, weights: WeightProvider, opts: LoadOptions = {}): Promise<TargetModel> {
  const m = await tryLoad(target, plan, weights, opts);
  if ('skip' in m) ctx.skip(m.skip);
  return m;
}

/** Whether a target spreads work over threads (its runtime reports how many a loaded model runs on). */
export async function takesThreads(target: string, model: TargetModel): Promise<boolean> {
  const rt = await getTarget(target).runtime?.();
  return rt?.describe?.(model).threads !== undefined;
}

/** Largest |v|. */
function scaleOf(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s = Math.max(s, Math.abs(v[i]));
  return s;
}

/**
 * got against ref, |got_i − ref_i| ≤ tol · max(1e-3, m_i) + extra for every i, with s the largest |ref|:
 * - a model's outputs (the default): m_i = s. Errors of f32 arithmetic scale with the magnitudes that were
 *   summed, i.e. with s, not with an element that cancelled to near zero (floored at 1e-3 of tol).
 * - a kernel's (elementwise): m_i = min(s, max(1, |ref_i|)), also no element further than tol from an
 *   O(1) value: the tighter of the two measures the per-target tests used before this suite.
 * NaN, or a length mismatch, fails.
 */
export function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string, o: { extra?: number; elementwise?: boolean } = {}): void {
  expect(got.length, `${what}: length`).toBe(ref.length);
  const s = scaleOf(ref), extra = o.extra ?? 0;
  let worst = 0, at = -1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]), m = o.elementwise ? Math.min(s, Math.max(1, Math.abs(ref[i]))) : s;
    const bound = tol * Math.max(1e-3, m) + extra;
    if (d <= bound) continue;
    const r = Number.isNaN(d) ? Infinity : bound > 0 ? d / bound : Infinity;
    if (at < 0 || r > worst) { worst = r; at = i; }
  }
  if (at >= 0)
    expect.fail(`${what}: |Δ| ${Math.abs(got[at] - ref[at]).toExponential(2)} at ${at} (got ${got[at]}, want ${ref[at]}, scale ${s.toExponential(2)}) ` +
      `is ${worst.toFixed(1)}× the bound (tol ${tol}${o.elementwise ? ', elementwise' : ''}${extra ? ` + ${extra.toExponential(2)}` : ''})`);
}

/** Bit-for-bit equality of two f32 arrays (NaNs included). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
