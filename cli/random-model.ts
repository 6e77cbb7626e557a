import { int, intIn, oneOf } from './args.ts';
import { Command, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { familyOf, type AnyModelConfig, type ModelConfig } from '../kernels/config.ts';
import { writeQrwkv6Model } from '../runtime/random-qrwkv6.ts';
import { qrwkv6Tensors } from '../runtime/checkpoint/hf-qrwkv6.ts';
import { UserError } from '../kernels/errors.ts';
import { PRESETS } from '../runtime/presets.ts';
import { writeRandomModel } from '../runtime/random-model.ts';
import { expectedTensors } from '../runtime/checkpoint/index.ts';
import { checkWritable } from '../runtime/checkpoint/fileio.ts';


/** The largest shapes `random-model` writes (finch-14b is 61 layers, width 4096, vocabulary 65536, about 28 GB in bf16). */
const LIMITS = { layers: 256, embd: 16384, headSize: 256, vocab: 1 << 20, ffn: 1 << 16, tensorElems: 2 ** 30, fileBytes: 2 ** 37 };

/** Refuse a shape whose tensors could not be held (one at a time, f32) or whose file would exceed LIMITS.fileBytes. */
function checkSize(cfg: ModelConfig, dtype: string): void {
  let elems = 0;
  for (const [name, shape] of familyOf(cfg) === 'qrwkv6' ? qrwkv6Tensors(cfg) : expectedTensors(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n > LIMITS.tensorElems) throw new UserError(`random-model: ${name} would have ${n} values (more than ${LIMITS.tensorElems}): a smaller shape`);
    elems += n;
  }
  const bytes = elems * (dtype === 'f32' ? 4 : 2);
  if (bytes > LIMITS.fileBytes)
    throw new UserError(`random-model: ${cfg.nLayer} layers × width ${cfg.nEmbd} × vocabulary ${cfg.vocabSize} is ${(bytes / 2 ** 30).toFixed(0)} GiB in ${dtype} (at most ${LIMITS.fileBytes / 2 ** 30} GiB)`);
}

/** --family qrwkv6: a preset's shape with any of the size options changed, written as a HF folder. */
function qrwkv6Folder(o: Record<string, number | string | undefined>, cmd: Command, base: AnyModelConfig): void {
  const C = (o.embd as number) ?? base.nEmbd, N = cmd.getOptionValueSource('headSize') === 'default' ? base.headSize : (o.headSize as number);
  if (C % N) throw new UserError(`--embd ${C} is not a multiple of the head size ${N}`);
  const H = C / N, KV = (o.kvHeads as number) ?? Math.min(base.nKvHead ?? H, H);
  if (H % KV) throw new UserError(`--kv-heads ${KV} does not divide the ${H} heads (width ${C} / head size ${N})`);
  const cfg: AnyModelConfig = {
    ...base, nLayer: (o.layers as number) ?? base.nLayer, nEmbd: C, headSize: N, nHead: H, nKvHead: KV,
    vocabSize: (o.vocab as number) ?? base.vocabSize, dimFfn: (o.ffn as number) ?? base.dimFfn,
  };
  checkSize(cfg, o.dtype as string);
  const out = o.out as string;
  const bar = new SingleBar({ format: 'random-model [{bar}] {value}/{total} tensors', clearOnComplete: true, stream: process.stderr }, Presets.shades_classic);
  bar.start(1, 0);
  writeQrwkv6Model(out, cfg, o.seed as number, o.dtype as 'f32' | 'bf16' | 'f16', ((o.shardMb as number) ?? 5000) * 1e6, (i, n) => { bar.setTotal(n); bar.update(i + 1); });
  bar.stop();
  process.stderr.write(`rwkvc: wrote ${out}/: QRWKV6, ${cfg.nLayer} layers, width ${C}, ${H} heads (${KV} k/v), vocab ${cfg.vocabSize}, ${o.dtype}, seed ${o.seed}\n`);
}

export function randomModelCommand(): Command {
  return new Command('random-model')
    .description('Write a seeded random RWKV-6 checkpoint in the official safetensors layout (--family qrwkv6: a Hugging Face folder)')
    .addOption(new Option('--family <family>', 'finch: one .safetensors file; qrwkv6: a folder with config.json and model.safetensors (sharded with an index past --shard-mb)').choices(['finch', 'qrwkv6']))
    .option('--kv-heads <n>', 'qrwkv6: k/v heads (divides the heads)', intIn(1, LIMITS.embd))
    .option('--shard-mb <n>', 'qrwkv6: most MB per safetensors shard (default 5000)', intIn(1, 1 << 20))
    .option('--preset <name>', `a named shape: ${Object.keys(PRESETS).join(', ')}`, oneOf(Object.keys(PRESETS)))
    .option('--layers <n>', `layers (1..${LIMITS.layers})`, intIn(1, LIMITS.layers))
    .option('--embd <n>', `width, a multiple of the head size (1..${LIMITS.embd})`, intIn(1, LIMITS.embd))
    .option('--vocab <n>', `vocabulary size (1..${LIMITS.vocab})`, intIn(1, LIMITS.vocab))
    .option('--head-size <n>', `head size (1..${LIMITS.headSize})`, intIn(1, LIMITS.headSize), 64)
    .option('--ffn <n>', `ffn width (default: floor(3.5·embd/32)·32; 1..${LIMITS.ffn})`, intIn(1, LIMITS.ffn))
    .addOption(new Option('--dtype <dtype>', 'stored dtype').choices(['f32', 'bf16', 'f16']).default('bf16'))
    .option('--seed <n>', 'random seed', int, 1)
    .requiredOption('-o, --out <file>', 'output .safetensors')
    .addHelpText('after', '\nExamples:\n  rwkvc random-model --preset bench-0.1b -o out/bench-0.1b.safetensors\n  rwkvc random-model --family qrwkv6 --preset qrwkv6-tiny --seed 3 -o out/qrwkv6-tiny\n  rwkvc random-model --layers 3 --embd 256 --vocab 1000 --dtype f32 --seed 7 -o out/m.safetensors')
    .action((o, cmd: Command) => {
      const base = o.preset ? PRESETS[o.preset] : undefined;
      if (o.preset && !base) throw new UserError(`--preset: unknown preset '${o.preset}'`);
      const family = o.family ?? (base ? familyOf(base) : 'finch');
      if (base && familyOf(base) !== family) throw new UserError(`--preset ${o.preset} is a ${familyOf(base)} shape, not --family ${family}`);
      if (family === 'qrwkv6') return qrwkv6Folder(o, cmd, (base ?? PRESETS['qrwkv6-tiny']) as AnyModelConfig);
      if (o.kvHeads || o.shardMb) throw new UserError('--kv-heads and --shard-mb are for --family qrwkv6');
      checkWritable(o.out); // before generating: a bad output path is found at once
      const C = o.embd ?? base?.nEmbd, L = o.layers ?? base?.nLayer, V = o.vocab ?? base?.vocabSize, N = o.headSize;
      if (!C || !L || !V) throw new UserError('give --preset or all of --layers, --embd, --vocab');
      if (C % N) throw new UserError(`--embd ${C} is not a multiple of the head size ${N}`);
      const F = o.ffn ?? Math.floor((C * 3.5) / 32) * 32;
      if (F < 1) throw new UserError(`--embd ${C} gives no ffn width (floor(3.5·${C}/32)·32 = 0): give --ffn`);
      const cfg: ModelConfig = {
        nLayer: L, nEmbd: C, headSize: N, nHead: C / N, dimFfn: F, vocabSize: V,
        loraMix: C >= 4096 ? 64 : 32, loraDecay: C >= 4096 ? 128 : 64,
      };
      checkSize(cfg, o.dtype);
      const bar = new SingleBar({ format: 'random-model [{bar}] {value}/{total} tensors', clearOnComplete: true, stream: process.stderr }, Presets.shades_classic);
      bar.start(1, 0);
      writeRandomModel(o.out, cfg, o.seed, o.dtype, (i, n) => { bar.setTotal(n); bar.update(i + 1); });
      bar.stop();
      process.stderr.write(`rwkvc: wrote ${o.out}: ${L} layers, width ${C}, vocab ${V}, ${o.dtype}, seed ${o.seed}\n`);
    });
}
