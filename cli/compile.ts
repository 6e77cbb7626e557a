import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { count, suggestOptions, targetOption, weightsOption } from './args.ts';
import { UserError } from '../kernels/errors.ts';
import { getTarget } from '../targets/registry.ts';
import type { KernelSource } from '../targets/target.ts';
import { Command, Option } from 'commander';
import { compileGraph } from '../compiler/index.ts';
import { PASSES } from '../compiler/pipeline.ts';
import { printGraph } from '../ir/print.ts';
import type { WeightDType } from '../kernels/plan.ts';
import { CONFIG_JSON_HELP, resolveConfig } from './config-arg.ts';
import { buildGraph } from '../driver/dsl.ts';
import { summarizePlan, formatSummary } from './plan-summary.ts';
import { PRESETS } from '../runtime/presets.ts';

const list = (v: string, prev: string[] = []) => [...prev, ...v.split(',')];

export function compileCommand(): Command {
  return suggestOptions(new Command('compile'))
    .description('Compile a model description for a config: writes the kernel plan (<out>/plan.json), or the optimised IR (--emit ir), and with --target that target\'s kernels (<out>/<target>/)')
    .argument('<dsl>', 'model description, e.g. examples/finch.ts')
    .requiredOption('--config <preset|file>', `a preset (${Object.keys(PRESETS).join(', ')}), a checkpoint (its shapes give the config), or ${CONFIG_JSON_HELP}`)
    .addOption(new Option('--emit <what>', "'plan': write <out>/plan.json and print its summary (with --target: and the plan's footprint on that target, no kernels generated); " +
      "'ir': write <out>/graph.ir (the IR after the passes) and print it; 'files': the plan, and --target's kernels in <out>/<target>/ (the default with --target); " +
      "'kernels': the files, and print every kernel --target generates, with its plan kernels and DSL lines; 'package': an ES module package of the packaged targets and the runtime in <out>")
      .choices(['plan', 'ir', 'files', 'kernels', 'package']))
    .addOption(targetOption('', 'the target whose kernels --emit files/kernels generate into <out>/<target>/ (and --emit plan sizes the plan for)', (t) => !!t.codegen))
    .option('-o, --out <dir>', 'output directory', 'out/plan')
    .addOption(weightsOption('storage of the big matrices'))
    .addOption(new Option('--logits <rows>', 'head rows: all positions, or only the last').choices(['all', 'last']).default('last'))
    .option('--chunk <n>', 'prefill chunk (tokens per prefill call)', count, 128)
    .option('--print-after <passes>', `print the IR after these passes (comma list or 'all'): ${PASSES.map((p) => p.name).join(', ')}`, list)
    .option('--print-before <passes>', 'print the IR before these passes', list)
    .option('--time', 'print the time of each phase (start-up, DSL → graph, passes, lowering, codegen), wall and CPU, on stderr')
    .option('--time-passes', 'print the time each pass took')
    .option('--verify-each', 'run the IR verifier after every pass')
    .addHelpText('after', `
Examples:
  rwkvc compile examples/finch.ts --config finch-1b6 -o out/1b6 --time-passes
  rwkvc compile examples/finch.ts --config finch-7b --target wasm --time
  rwkvc compile examples/finch.ts --config config.json --emit ir -o out/ir      # config.json: {"n_layer": 12, "n_embd": 768, "vocab_size": 65536}
  rwkvc compile examples/finch.ts --config model.pth --print-after fuse-wkv
  rwkvc compile examples/finch.ts --config bench-0.1b --weights f16 --print-after all --verify-each
  rwkvc compile examples/finch.ts --config finch-tiny --target wgsl --emit kernels
  rwkvc compile examples/finch.ts --config model.pth --emit package -o out/finch-pkg`)
    .action(async (dsl: string, o) => {
      const clock = phaseClock();
      o.emit ??= o.target ? 'files' : 'plan';
      const config = await resolveConfig(o.config);
      const t0 = performance.now();
      if (o.emit === 'package') {
        const { emitPackage } = await import('../driver/emit-package.ts');
        const p = await emitPackage({ dsl, config, out: o.out, weights: o.weights as WeightDType, chunk: o.chunk });
        process.stderr.write(`rwkvc: wrote package ${p.name} (class ${p.className}, ${p.files.length} files) in ${(performance.now() - t0).toFixed(0)} ms → ${p.dir}\n`);
        if (o.time) process.stderr.write(clock.report('package'));
        return;
      }
      const graph = await buildGraph(dsl, config);
      clock.lap('DSL → graph');
      const r = compileGraph(graph, config, { weights: o.weights as WeightDType, logits: o.logits, chunk: o.chunk }, {
        printAfter: o.printAfter, printBefore: o.printBefore, timePasses: o.timePasses, verifyEach: o.verifyEach,
        onPhase: (name) => clock.lap(name),
      });
      const ms = performance.now() - t0;
      if ((o.emit === 'kernels' || o.emit === 'files') && !o.target) throw new UserError(`--emit ${o.emit}: say which target's kernels (--target)`);
      mkdirSync(o.out, { recursive: true });
      // one artifact per --emit: the IR (text, for reading and diffing passes) or the plan (what targets and `inspect` take)
      const wrote = join(o.out, o.emit === 'ir' ? 'graph.ir' : 'plan.json');
      if (o.emit === 'ir') {
        const ir = printGraph(r.graph) + '\n';
        writeFileSync(wrote, ir);
        process.stdout.write(ir);
      } else writeFileSync(wrote, JSON.stringify(r.plan, null, 1));
      clock.lap(`write ${o.emit === 'ir' ? 'IR' : 'plan'}`);
      process.stderr.write(`rwkvc: compiled ${dsl} (${graph.nodes.length} → ${r.graph.nodes.length} nodes) in ${ms.toFixed(0)} ms → ${wrote}\n`);
      if (o.target && o.emit === 'plan') {
        // what the plan needs from the target is its layout and limits, not its kernels (no codegen, no nvcc)
        const { footprint, gib } = await import('../driver/limits.ts');
        const fp = await footprint(o.target, r.plan);
        clock.lap(`${o.target} footprint`);
        process.stderr.write(`rwkvc: ${o.target}: ` + (Number.isFinite(fp.totalBytes)
          ? `weights ${gib(fp.weightBytes)}, state ${gib(fp.stateBytes)}, arena ${gib(fp.arenaBytes)}, total ${gib(fp.totalBytes)}` +
            (fp.fits ? (fp.limit ? `; fits ${fp.limit.name}` : '') : `; does not fit: ${fp.why}`)
          : fp.why) + '\n');
      } else if (o.target) {
        const t = getTarget(o.target);
        const t1 = performance.now();
        const codegen = await t.codegen!();
        const art = codegen.emit(r.plan, t.saveOptions);
        clock.lap(`${t.name} codegen`);
        const dir = join(o.out, t.name);
        mkdirSync(dir, { recursive: true });
        const files = codegen.files(art);
        for (const [f, data] of Object.entries(files)) writeFileSync(join(dir, f), data);
        // printing lowers and renders the kernels again, so only when asked
        const kernels = o.emit === 'kernels' ? codegen.print(art, r.plan) : undefined;
        if (kernels) process.stdout.write(formatKernels(t.name, kernels));
        clock.lap(`${t.name} files`);
        process.stderr.write(`rwkvc: ${t.name}: ${kernels ? `${kernels.length} kernels, ` : ''}${Object.keys(files).join(', ')} in ${(performance.now() - t1).toFixed(0)} ms → ${dir}\n`);
      }
      if (o.emit !== 'ir') process.stderr.write(formatSummary(summarizePlan(r.plan), false) + '\n');
      if (o.time) process.stderr.write(clock.report('compile'));
    });
}

