import { count, int } from './args.ts';
import { Command, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import type { ModelConfig } from '../kernels/config.ts';
import { UserError } from '../kernels/errors.ts';
import { PRESETS } from '../runtime/presets.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import { checkWritable } from '../runtime/checkpoint/fileio.ts';


export function randomModelCommand(): Command {
  return new Command('random-model')
    .description('Write a seeded random RWKV-6 checkpoint in the official safetensors layout')
    .option('--preset <name>', `a named shape: ${Object.keys(PRESETS).join(', ')}`)
    .option('--layers <n>', 'layers', count)
    .option('--embd <n>', 'width (a multiple of the head size)', count)
    .option('--vocab <n>', 'vocabulary size', count)
    .option('--head-size <n>', 'head size', count, 64)
    .option('--ffn <n>', 'ffn width (default: floor(3.5·embd/32)·32)', count)
    .addOption(new Option('--dtype <dtype>', 'stored dtype').choices(['f32', 'bf16', 'f16']).default('bf16'))
    .option('--seed <n>', 'random seed', int, 1)
    .requiredOption('-o, --out <file>', 'output .safetensors')
    .addHelpText('after', '\nExamples:\n  rwkvc random-model --preset bench-0.1b -o out/bench-0.1b.safetensors\n  rwkvc random-model --layers 3 --embd 256 --vocab 1000 --dtype f32 --seed 7 -o out/m.safetensors')
    .action((o) => {
      checkWritable(o.out); // before generating: a bad output path is found at once
      const base = o.preset ? PRESETS[o.preset] : undefined;
      if (o.preset && !base) throw new UserError(`--preset: unknown preset '${o.preset}'`);
      const C = o.embd ?? base?.nEmbd, L = o.layers ?? base?.nLayer, V = o.vocab ?? base?.vocabSize, N = o.headSize;
      if (!C || !L || !V) throw new UserError('give --preset or all of --layers, --embd, --vocab');
      if (C % N) throw new UserError(`--embd ${C} is not a multiple of the head size ${N}`);
      const cfg: ModelConfig = {
        nLayer: L, nEmbd: C, headSize: N, nHead: C / N, dimFfn: o.ffn ?? Math.floor((C * 3.5) / 32) * 32, vocabSize: V,
        loraMix: C >= 4096 ? 64 : 32, loraDecay: C >= 4096 ? 128 : 64,
      };
      const bar = new SingleBar({ format: 'random-model [{bar}] {value}/{total} tensors', clearOnComplete: true, stream: process.stderr }, Presets.shades_classic);
      bar.start(1, 0);
      writeRandomModel(o.out, cfg, o.seed, o.dtype, (i, n) => { bar.setTotal(n); bar.update(i + 1); });
      bar.stop();
      process.stderr.write(`rwkvc: wrote ${o.out}: ${L} layers, width ${C}, vocab ${V}, ${o.dtype}, seed ${o.seed}\n`);
    });
}
