import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import type { KernelPlan, WeightDType } from '../kernels/plan.ts';
import { formatSummary, summarizePlan } from './plan-summary.ts';
import { UserError } from '../kernels/errors.ts';
import { availableParallelism } from 'node:os';
import { compileGraph } from '../compiler/index.ts';
import { buildGraph, DEFAULT_DSL } from '../driver/dsl.ts';
import { checkThreads } from '../driver/threads.ts';
import { ALL_FORMATS, fitsTable, footprint, planFormat, SIZED_TARGETS } from '../driver/limits.ts';
import { formatMeasurement, measureLoad } from '../driver/measure-load.ts';
import { int, num, weightsOption } from './args.ts';
import { resolveConfig } from './config-arg.ts';
import { PRESETS } from '../runtime/presets.ts';
import { formatScale, scaleReport } from './inspect-scale.ts';

function readPlan(dir: string): KernelPlan {
  const file = existsSync(dir) && statSync(dir).isDirectory() ? join(dir, 'plan.json') : dir;
  if (!existsSync(file)) throw new UserError(`${file}: no plan here (make one with rwkvc compile … -o ${dir})`);
  let plan: KernelPlan;
  try {
    plan = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (plan.format !== 'rwkvc-plan' || plan.version !== 1) throw new UserError(`${file}: not an rwkvc plan (format ${plan.format}, version ${plan.version})`);
  return plan;
}

/** A plan directory (or plan.json) written by rwkvc compile? */
const isPlanPath = (p: string) => existsSync(p) && (statSync(p).isDirectory() || p.endsWith('plan.json'));

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('Summarise a compiled plan, or a model (preset, config .json, checkpoint): kernels, memory, weight bytes, fused groups; what fits where (--fits); peak memory of a load (--measure-load)')
    .argument('<what>', 'directory written by rwkvc compile (or its plan.json), a preset, a config .json, or a checkpoint')
    .option('--json', 'print the summary as one JSON object')
    .option('--scale', 'per weight format: weight bytes, bytes per decoded token, sequences one H200 holds; state per sequence against a same-shape transformer\'s KV cache at 4k/32k')
    .option('--fits', 'a table of target × weight format: weight, state and arena bytes, the limit, whether it fits')
    .addOption(weightsOption('weight storage when <what> is a model, not a plan', 'bf16'))
    .option('--targets <list>', `targets in the --fits table (${SIZED_TARGETS.join(',')})`, SIZED_TARGETS.join(','))
    .option('--threads <n>', 'WASM threads counted (each has its scratch); default: all cores', int)
    .option('--device-memory <GiB>', 'a GPU\'s memory, for the --fits table (WebGPU adapters do not report it)', num)
    .option('--dsl <file>', 'model description', DEFAULT_DSL)
    .option('--measure-load', 'load the checkpoint <what> onto --target and report the peak resident memory against the packed weight bytes (run in a fresh process)')
    .option('--target <name>', 'target for --measure-load', 'wasm')
    .addHelpText('after', `
Examples:
  rwkvc compile examples/finch.ts --config finch-1b6 -o out/1b6 && rwkvc inspect out/1b6 --json
  rwkvc inspect finch-7b --fits                      # what fits where, for every target and format
  rwkvc inspect qrwkv6-32b-shape --scale             # per format: bytes, bytes per token, sequences per H200 vs a transformer's KV cache
  rwkvc inspect out/finch-1b6.safetensors --measure-load --target wasm --weights int8 --threads 2`)
    .action(async (what: string, o) => {
      if (o.measureLoad) {
        if (isPlanPath(what) && statSync(what).isDirectory()) throw new UserError(`--measure-load: ${what} is a folder; give a checkpoint`);
        checkThreads(o.threads);
        const m = await measureLoad(what, { target: o.target, weights: o.weights, threads: o.threads ?? availableParallelism(), dsl: o.dsl });
        process.stdout.write((o.json ? JSON.stringify(m, null, 1) : formatMeasurement(m)) + '\n');
        return;
      }
      const fromPlan = isPlanPath(what) || (what.endsWith('.json') && existsSync(what) && isPlanJson(what));
      if (!fromPlan && !PRESETS[what] && !existsSync(what))
        throw new UserError(`inspect: '${what}' is neither a plan folder, a preset (${Object.keys(PRESETS).join(', ')}) nor a file`);
      const config = fromPlan ? readPlan(what).config : await resolveConfig(what);
      // The graph only when something is compiled (a model, or --fits over formats).
      const graph = !fromPlan || o.fits || o.scale ? await buildGraph(o.dsl, config) : undefined;
      const cache = new Map<WeightDType, KernelPlan>();
      const compile = (f: WeightDType) => {
        let p = cache.get(f);
        if (!p) cache.set(f, (p = compileGraph(graph!, config, { weights: f, logits: 'last' }).plan));
        return p;
      };
      const plan = fromPlan ? readPlan(what) : compile(o.weights);
      const s = summarizePlan(plan);
      if (o.scale) {
        // one plan per storage that a decode streams at scale: 16-bit, 8-bit, 4-bit
        const r = scaleReport((['bf16', 'int8', 'q4_0'] as WeightDType[]).map((f) => ({ format: f, plan: !graph && f === planFormat(plan) ? plan : compile(f) })));
        process.stdout.write(o.json ? JSON.stringify({ ...s, scale: r }, null, 1) + '\n' : `${formatSummary(s, false)}\n${formatScale(r)}\n`);
        return;
      }
      if (!o.fits) {
        process.stdout.write((o.json ? JSON.stringify(s, null, 1) : formatSummary(s)) + '\n');
        return;
      }
      const targets = String(o.targets).split(',').map((t) => t.trim()).filter(Boolean);
      for (const t of targets) if (!(SIZED_TARGETS as readonly string[]).includes(t)) throw new UserError(`--targets: '${t}' is not one of ${SIZED_TARGETS.join(', ')}`);
      const budget = { threads: o.threads, deviceMemory: o.deviceMemory === undefined ? undefined : o.deviceMemory * 2 ** 30 };
      const rows = await Promise.all(targets.flatMap((t) => ALL_FORMATS.map((f) => footprint(t, fromPlan && f === planFormat(plan) ? plan : compile(f), budget))));
      if (o.json) process.stdout.write(JSON.stringify({ ...s, fits: rows }, null, 1) + '\n');
      else process.stdout.write(`${formatSummary(s, false)}\n${fitsTable(rows)}\n`);
    });
}

function isPlanJson(file: string): boolean {
  try { return JSON.parse(readFileSync(file, 'utf8')).format === 'rwkvc-plan'; } catch { return false; }
}