/**
 * Phase times for --time, wall and CPU (user + sys of the whole process, all threads: on a loaded machine
 * the CPU column is the one to compare). The first phase is the start-up: Node and the CLI's modules.
 */
function phaseClock() {
  const laps: { name: string; wall: number; cpu: number }[] = [];
  let wall = performance.now(), cpu = cpuMs();
  laps.push({ name: 'start-up', wall, cpu });
  return {
    lap(name: string) {
      const w = performance.now(), c = cpuMs();
      laps.push({ name, wall: w - wall, cpu: c - cpu });
      wall = w;
      cpu = c;
    },
    report(what: string): string {
      const total = laps.reduce((s, l) => ({ wall: s.wall + l.wall, cpu: s.cpu + l.cpu }), { wall: 0, cpu: 0 });
      const row = (name: string, l: { wall: number; cpu: number }) =>
        `  ${name.padEnd(18)} ${l.wall.toFixed(0).padStart(7)} ${l.cpu.toFixed(0).padStart(7)}\n`;
      return `rwkvc: ${what} time (ms)      wall     CPU\n` + laps.map((l) => row(l.name, l)).join('') + row('total', total);
    },
  };
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Each generated kernel with the plan kernels that run it and the DSL lines they came from. */
function formatKernels(target: string, kernels: KernelSource[]): string {
  return kernels.map((k, i) => [
    `// ─── ${target} kernel ${i + 1}/${kernels.length}: ${k.title}`,
    `// plan kernels: ${k.kernels.join(', ')}`,
    `// DSL: ${k.src.join(', ') || '(none)'}`,
    k.code,
    '',
  ].join('\n')).join('\n');
}
