/**
 * `rwkvc demo`: the main job on an embedded default. Builds a small seeded random Finch checkpoint,
 * compiles examples/finch.ts for it, emits every target's kernels, runs the model on each target this
 * machine has, checks each against the reference interpreter, and prints what it measured.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { int } from './args.ts';
import { Command } from 'commander';
import { compileGraph } from '../compiler/index.ts';
import type { ModelConfig } from '../kernels/config.ts';
import { materializeWeight } from '../kernels/weights.ts';
import { buildGraph, DEFAULT_DSL } from '../driver/dsl.ts';
import { openModel } from '../runtime/model.ts';
import { runTokens } from '../runtime/run-tokens.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import type { TargetModel } from '../targets/backend.ts';
import { planTargets } from '../targets/registry.ts';
import { loadGraph, loadPlan } from '../driver/targets.ts';
import { summarizePlan } from './plan-summary.ts';

const DEMO: ModelConfig = { nLayer: 4, nEmbd: 256, headSize: 64, nHead: 4, dimFfn: 896, vocabSize: 1024, loraMix: 32, loraDecay: 64 };

interface Row { target: string; kernels: string; maxDiff: string; tokPerS: string; note: string }

export function demoCommand(): Command {
  return new Command('demo')
    .description('Build a tiny seeded model, compile it for every target, run and check each one (no arguments needed)')
    .option('-o, --out <dir>', 'where the artifacts go', 'out/demo')
    .option('--seed <n>', 'random seed of the demo model', int, 42)
    .addHelpText('after', '\nExample:\n  rwkvc demo            # then: rwkvc inspect out/demo/plan')
    .action(async (o) => {
      const out = resolve(o.out);
      mkdirSync(out, { recursive: true });
      const say = (s: string) => process.stderr.write(s + '\n');
      const ckpt = join(out, 'model.safetensors');
      say(`1. model: ${DEMO.nLayer} layers, width ${DEMO.nEmbd}, vocab ${DEMO.vocabSize}, seeded random bf16 weights → ${ckpt}`);
      writeRandomModel(ckpt, DEMO, o.seed, 'bf16');
      const model = openModel(ckpt);
      const graph = await buildGraph(DEFAULT_DSL, model.config);
      const t0 = performance.now();
      const { plan } = compileGraph(graph, model.config, { weights: 'f32', logits: 'all', chunk: 16 });
      const compileMs = performance.now() - t0;
      const s = summarizePlan(plan);
      mkdirSync(join(out, 'plan'), { recursive: true });
      writeFileSync(join(out, 'plan', 'plan.json'), JSON.stringify(plan, null, 1));
      say(`2. compiled examples/finch.ts in ${compileMs.toFixed(0)} ms: ${graph.nodes.length} IR nodes → ${s.decodeKernelsPerLayer} kernels per layer → ${join(out, 'plan', 'plan.json')}`);
      const weights = (d: Parameters<typeof materializeWeight>[0]) => materializeWeight(d, model.read);
      const provider = (d: { source: Parameters<typeof materializeWeight>[0] }) => weights(d.source);

      // emit each compiled target's artifact
      const emitted: string[] = [];
      for (const t of planTargets().filter((t) => !t.hidden && t.name !== 'plan')) {
        try {
          const codegen = await t.codegen!();
          const art = codegen.emit(plan);
          const files = codegen.files(art);
          const kernels = codegen.print(art, plan).length;
          mkdirSync(join(out, t.name), { recursive: true });
          for (const [f, data] of Object.entries(files)) writeFileSync(join(out, t.name, f), data);
          emitted.push(`${t.name}: ${kernels} kernels → ${join(out, t.name)}`);
        } catch (e) {
          emitted.push(`${t.name}: not emitted (${(e as Error).message.split('\n')[0]})`);
        }
      }
      say(`3. kernels: ${emitted.join('; ')}`);

      // run each target on the same tokens and compare with the reference interpreter
      const tokens = Int32Array.from({ length: 24 }, (_, i) => (i * 37 + 11) % DEMO.vocabSize);
      const V = DEMO.vocabSize;
      const ref = await loadGraph('ref', graph, model.read);
      const refLogits = await runTokens(ref, tokens, { kind: 'seq' }, V);
      const rows: Row[] = [];
      const measure = async (name: string, load: () => Promise<TargetModel>, kernels: string) => {
        try {
          const t = await load();
          const logits = await runTokens(t, tokens, { kind: 'seq' }, V);
          let maxDiff = 0;
          for (let i = 0; i < logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(logits[i] - refLogits[i]));
          const n = 8, t1 = performance.now();
          for (let i = 0; i < n; i++) await t.run('decode', tokens.subarray(i, i + 1));
          const tps = (n * 1000) / (performance.now() - t1);
          rows.push({ target: name, kernels, maxDiff: maxDiff.toExponential(1), tokPerS: tps.toFixed(1), note: maxDiff <= 1e-4 ? 'ok' : 'MISMATCH' });
          t.dispose();
        } catch (e) {
          rows.push({ target: name, kernels, maxDiff: '–', tokPerS: '–', note: `unavailable: ${(e as Error).message.split('\n')[0]}` });
        }
      };
      const perLayer = `${s.decodeKernelsPerLayer}/layer`;
      rows.push({ target: 'ref', kernels: `${graph.nodes.length} IR ops`, maxDiff: '0 (reference)', tokPerS: '–', note: 'unfused graph, f64' });
      for (const t of planTargets().filter((t) => !t.hidden)) await measure(t.name, () => loadPlan(t.name, plan, provider), perLayer);
      model.close();

      say('4. results (logits of 24 tokens vs the reference interpreter; decode tokens/s of this tiny model):\n');
      const cols: (keyof Row)[] = ['target', 'kernels', 'maxDiff', 'tokPerS', 'note'];
      const head: Row = { target: 'target', kernels: 'kernels', maxDiff: 'max |Δlogit|', tokPerS: 'decode tok/s', note: '' };
      const w = cols.map((c) => Math.max(...[head, ...rows].map((r) => r[c].length)));
      for (const r of [head, ...rows]) process.stdout.write(cols.map((c, i) => (i < cols.length - 1 ? r[c].padEnd(w[i]) : r[c])).join('  ') + '\n');
      say(`\nartifacts: ${out}`);
      say('next, with a real checkpoint (e.g. RWKV-x060-World-1B6-v2.1-20240328-ctx4096.pth) and the World vocabulary:');
      say('  rwkvc run --model RWKV-x060-World-1B6.pth --vocab rwkv_vocab_v20230424.txt --prompt "User: hi\\n\\nAssistant:"');
      say('  rwkvc compile examples/finch.ts --config RWKV-x060-World-1B6.pth -o out/1b6 && rwkvc inspect out/1b6');
      if (rows.some((r) => r.note === 'MISMATCH')) process.exitCode = 1;
    });
}
