/**
 * Where the time of a WASM decode step and of a prefill goes, kernel by kernel: compiles the plan
 * with `profile` (thread 0 marks the end of every phase) and sums the phase times by kernel name,
 * layers folded together.
 *
 * Usage: npx tsx bench/wasm-profile.ts [--dtype f32] [--threads 1] [--layers 12] [--prefill 512]
 *        [--schedule '{"int8Unroll":4}']   (bench-0.1b shape with random weights)
 */
import { compileWasm } from '../targets/wasm/codegen.ts';
import { loadWasmArtifact, type WasmProfile } from '../targets/wasm/runtime.ts';
import type { WeightDType } from '../kernels/plan.ts';
import { BENCH_01B, modelPlan } from './model-plan.ts';
import { randomWeights } from '../runtime/random-model.ts';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const dtype = arg('dtype', 'f32') as WeightDType;
const threads = Number(arg('threads', '1'));
const layers = Number(arg('layers', String(BENCH_01B.nLayer)));
const T = Number(arg('prefill', '512'));

const plan = modelPlan({ nLayer: layers, dtype, prefillT: T });
const schedule = JSON.parse(arg('schedule', '{}')); // e.g. '{"int8Unroll":4}' (targets/wasm/linear.ts)
const art = compileWasm(plan, { profile: true, schedule });
const m = await loadWasmArtifact(art, randomWeights(plan.config, 1), { threads });

function show(what: string, p: WasmProfile | null, calls: number, total: number): void {
  const byKernel = new Map<string, number>();
  for (const [k, v] of p?.ms ?? []) {
    const name = k.replace(/^[lL]\d+\./, ''); // fold the layers
    byKernel.set(name, (byKernel.get(name) ?? 0) + v / calls);
  }
  console.log(`${what}: ${total.toFixed(2)} ms`);
  for (const [k, v] of [...byKernel].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(12)} ${v.toFixed(2).padStart(9)} ms  ${((100 * v) / total).toFixed(1).padStart(5)}%`);
}

for (let i = 0; i < 10; i++) m.runSync('decode', Int32Array.of(i));
m.profile(true);
const steps = 32, t0 = performance.now();
for (let i = 0; i < steps; i++) m.runSync('decode', Int32Array.of(i));
show(`decode (${dtype}, ${threads} thread(s), ${m.variant}) per token`, m.profile(true), steps, (performance.now() - t0) / steps);

const prompt = Int32Array.from({ length: T }, (_, i) => (i * 7919) % plan.config.vocabSize);
m.runSync('prefill', prompt.subarray(0, Math.min(T, 64)));
m.profile(true);
const t1 = performance.now();
m.runSync('prefill', prompt);
show(`prefill of ${T} tokens`, m.profile(true), 1, performance.now() - t1);
m.dispose();
